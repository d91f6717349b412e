import { setTimeout as sleep } from 'node:timers/promises'
import rdkafka from 'node-rdkafka'
import type { FastifyBaseLogger } from 'fastify'
import type { Reading } from '../../schemas/readings.js'
import type { DeviceKind } from '../../schemas/devices.js'
import type { Validation } from '../ingest.js'
import type { PutResult } from '../readings-repository.js'
import { rdkafkaCommon, type KafkaSettings } from './config.js'

type Message = rdkafka.Message
type MessageHeader = rdkafka.MessageHeader

export interface IngestSink {
  validate: (raw: unknown, kindHint?: DeviceKind) => Validation
  store: (readings: Reading[]) => Promise<PutResult>
}

export interface ConsumerOptions {
  settings: KafkaSettings
  topics: string[]
  groupId: string
  dlqTopic: string
  batchSize: number
  ingest: IngestSink
  log: FastifyBaseLogger
  /** first retry delay after a failed write, doubled up to maxBackoffMs */
  backoffMs?: number
  maxBackoffMs?: number
  /** how long shutdown waits for the batches in hand */
  drainTimeoutMs?: number
  /** batches written at once (commits stay in order) */
  maxInFlight?: number
}

export type ConsumerState = 'connecting' | 'connected' | 'stopping' | 'stopped'

export interface Decoded { ok: true, value: unknown }
export interface DecodeFailure { ok: false, reason: string }

/**
 * Message values are JSON, plain or framed by Confluent's serializers (magic byte 0, then a
 * 4-byte schema id), which is how the original Python producers wrote them.
 */
export function decodeValue (value: Buffer | null | undefined): Decoded | DecodeFailure {
  if (value === null || value === undefined || value.length === 0) return { ok: false, reason: 'empty message value' }
  let text = value
  if (value[0] === 0) {
    if (value.length <= 5) return { ok: false, reason: 'Confluent-framed value without a payload' }
    text = value.subarray(5)
  }
  try {
    return { ok: true, value: JSON.parse(text.toString('utf8')) }
  } catch (err) {
    return { ok: false, reason: `value is not JSON: ${(err as Error).message}` }
  }
}

/** The topic name is only a hint of the kind, for readings that do not say or show it. */
export function kindHint (topic: string): DeviceKind | undefined {
  if (/rasp|(^|[._-])pi([._-]|$)/i.test(topic)) return 'raspberry'
  if (/(^|[._-])pc/i.test(topic)) return 'pc'
  return undefined
}

interface Rejected { message: Message, reason: string }

/**
 * Streams readings from Kafka into the ingest service: at-least-once, committing a partition's
 * offset only after every reading up to it is stored (or dead-lettered). Writes are idempotent,
 * so a redelivery after a crash stores nothing twice.
 */
export class IngestConsumer {
  state: ConsumerState = 'connecting'
  lastError: string | undefined
  /** messages stored / dead-lettered since start, for health and benchmarks */
  readonly counters = { stored: 0, deadLettered: 0, duplicates: 0, batches: 0, retries: 0 }

  private readonly options: Required<ConsumerOptions>
  private readonly consumer: rdkafka.KafkaConsumer
  private readonly dlq: rdkafka.HighLevelProducer
  private dlqReady: Promise<void> | undefined
  private loop: Promise<void> | undefined
  private stopping = false
  /** batches currently failing to write; partitions stay paused while any is */
  private failing = 0
  private readonly wake = new AbortController()
  private readonly lastErrorLog = new Map<number, number>()
  /** the offsets of the last batch stored, committed again synchronously on shutdown */
  private pending: rdkafka.TopicPartitionOffset[] = []

  constructor (options: ConsumerOptions) {
    this.options = { backoffMs: 200, maxBackoffMs: 5000, drainTimeoutMs: 8000, maxInFlight: 3, ...options }
    const common = rdkafkaCommon(options.settings, 'sensors-ingest')
    this.consumer = new rdkafka.KafkaConsumer({
      ...common,
      'group.id': options.groupId,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'allow.auto.create.topics': true,
      'partition.assignment.strategy': 'cooperative-sticky',
      // Bounded prefetch: memory stays flat however far behind the consumer is.
      'queued.max.messages.kbytes': 8192,
      'fetch.wait.max.ms': 100,
      // Topics created after we subscribed (a new device's topic) are picked up within seconds.
      'topic.metadata.refresh.interval.ms': 5000,
      // A long table outage (partitions paused, no poll) must not get us evicted quickly.
      'max.poll.interval.ms': 600_000,
      'session.timeout.ms': 30_000
    }, { 'auto.offset.reset': 'earliest' })
    this.dlq = new rdkafka.HighLevelProducer({
      ...common,
      'client.id': 'sensors-ingest-dlq',
      'enable.idempotence': true,
      'linger.ms': 5
    }, { 'message.timeout.ms': 30_000 })
    this.consumer.on('event.error', err => { this.onError(err) })
    this.dlq.on('event.error', err => { this.onError(err) })
  }

  private onError (err: rdkafka.LibrdKafkaError): void {
    this.lastError = err.message
    // librdkafka repeats transport errors every few hundred ms while a broker is away.
    const last = this.lastErrorLog.get(err.code) ?? 0
    if (Date.now() - last > 30_000) {
      this.lastErrorLog.set(err.code, Date.now())
      this.options.log.warn({ code: err.code, err: err.message }, 'Kafka client error (librdkafka reconnects by itself)')
    }
  }

  /** Starts connecting in the background: an unreachable broker never fails start-up. */
  start (): void {
    this.loop = this.run().catch(err => {
      this.options.log.error({ err }, 'Kafka consumer stopped on an unexpected error')
      this.state = 'stopped'
    })
  }

  private async connect (): Promise<void> {
    let delay = this.options.backoffMs
    while (!this.stopping) {
      try {
        await new Promise<void>((resolve, reject) => {
          this.consumer.connect({ timeout: 10_000 }, err => { if (err != null) reject(err); else resolve() })
        })
        return
      } catch (err) {
        this.lastError = (err as Error).message
        this.options.log.warn({ brokers: this.options.settings.brokers, err: this.lastError }, 'Kafka not reachable yet, retrying')
        await this.pause(delay)
        delay = Math.min(delay * 2, this.options.maxBackoffMs)
      }
    }
  }

  private async pause (ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.wake.signal }).catch(() => {})
  }

  private async run (): Promise<void> {
    await this.connect()
    if (this.stopping) return
    this.consumer.subscribe(this.options.topics)
    this.consumer.setDefaultConsumeTimeout(200)
    this.state = 'connected'
    this.lastError = undefined
    this.options.log.info({ topics: this.options.topics, group: this.options.groupId }, 'Kafka consumer subscribed')

    // Up to `maxInFlight` batches are written at once (each may overlap the others' writes);
    // offsets are still committed strictly in batch order, so a commit never covers a reading
    // that is not stored yet.
    const inFlight: Array<{ messages: Message[], done: Promise<boolean> }> = []
    let healthy = true
    const settleHead = async (): Promise<boolean> => {
      const head = inFlight.shift()!
      const ok = await head.done
      if (ok && healthy) this.commit(head.messages)
      return ok && healthy
    }
    let next = this.fetch()
    while (!this.stopping && healthy) {
      const messages = await next
      next = this.stopping ? Promise.resolve([]) : this.fetch()
      if (messages.length > 0) inFlight.push({ messages, done: this.process(messages) })
      while (healthy && (inFlight.length >= this.options.maxInFlight || (inFlight.length > 0 && messages.length === 0))) {
        healthy = await settleHead()
      }
    }
    while (inFlight.length > 0) healthy = await settleHead()
    await next.catch(() => [])
  }

  private async fetch (): Promise<Message[]> {
    return await new Promise(resolve => {
      this.consumer.consume(this.options.batchSize, (err, messages) => {
        if (err != null) {
          this.onError(err)
          resolve([])
        } else {
          resolve(messages)
        }
      })
    })
  }

  /** Stores a batch, retrying with backoff (partitions paused) until it is stored or we stop. */
  private async process (messages: Message[]): Promise<boolean> {
    const valid: Reading[] = []
    const sources: Message[] = []
    const rejected: Rejected[] = []
    for (const message of messages) {
      const decoded = decodeValue(message.value)
      if (!decoded.ok) {
        rejected.push({ message, reason: decoded.reason })
        continue
      }
      const result = this.options.ingest.validate(decoded.value, kindHint(message.topic))
      if (result.ok) {
        valid.push(result.reading)
        sources.push(message)
      } else {
        rejected.push({ message, reason: result.reasons.join('; ') })
      }
    }

    let delay = this.options.backoffMs
    let failed = false
    let put: PutResult | undefined
    // A retry after a failed dead-lettering stores again: what the first stored is a duplicate then.
    let stored = 0
    let duplicates: number | undefined
    try {
      for (;;) {
        try {
          put = await this.options.ingest.store(valid)
          stored += put.stored.length
          duplicates ??= put.duplicates
          // Conflicts (a uuid already stored with other values) are dead-lettered with the invalid messages.
          const dead = put.conflicts.length === 0 ? rejected : [...rejected, ...put.conflicts.map(c => ({ message: sources[c.index]!, reason: c.reason }))]
          if (dead.length > 0) await this.deadLetter(dead)
          break
        } catch (err) {
          this.counters.retries++
          this.lastError = (err as Error).message
          if (!failed) {
            failed = true
            if (this.failing++ === 0) {
              this.consumer.pause(this.consumer.assignments())
              this.options.log.warn({ err: this.lastError, messages: messages.length }, 'write failed: partitions paused, retrying with backoff')
            }
          }
          if (this.stopping) return false
          await this.pause(delay)
          delay = Math.min(delay * 2, this.options.maxBackoffMs)
        }
      }
    } finally {
      if (failed && --this.failing === 0 && !this.stopping) {
        this.consumer.resume(this.consumer.assignments())
        this.options.log.info('writes succeed again: partitions resumed')
      }
    }
    this.counters.stored += stored
    this.counters.duplicates += duplicates ?? 0
    this.counters.deadLettered += rejected.length + (put?.conflicts.length ?? 0)
    this.counters.batches++
    return true
  }

  private async deadLetter (rejected: Rejected[]): Promise<void> {
    this.dlqReady ??= new Promise<void>((resolve, reject) => {
      this.dlq.connect({ timeout: 10_000 }, err => { if (err != null) reject(err); else { this.dlq.setPollInterval(50); resolve() } })
    }).catch(err => { this.dlqReady = undefined; throw err })
    await this.dlqReady
    await Promise.all(rejected.map(async ({ message, reason }) => {
      const headers: MessageHeader[] = [
        ...(message.headers ?? []),
        { 'dlq.source.topic': message.topic },
        { 'dlq.source.partition': String(message.partition) },
        { 'dlq.source.offset': String(message.offset) },
        { 'dlq.reason': reason.slice(0, 2000) },
        { 'dlq.time': new Date().toISOString() }
      ]
      await new Promise<void>((resolve, reject) => {
        this.dlq.produce(this.options.dlqTopic, null, message.value, message.key ?? null, message.timestamp ?? null, headers,
          (err: unknown) => { if (err != null) reject(err instanceof Error ? err : new Error(String(err))); else resolve() })
      })
    }))
    this.options.log.warn({ count: rejected.length, topic: this.options.dlqTopic, first: rejected[0]?.reason }, 'messages dead-lettered')
  }

  private offsetsOf (messages: Message[]): rdkafka.TopicPartitionOffset[] {
    const next = new Map<string, rdkafka.TopicPartitionOffset>()
    for (const m of messages) {
      const key = `${m.topic}\u0000${m.partition}`
      const current = next.get(key)
      if (current === undefined || current.offset <= m.offset) next.set(key, { topic: m.topic, partition: m.partition, offset: m.offset + 1 })
    }
    return [...next.values()]
  }

  private commit (messages: Message[]): void {
    const offsets = this.offsetsOf(messages)
    try {
      this.consumer.commit(offsets)
      this.pending = offsets
    } catch (err) {
      // A commit that does not reach the broker only means a redelivery, which stores nothing twice.
      this.onError(err as rdkafka.LibrdKafkaError)
    }
  }

  /** Kafka connectivity for /health: a metadata round trip. */
  async probe (timeoutMs = 1500): Promise<boolean> {
    if (this.state !== 'connected') return false
    return await new Promise(resolve => {
      this.consumer.getMetadata({ timeout: timeoutMs }, err => { resolve(err == null) })
    })
  }

  /** Stops fetching, finishes the batch in hand, commits synchronously and disconnects. */
  async stop (): Promise<void> {
    if (this.state === 'stopped') return
    this.stopping = true
    const wasConnected = this.state === 'connected'
    this.state = 'stopping'
    const drained = this.loop === undefined
      ? true
      : await Promise.race([this.loop.then(() => true), sleep(this.options.drainTimeoutMs).then(() => false)])
    if (!drained) this.wake.abort()
    if (wasConnected && this.pending.length > 0) {
      try {
        this.consumer.commitSync(this.pending)
      } catch (err) {
        this.options.log.warn({ err: (err as Error).message }, 'final commit failed; uncommitted readings will be redelivered and stored once')
      }
    }
    await new Promise<void>(resolve => {
      if (!this.consumer.isConnected()) { resolve(); return }
      this.consumer.disconnect(() => resolve())
    })
    if (this.dlqReady !== undefined) {
      await new Promise<void>(resolve => { this.dlq.flush(5000, () => { this.dlq.disconnect(5000, () => resolve()) }) })
    }
    this.state = 'stopped'
    this.options.log.info({ ...this.counters }, 'Kafka consumer stopped')
  }
}

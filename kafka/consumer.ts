import { setTimeout as sleep } from 'node:timers/promises'
import rdkafka from 'node-rdkafka'
import type { Log } from '../log.js'
import type { Reading } from '../schemas/readings.js'
import type { DeviceKind } from '../schemas/devices.js'
import { errorText, type Validation } from '../ingest/service.js'
import { StorageUnavailableError } from '../storage/errors.js'
import type { PutResult } from '../storage/readings-repository.js'
import { rdkafkaCommon, type KafkaSettings } from './config.js'
import { DEFAULT_MAX_READING_BYTES, DLQ_MESSAGE_MAX_BYTES, deadLetterOf, decodeValue } from './message.js'

export { decodeValue, type Decoded, type DecodeFailure } from './message.js'

type Message = rdkafka.Message

/** tries to connect the DLQ producer, or to produce one dead letter on a retriable error, before giving up on it */
const DLQ_ATTEMPTS = 3

export interface IngestSink {
  validate: (raw: unknown, kindHint?: DeviceKind, source?: string) => Validation
  store: (readings: Reading[]) => Promise<PutResult>
}

export interface ConsumerOptions {
  settings: KafkaSettings
  topics: string[]
  groupId: string
  dlqTopic: string
  batchSize: number
  ingest: IngestSink
  log: Log
  /** first retry delay after a failed write, doubled up to maxBackoffMs */
  backoffMs?: number
  maxBackoffMs?: number
  /** how long shutdown waits for the batches in hand */
  drainTimeoutMs?: number
  /** batches written at once (commits stay in order) */
  maxInFlight?: number
  /** MAX_READING_BYTES: a larger message value is dead-lettered unparsed */
  maxReadingBytes?: number
  /** how long the group waits for a member that stopped heartbeating (KAFKA_SESSION_TIMEOUT_MS) */
  sessionTimeoutMs?: number
  /** KAFKA_STALL_SECONDS in ms: lag with no commit for this long reads as stalled */
  stallMs?: number
}

/** librdkafka's offset "none" (RD_KAFKA_OFFSET_INVALID) in its statistics. */
const OFFSET_INVALID = -1001

/** One assigned partition's lag (the metrics' sensors_kafka_consumer_lag). */
export interface PartitionLag { topic: string, partition: number, lag: number }

/**
 * The messages waiting for this consumer on its assigned partitions, from a librdkafka statistics
 * document: the high watermark less the committed offset (the log start where nothing is
 * committed yet). -1 while no assigned partition's offsets are known.
 */
export function lagOf (stats: unknown, assigned: ReadonlySet<string>, byPartition?: Map<string, PartitionLag>): number {
  const topics = (stats as { topics?: Record<string, { partitions?: Record<string, Record<string, unknown>> }> })?.topics
  let lag = -1
  for (const [topic, { partitions }] of Object.entries(topics ?? {})) {
    for (const [id, p] of Object.entries(partitions ?? {})) {
      if (!assigned.has(`${topic}\u0000${id}`)) continue
      const hi = Number(p.hi_offset)
      const committed = Number(p.committed_offset)
      const from = committed !== OFFSET_INVALID && committed >= 0 ? committed : Number(p.lo_offset)
      if (!Number.isFinite(hi) || hi < 0 || !Number.isFinite(from) || from < 0) continue
      lag = Math.max(lag, 0) + Math.max(0, hi - from)
      byPartition?.set(`${topic}\u0000${id}`, { topic, partition: Number(id), lag: Math.max(0, hi - from) })
    }
  }
  return lag
}

export type ConsumerState = 'connecting' | 'connected' | 'stopping' | 'stopped'

/** The topic name is only a hint of the kind, for readings that do not say or show it. */
export function kindHint (topic: string): DeviceKind | undefined {
  if (/rasp|(^|[._-])pi([._-]|$)/i.test(topic)) return 'raspberry'
  if (/(^|[._-])pc/i.test(topic)) return 'pc'
  return undefined
}

interface Rejected { message: Message, reason: string }
interface Accepted { message: Message, reading: Reading }

/**
 * Streams readings from Kafka into the ingest service: at-least-once, committing a partition's
 * offset only after every reading up to it is stored (or dead-lettered). Writes are idempotent,
 * so a redelivery after a crash stores nothing twice.
 */
export class IngestConsumer {
  state: ConsumerState = 'connecting'
  /** messages stored / dead-lettered since start, for health and benchmarks */
  readonly counters = { stored: 0, deadLettered: 0, duplicates: 0, batches: 0, retries: 0, dlqFailed: 0 }

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
  /** messages waiting on the assigned partitions (librdkafka statistics), -1 until known */
  lag = -1
  /** the lag of each assigned partition, from the last statistics document */
  partitionLag = new Map<string, PartitionLag>()
  /** the last commit, or the last moment nothing was waiting: /health's stall clock */
  private lastProgressAt = Date.now()
  private stallLogged = false

  constructor (options: ConsumerOptions) {
    this.options = {
      backoffMs: 200,
      maxBackoffMs: 5000,
      drainTimeoutMs: 8000,
      maxInFlight: 3,
      maxReadingBytes: DEFAULT_MAX_READING_BYTES,
      sessionTimeoutMs: 10_000,
      stallMs: 120_000,
      ...options
    }
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
      // A killed process never leaves its group: its partitions wait this long for another member.
      // (The classic protocol: with KIP-848's the broker alone sets it, 45 s by default.)
      'session.timeout.ms': this.options.sessionTimeoutMs,
      'heartbeat.interval.ms': Math.floor(this.options.sessionTimeoutMs / 3),
      // The lag /health's stall check reads (event.stats), a few times per stall window.
      'statistics.interval.ms': Math.max(500, Math.min(5000, Math.floor(this.options.stallMs / 4)))
    }, { 'auto.offset.reset': 'earliest' })
    this.dlq = new rdkafka.HighLevelProducer({
      ...common,
      'client.id': 'sensors-ingest-dlq',
      // Not idempotent: a dead letter twice is harmless, and a message the broker refuses must
      // stay that message's failure, never the producer's.
      'enable.idempotence': false,
      'message.max.bytes': DLQ_MESSAGE_MAX_BYTES,
      'linger.ms': 5
    }, { 'message.timeout.ms': 10_000 })
    this.consumer.on('event.error', err => { this.onError(err) })
    this.dlq.on('event.error', err => { this.onError(err) })
    this.consumer.on('event.stats', ({ message }) => { this.onStats(message) })
  }

  private onStats (text: string): void {
    try {
      const assigned = new Set(this.consumer.assignments().map(a => `${a.topic}\u0000${a.partition}`))
      const byPartition = new Map<string, PartitionLag>()
      this.lag = lagOf(JSON.parse(text), assigned, byPartition)
      this.partitionLag = byPartition
    } catch {
      return
    }
    if (this.lag === 0) this.lastProgressAt = Date.now()
    const stalled = this.stalled()
    if (stalled && !this.stallLogged) {
      this.options.log.error({ lag: this.lag, sinceCommitSeconds: Math.round((Date.now() - this.lastProgressAt) / 1000) },
        'Kafka consumer stalled: messages are waiting and nothing was committed; /health reads down')
    } else if (!stalled && this.stallLogged) {
      this.options.log.info({ lag: this.lag }, 'Kafka consumer makes progress again')
    }
    this.stallLogged = stalled
  }

  /** Lag, and no commit (nor a moment without lag) for the stall window. */
  stalled (now = Date.now()): boolean {
    return this.state === 'connected' && this.lag > 0 && now - this.lastProgressAt > this.options.stallMs
  }

  private onError (err: rdkafka.LibrdKafkaError): void {
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
        this.options.log.warn({ brokers: this.options.settings.brokers, err: (err as Error).message }, 'Kafka not reachable yet, retrying')
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
    this.lastProgressAt = Date.now()
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
    const valid: Accepted[] = []
    const rejected: Rejected[] = []
    for (const message of messages) {
      // Nothing a message holds may escape this loop: whatever throws dead-letters that message.
      try {
        const decoded = decodeValue(message.value, this.options.maxReadingBytes)
        if (!decoded.ok) {
          rejected.push({ message, reason: decoded.reason })
          continue
        }
        const result = this.options.ingest.validate(decoded.value, kindHint(message.topic), decoded.text)
        if (result.ok) valid.push({ message, reading: result.reading })
        else rejected.push({ message, reason: result.reasons.join('; ') })
      } catch (err) {
        rejected.push({ message, reason: `could not be processed: ${errorText(err)}` })
      }
    }

    let delay = this.options.backoffMs
    let failed = false
    // A retry after a partial write stores again: what the first attempt wrote counts as duplicates then.
    let stored = 0
    let duplicates = 0
    try {
      for (;;) {
        try {
          const outcome = await this.store(valid, rejected)
          stored += outcome.stored
          duplicates += outcome.duplicates
          break
        } catch (err) {
          this.counters.retries++
          if (!failed) {
            failed = true
            if (this.failing++ === 0) {
              this.consumer.pause(this.consumer.assignments())
              this.options.log.warn({ err: (err as Error).message, messages: messages.length }, 'write failed: partitions paused, retrying with backoff')
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
        this.options.log.info({ messages: messages.length }, 'writes succeed again: partitions resumed')
      }
    }
    // After the readings: a DLQ that refuses costs only its own messages (logged), never the batch.
    const deadLettered = rejected.length > 0 ? await this.deadLetter(rejected) : 0
    this.counters.stored += stored
    this.counters.duplicates += duplicates
    this.counters.deadLettered += deadLettered
    this.counters.batches++
    return true
  }

  /**
   * Stores the batch; when the table refuses it for something else than an outage (a reading it
   * cannot take), stores the readings one by one. Readings it refuses, and conflicts (a uuid already
   * stored with other values), move from `valid` to `rejected`.
   */
  private async store (valid: Accepted[], rejected: Rejected[]): Promise<{ stored: number, duplicates: number }> {
    const settle = (batch: Accepted[], put: PutResult): { stored: number, duplicates: number } => {
      for (const conflict of put.conflicts) {
        const accepted = batch[conflict.index]!
        valid.splice(valid.indexOf(accepted), 1)
        rejected.push({ message: accepted.message, reason: conflict.reason })
      }
      return { stored: put.stored.length, duplicates: put.duplicates }
    }
    try {
      const batch = [...valid]
      return settle(batch, await this.options.ingest.store(batch.map(v => v.reading)))
    } catch (err) {
      if (err instanceof StorageUnavailableError || valid.length === 0) throw err
    }
    const total = { stored: 0, duplicates: 0 }
    for (const accepted of [...valid]) {
      try {
        const one = settle([accepted], await this.options.ingest.store([accepted.reading]))
        total.stored += one.stored
        total.duplicates += one.duplicates
      } catch (err) {
        if (err instanceof StorageUnavailableError) throw err
        valid.splice(valid.indexOf(accepted), 1)
        rejected.push({ message: accepted.message, reason: `could not be stored: ${errorText(err)}` })
      }
    }
    return total
  }

  /** Dead-letters what it can; never throws: a message that cannot be dead-lettered is logged and skipped. */
  private async deadLetter (rejected: Rejected[]): Promise<number> {
    let connectError: string | undefined
    for (let attempt = 1; attempt <= DLQ_ATTEMPTS; attempt++) {
      this.dlqReady ??= new Promise<void>((resolve, reject) => {
        this.dlq.connect({ timeout: 10_000 }, err => { if (err != null) reject(err); else { this.dlq.setPollInterval(50); resolve() } })
      })
      try {
        await this.dlqReady
        connectError = undefined
        break
      } catch (err) {
        this.dlqReady = undefined
        connectError = errorText(err)
        if (attempt < DLQ_ATTEMPTS && !this.stopping) await this.pause(this.options.backoffMs * attempt)
      }
    }
    const sent = connectError === undefined
      ? await Promise.all(rejected.map(async r => await this.deadLetterOne(r)))
      : rejected.map(r => { this.skipped(r, connectError); return false })
    const count = sent.filter(Boolean).length
    if (count > 0) this.options.log.warn({ count, topic: this.options.dlqTopic, first: rejected[0]?.reason }, 'messages dead-lettered')
    return count
  }

  private async deadLetterOne (rejected: Rejected): Promise<boolean> {
    try {
      const { value, key, headers } = deadLetterOf(rejected.message, rejected.reason)
      for (let attempt = 1; ; attempt++) {
        try {
          await new Promise<void>((resolve, reject) => {
            this.dlq.produce(this.options.dlqTopic, null, value, key, rejected.message.timestamp ?? null, headers,
              (err: unknown) => { if (err != null) reject(err instanceof Error ? err : new Error(String(err))); else resolve() })
          })
          return true
        } catch (err) {
          if (attempt >= DLQ_ATTEMPTS || this.stopping || (err as rdkafka.LibrdKafkaError).isRetriable !== true) throw err
          await this.pause(this.options.backoffMs * attempt)
        }
      }
    } catch (err) {
      this.skipped(rejected, errorText(err))
      return false
    }
  }

  private skipped ({ message, reason }: Rejected, err: string): void {
    this.counters.dlqFailed++
    const source = { topic: message.topic, partition: message.partition, offset: message.offset }
    this.options.log.error({ source, reason: reason.slice(0, 500), dlq: this.options.dlqTopic, err }, 'message could not be dead-lettered: skipped')
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
      this.lastProgressAt = Date.now()
    } catch (err) {
      // A commit that does not reach the broker only means a redelivery, which stores nothing twice.
      this.onError(err as rdkafka.LibrdKafkaError)
    }
  }

  /** Kafka connectivity for /health: a metadata round trip (a frozen broker times out). */
  async probe (timeoutMs = 1500): Promise<'ok' | 'timeout' | 'unreachable'> {
    return await new Promise(resolve => {
      this.consumer.getMetadata({ timeout: timeoutMs }, err => {
        if (err == null) return resolve('ok')
        this.options.log.debug({ err: err.message }, 'Kafka metadata probe failed')
        resolve(err.code === rdkafka.CODES.ERRORS.ERR__TIMED_OUT ? 'timeout' : 'unreachable')
      })
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
    // Leave the group before closing: librdkafka's close() with the cooperative-sticky assignor
    // revokes the partitions but sends no LeaveGroup, so a restarted service waited a whole
    // session timeout for them. unsubscribe() does leave.
    if (this.consumer.isConnected()) {
      try {
        this.consumer.unsubscribe()
        const until = Date.now() + 2000
        while (this.consumer.assignments().length > 0 && Date.now() < until) await sleep(10)
      } catch (err) {
        this.options.log.warn({ err: (err as Error).message }, 'leaving the consumer group failed; the group drops us after the session timeout')
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

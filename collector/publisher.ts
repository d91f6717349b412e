import { setTimeout as sleep } from 'node:timers/promises'
import Kafka from 'node-rdkafka'
import type { DeliveryReport, LibrdKafkaError, Producer, ProducerGlobalConfig } from 'node-rdkafka'
import { rdkafkaCommon, type KafkaSettings } from '../kafka/config.js'

export interface Publisher {
  /** Resolves once the broker has acknowledged this message (acks=all); rejects when it is not delivered. */
  publish(topic: string, key: string, value: object): Promise<void>
  /** Flushes what is queued (bounded), then disconnects. Messages still undelivered are rejected. */
  close(): Promise<void>
}

export interface PublisherOptions {
  clientId?: string
  /**
   * How long one connection attempt waits for the brokers' metadata. node-rdkafka waits for it on a
   * libuv worker that even process.exit() cannot cut short, so this also bounds a shutdown during an attempt.
   */
  connectTimeoutMs?: number
  /** librdkafka's message.timeout.ms: how long a message may take to be acknowledged, retries included */
  deliveryTimeoutMs?: number
  /** how long close() waits for queued messages */
  flushTimeoutMs?: number
}

export class DeliveryError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'DeliveryError'
  }
}

interface Pending {
  topic: string
  resolve: () => void
  reject: (err: Error) => void
  guard: NodeJS.Timeout
}

const POLL_INTERVAL_MS = 100
// librdkafka does not time out a request in flight to a broker that hangs (only after socket.timeout.ms,
// 60 s, and a message can then wait in its queue longer still): the promise keeps its own deadline.
const GUARD_MARGIN_MS = 1000

export function createPublisher (settings: KafkaSettings, options: PublisherOptions = {}): Publisher {
  const clientId = options.clientId ?? 'sensors-collector'
  const connectTimeoutMs = options.connectTimeoutMs ?? 5000
  const deliveryTimeoutMs = options.deliveryTimeoutMs ?? 15_000
  const flushTimeoutMs = options.flushTimeoutMs ?? 5000
  const brokers = settings.brokers.join(',')
  const pending = new Map<number, Pending>()
  let nextOpaque = 1
  let connected: Producer | null = null
  let connecting: Promise<Producer> | null = null
  let closed = false

  const settle = (opaque: number, err: Error | null): void => {
    const entry = pending.get(opaque)
    if (entry === undefined) return
    pending.delete(opaque)
    clearTimeout(entry.guard)
    if (err === null) entry.resolve()
    else entry.reject(err)
  }

  const failAll = (reason: string): void => {
    for (const [opaque, { topic }] of pending) {
      settle(opaque, new DeliveryError(`Message not delivered to Kafka topic "${topic}": ${reason}`))
    }
  }

  const connect = (): Promise<Producer> => {
    const conf = {
      ...rdkafkaCommon(settings, clientId),
      'enable.idempotence': true,
      acks: 'all',
      'message.timeout.ms': deliveryTimeoutMs,
      dr_cb: true
    } as ProducerGlobalConfig
    const client = new Kafka.Producer(conf)
    client.on('delivery-report', (err: LibrdKafkaError | null, report: DeliveryReport) => {
      const opaque = report.opaque as number
      const topic = pending.get(opaque)?.topic ?? report.topic
      settle(opaque, err ? new DeliveryError(`Message not delivered to Kafka topic "${topic}": ${err.message}`, { cause: err }) : null)
    })
    client.on('event.error', (err: LibrdKafkaError) => {
      // A fatal error (e.g. an idempotence sequence gap) leaves this producer unusable: start afresh on the next publish.
      if (err.isFatal === true && connected === client) {
        connected = null
        failAll(`fatal producer error: ${err.message}`)
        client.disconnect()
      }
    })
    return new Promise<Producer>((resolve, reject) => {
      let done = false
      const fail = (detail: string): void => {
        if (done) return
        done = true
        clearTimeout(guard)
        reject(new DeliveryError(`Kafka brokers ${brokers} not reachable within ${Math.round(connectTimeoutMs / 1000)} s: ${detail}`))
      }
      // node-rdkafka gives up on the metadata request after timeout, but may then spend up to 10 s tearing down.
      const guard = setTimeout(() => { fail('timed out') }, connectTimeoutMs + 2000)
      client.connect({ timeout: connectTimeoutMs }, (err) => {
        if (err) {
          fail(err.message)
          return
        }
        if (done) {
          client.disconnect()
          return
        }
        done = true
        clearTimeout(guard)
        if (closed) {
          client.disconnect()
          reject(new DeliveryError('the publisher is closed'))
          return
        }
        client.setPollInterval(POLL_INTERVAL_MS)
        connected = client
        resolve(client)
      })
    })
  }

  const ready = async (): Promise<Producer> => {
    if (connected !== null) return connected
    // One attempt at a time; a failed one is retried by the next publish, so a collector outlives a broker restart.
    connecting ??= connect().finally(() => { connecting = null })
    return connecting
  }

  return {
    async publish (topic, key, value) {
      if (closed) throw new DeliveryError(`Message not delivered to Kafka topic "${topic}": the publisher is closed`)
      let client: Producer
      try {
        client = await ready()
      } catch (err) {
        throw new DeliveryError(`Message not delivered to Kafka topic "${topic}": ${(err as Error).message}`, { cause: err })
      }
      if (closed) throw new DeliveryError(`Message not delivered to Kafka topic "${topic}": the publisher is closed`)
      const opaque = nextOpaque++
      return new Promise<void>((resolve, reject) => {
        const guard = setTimeout(() => {
          settle(opaque, new DeliveryError(`Message not delivered to Kafka topic "${topic}": not acknowledged within ${Math.round(deliveryTimeoutMs / 1000)} s`))
        }, deliveryTimeoutMs + GUARD_MARGIN_MS)
        pending.set(opaque, { topic, resolve, reject, guard })
        try {
          client.produce(topic, null, Buffer.from(JSON.stringify(value)), key, Date.now(), opaque)
        } catch (err) {
          settle(opaque, new DeliveryError(`Message not delivered to Kafka topic "${topic}": ${(err as Error).message}`, { cause: err }))
        }
      })
    },

    async close () {
      if (closed) return
      closed = true
      // A connection still being attempted is dropped when it completes (see connect), not waited for.
      const client = connected
      connected = null
      if (client !== null && client.isConnected()) {
        await new Promise<void>(resolve => {
          const guard = setTimeout(resolve, flushTimeoutMs + 1000)
          client.flush(flushTimeoutMs, () => { clearTimeout(guard); resolve() })
        })
        // Reports served by the flush reach JavaScript a few ticks later: let them land before giving up on the rest.
        for (let waited = 0; pending.size > 0 && waited < 1000; waited += 20) await sleep(20)
        await new Promise<void>(resolve => {
          // librdkafka's teardown can take seconds; never hang the caller's shutdown on it.
          const guard = setTimeout(resolve, 5000)
          client.disconnect(0, () => { clearTimeout(guard); resolve() })
        })
      }
      failAll('the publisher closed before the broker acknowledged it')
    }
  }
}

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import rdkafka from 'node-rdkafka'
import { flavourOf } from './data.js'
import { log, tempDirs } from './procs.js'

// A real single-node Kafka 4 broker for the ingest figure (tools/kafka-broker.mjs), its topics,
// and a high-throughput producer to preload them.

interface BrokerModule {
  freePorts: (n: number) => Promise<number[]>
  startBroker: (options: { port: number, controllerPort: number, dataDir: string, log: (msg: string) => void }) => Promise<Broker>
}

export interface Broker {
  brokers: string
  startupMs: number
  stop: () => Promise<void>
}

export async function startKafka (): Promise<Broker> {
  const mod = await import(new URL('../../../tools/kafka-broker.mjs', import.meta.url).href) as BrokerModule
  const [port, controllerPort] = await mod.freePorts(2)
  const dataDir = await mkdtemp(join(tmpdir(), 'sensors-bench-kafka-'))
  tempDirs.add(dataDir)
  const broker = await mod.startBroker({ port: port!, controllerPort: controllerPort!, dataDir, log: msg => { log(`kafka: ${msg}`) } })
  let stopped = false
  return {
    brokers: broker.brokers,
    startupMs: broker.startupMs,
    stop: async () => {
      if (stopped) return
      stopped = true
      await broker.stop()
      await rm(dataDir, { recursive: true, force: true })
      tempDirs.delete(dataDir)
    }
  }
}

export async function createTopics (brokers: string, topics: string[], partitions: number): Promise<void> {
  const admin = rdkafka.AdminClient.create({ 'bootstrap.servers': brokers, 'client.id': 'sensors-bench-admin' })
  try {
    for (const topic of topics) {
      await new Promise<void>((resolve, reject) => {
        admin.createTopic({ topic, num_partitions: partitions, replication_factor: 1 }, 15_000, err => {
          if (err != null && !/exists/i.test(err.message)) reject(err)
          else resolve()
        })
      })
    }
  } finally {
    admin.disconnect()
  }
}

/** The topic of a reading, by the device's kind: the original system had one topic per source. */
export function topicOf (prefix: string, device: string): string {
  return `${prefix}.${flavourOf(device)}`
}

/**
 * Produces every reading (JSON, keyed by device, so a device's readings stay in order in one
 * partition) and resolves once the broker acknowledged all of them.
 */
export async function preload (brokers: string, prefix: string, raws: Array<Record<string, unknown>>): Promise<{ ms: number }> {
  const producer = new rdkafka.Producer({
    'bootstrap.servers': brokers,
    'client.id': 'sensors-bench-producer',
    'linger.ms': 20,
    'batch.num.messages': 10_000,
    'compression.codec': 'lz4',
    'queue.buffering.max.messages': 200_000,
    'queue.buffering.max.kbytes': 512 * 1024,
    dr_cb: true
  })
  let delivered = 0
  let failed: { message: string } | undefined
  producer.on('delivery-report', (err) => {
    if (err != null) failed ??= err
    delivered++
  })
  await new Promise<void>((resolve, reject) => {
    producer.connect({ timeout: 15_000 }, err => { if (err != null) reject(err); else resolve() })
  })
  producer.setPollInterval(20)
  const started = performance.now()
  try {
    for (const raw of raws) {
      const device = raw.device as string
      const value = Buffer.from(JSON.stringify(raw))
      for (;;) {
        try {
          producer.produce(topicOf(prefix, device), null, value, device, Date.now())
          break
        } catch (err) {
          if ((err as { code?: number }).code !== rdkafka.CODES.ERRORS.ERR__QUEUE_FULL) throw err
          producer.poll()
          await sleep(5)
        }
      }
    }
    const deadline = Date.now() + 120_000
    while (delivered < raws.length) {
      if (Date.now() > deadline) throw new Error(`only ${delivered} of ${raws.length} messages acknowledged by the broker`)
      await sleep(10)
    }
    if (failed !== undefined) throw new Error(`a message was not delivered: ${failed.message}`)
  } finally {
    await new Promise<void>(resolve => { producer.disconnect(5000, () => { resolve() }) })
  }
  return { ms: performance.now() - started }
}

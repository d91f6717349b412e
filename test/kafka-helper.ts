import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import rdkafka from 'node-rdkafka'
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'
import { deviceReadingPages } from '../storage/table.js'

interface Teardown { teardown: (fn: () => unknown) => void }

export const brokers = process.env.KAFKA_BROKERS
export const noBroker = brokers === undefined ? 'KAFKA_BROKERS is not set: run through `npm test`, which starts a broker' : false

export function unique (prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`
}

export async function producer (t: Teardown, bootstrap = brokers!, config: Record<string, string | number | boolean> = {}): Promise<rdkafka.HighLevelProducer> {
  const p = new rdkafka.HighLevelProducer({ 'bootstrap.servers': bootstrap, 'linger.ms': 5, 'enable.idempotence': true, ...config })
  await new Promise<void>((resolve, reject) => p.connect({ timeout: 15_000 }, err => { if (err != null) reject(err); else resolve() }))
  p.setPollInterval(20)
  t.teardown(() => new Promise<void>(resolve => { p.disconnect(5000, () => resolve()) }))
  return p
}

export async function produce (
  p: rdkafka.HighLevelProducer, topic: string, value: Buffer | string | object, key: string | null = null, headers?: rdkafka.MessageHeader[]
): Promise<void> {
  const buf = Buffer.isBuffer(value) ? value : Buffer.from(typeof value === 'string' ? value : JSON.stringify(value))
  await new Promise<void>((resolve, reject) => {
    const cb = (err: unknown): void => { if (err != null) reject(err instanceof Error ? err : new Error(String(err))); else resolve() }
    if (headers !== undefined) p.produce(topic, null, buf, key, Date.now(), headers, cb)
    else p.produce(topic, null, buf, key, Date.now(), cb)
  })
}

export async function produceMany (
  p: rdkafka.HighLevelProducer, topic: string, values: object[], keyOf: (v: object) => string | null = () => null
): Promise<void> {
  const chunk = 1000
  for (let i = 0; i < values.length; i += chunk) {
    await Promise.all(values.slice(i, i + chunk).map(v => produce(p, topic, v, keyOf(v))))
  }
}

/** Confluent's JSON Schema serializer framing: magic byte 0, 4-byte schema id, then JSON. */
export function confluentFrame (value: object, schemaId = 7): Buffer {
  const head = Buffer.alloc(5)
  head.writeUInt8(0, 0)
  head.writeUInt32BE(schemaId, 1)
  return Buffer.concat([head, Buffer.from(JSON.stringify(value))])
}

/** Reads `count` messages of a topic from the beginning (or fails after timeoutMs). */
export async function consumeAll (topic: string, count: number, timeoutMs = 30_000, bootstrap = brokers!): Promise<rdkafka.Message[]> {
  const c = new rdkafka.KafkaConsumer({ 'bootstrap.servers': bootstrap, 'group.id': unique('reader'), 'enable.auto.commit': false, 'topic.metadata.refresh.interval.ms': 1000 }, { 'auto.offset.reset': 'earliest' })
  await new Promise<void>((resolve, reject) => c.connect({ timeout: 15_000 }, err => { if (err != null) reject(err); else resolve() }))
  c.subscribe([topic])
  const got: rdkafka.Message[] = []
  const until = Date.now() + timeoutMs
  try {
    while (got.length < count && Date.now() < until) {
      const batch = await new Promise<rdkafka.Message[]>(resolve => c.consume(100, (err, m) => resolve(err != null ? [] : m)))
      got.push(...batch)
    }
  } finally {
    await new Promise<void>(resolve => c.disconnect(() => resolve()))
  }
  return got
}

/** Committed offsets of a group, summed over the partitions of a topic. */
export async function committedTotal (topic: string, group: string, partitions = 3, bootstrap = brokers!): Promise<number> {
  const c = new rdkafka.KafkaConsumer({ 'bootstrap.servers': bootstrap, 'group.id': group, 'enable.auto.commit': false }, {})
  await new Promise<void>((resolve, reject) => c.connect({ timeout: 15_000 }, err => { if (err != null) reject(err); else resolve() }))
  try {
    const offsets = await new Promise<rdkafka.TopicPartitionOffset[]>((resolve, reject) => {
      const asked = Array.from({ length: partitions }, (_, partition) => ({ topic, partition }))
      c.committed(asked, 10_000, (err, tp) => { if (err != null) reject(err); else resolve(tp) })
    })
    return offsets.reduce((sum, o) => sum + (o.offset >= 0 ? o.offset : 0), 0)
  } finally {
    await new Promise<void>(resolve => c.disconnect(() => resolve()))
  }
}

/** Every reading item of the table (not statuses), through the SDK. */
export async function storedReadings (doc: DynamoDBDocumentClient, table: string, devices: string[]): Promise<Array<Record<string, unknown>>> {
  const items: Array<Record<string, unknown>> = []
  for (const device of devices) {
    for await (const page of deviceReadingPages(doc, table, device)) items.push(...page.items)
  }
  return items
}

export async function waitUntil (fn: () => Promise<boolean>, timeoutMs: number, every = 250): Promise<boolean> {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (await fn().catch(() => false)) return true
    await sleep(every)
  }
  return false
}

/** A free loopback port: the one helper (tools/kafka-broker.mjs freePorts), for tests and tools alike. */
export async function freePort (): Promise<number> {
  const { freePorts } = await import(new URL('../../tools/kafka-broker.mjs', import.meta.url).href) as { freePorts: (n: number) => Promise<number[]> }
  return (await freePorts(1))[0]!
}

export function readings (device: string, n: number, startMs = Date.now() - n * 1000): Array<Record<string, unknown>> {
  return Array.from({ length: n }, (_, i) => ({
    uuid: randomUUID(),
    device,
    loading_datetime: new Date(startMs + i * 1000).toISOString(),
    ClockCPUCoreOne: 3000 + (i % 500),
    TemperatureCPUPackage: 40 + (i % 50),
    LoadCPUTotal: i % 100,
    PowerCPUPackage: 5 + (i % 60)
  }))
}

import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { randomUUID } from 'node:crypto'
import { build, dynalite, dynamoClient, tempDir, uniqueTable, pcReading, piReading } from '../helper.js'
import { brokers, confluentFrame, consumeAll, noBroker, produce, producer, storedReadings, unique, waitUntil, freePort } from '../kafka-helper.js'
import { startEmbeddedDynamo } from '../../storage/client.js'

const cli = fileURLToPath(new URL('../../collector/cli.js', import.meta.url))

function kafkaEnv (topic: string, extra: Record<string, string> = {}): Record<string, string> {
  return { KAFKA_BROKERS: brokers!, KAFKA_TOPICS: topic, KAFKA_GROUP_ID: unique('group'), KAFKA_DLQ_TOPIC: unique('dlq'), COLLECTOR: 'off', ...extra }
}

t.test('a reading published by the project\'s collector appears in the API with its prediction and status', { skip: noBroker }, async t => {
  const topic = unique('collect')
  const app = await build(t, { env: kafkaEnv(topic) })
  const device = unique('host')
  const child = spawn(process.execPath, [cli, '--once', '--device', device, '--topic', topic], {
    env: { ...process.env, KAFKA_BROKERS: brokers! }, stdio: ['ignore', 'pipe', 'pipe']
  })
  let err = ''
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const [code] = await once(child, 'exit')
  t.equal(code, 0, `collector delivered (${err.trim()})`)
  const ok = await waitUntil(async () => (await app.inject(`/devices/${device}/status`)).statusCode === 200, 20_000)
  t.ok(ok, 'status answers within seconds')
  const status = (await app.inject(`/devices/${device}/status`)).json()
  t.match(status, { device, stale: false, msg: /^The device is (OK|stressed)$/ })
  const [reading] = (await app.inject(`/devices/${device}`)).json()
  t.ok(reading.prediction === 0 || reading.prediction === 1)
  t.type(reading.probability, 'number')
  t.equal((await app.inject('/health')).json().components.kafka.status, 'up')
})

t.test('plain JSON and Confluent-framed values are both stored; bad messages go to the DLQ with reasons', { skip: noBroker }, async t => {
  const topic = unique('pc')
  const env = kafkaEnv(topic)
  const app = await build(t, { env })
  const p = await producer(t)
  const plain = pcReading({ device: 'mixed' })
  const framed = pcReading({ device: 'mixed' }, 1)
  const pi = piReading({ device: 'mixed-pi', throttled: '0x4' })
  const after = pcReading({ device: 'mixed' }, 2)
  await produce(p, topic, plain, 'mixed')
  await produce(p, topic, 'this is not json {', 'bad-1', [{ trace: 'abc' }])
  await produce(p, topic, confluentFrame(framed), 'mixed')
  await produce(p, topic, pcReading({ device: 'mixed', LoadCPUTotal: 250 }), 'bad-2')
  await produce(p, topic, { uuid: randomUUID(), device: 'mixed', loading_datetime: new Date().toISOString(), foo: 1 }, 'bad-3')
  await produce(p, topic, pi, 'mixed-pi')
  await produce(p, topic, after, 'mixed')

  const dlq = await consumeAll(env.KAFKA_DLQ_TOPIC!, 3, 30_000)
  t.equal(dlq.length, 3, 'three messages dead-lettered')
  const byKey = new Map(dlq.map(m => [String(m.key), m]))
  const header = (m: typeof dlq[number] | undefined, name: string): string | undefined => {
    for (const h of m?.headers ?? []) if (name in h) return String(h[name])
    return undefined
  }
  const bad1 = byKey.get('bad-1')
  t.equal(bad1?.value?.toString(), 'this is not json {', 'original value kept')
  t.match(header(bad1, 'dlq.reason'), /not JSON/)
  t.equal(header(bad1, 'dlq.source.topic'), topic)
  t.match(header(bad1, 'dlq.source.offset'), /^\d+$/)
  t.match(header(bad1, 'dlq.source.partition'), /^\d+$/)
  t.equal(header(bad1, 'trace'), 'abc', 'original headers kept')
  t.match(header(byKey.get('bad-2'), 'dlq.reason'), /LoadCPUTotal must be a number from 0 to 100/)
  t.match(header(byKey.get('bad-3'), 'dlq.reason'), /unknown kind/)

  const stored = await waitUntil(async () => (await app.inject('/devices/mixed')).json().length === 3, 20_000)
  t.ok(stored, 'the valid readings around the bad ones are stored')
  const uuids = (await app.inject('/devices/mixed')).json().map((r: { uuid: string }) => r.uuid).sort()
  t.same(uuids, [plain.uuid, framed.uuid, after.uuid].sort())
  const piStatus = (await app.inject('/devices/mixed-pi/status')).json()
  t.match(piStatus, { stressed: true, probability: 1 })
})

t.test('with the table unreachable, messages wait in Kafka and are stored after it is back', { skip: noBroker }, async t => {
  const dir = await tempDir(t)
  const port = await freePort()
  let db = await startEmbeddedDynamo(dir, port)
  t.teardown(() => db.close())
  const table = uniqueTable()
  const topic = unique('pc')
  const app = await build(t, { env: kafkaEnv(topic, { DYNAMODB_ENDPOINT: db.endpoint, DYNAMODB_TABLE: table, STATUS_CACHE_TTL_MS: '0' }) })
  const p = await producer(t)
  const first = pcReading({ device: 'outage' }, 3)
  await produce(p, topic, first, 'outage')
  t.ok(await waitUntil(async () => (await app.inject('/devices/outage')).statusCode === 200 && (await app.inject('/devices/outage')).json().length === 1, 20_000), 'stored before the outage')

  await db.close()
  const during = Array.from({ length: 50 }, (_, i) => pcReading({ device: 'outage' }, 2 - i / 100))
  for (const r of during) await produce(p, topic, r, 'outage')
  t.ok(await waitUntil(async () => (app.kafkaConsumer?.counters.retries ?? 0) > 0, 20_000), 'the consumer retries while the table is away')
  t.equal((await app.inject('/health')).statusCode, 503, 'health reports the table down')

  db = await startEmbeddedDynamo(dir, port)
  const ok = await waitUntil(async () => {
    const res = await app.inject('/devices/outage?limit=1000')
    return res.statusCode === 200 && res.json().length === 51
  }, 30_000)
  t.ok(ok, 'every message of the outage is stored once the table is back')
  const dynamo = await dynamoClient(t, db.endpoint)
  const items = await storedReadings(dynamo.doc, table, ['outage'])
  t.equal(items.length, 51)
  t.equal(new Set(items.map(i => i.uuid)).size, 51, 'no duplicates')
})

t.test('start-up with an unreachable broker does not crash; health reports the consumer down', async t => {
  const port = await freePort()
  const app = await build(t, { env: { KAFKA_BROKERS: `127.0.0.1:${port}`, KAFKA_TOPICS: 'pc1', COLLECTOR: 'off' } })
  const res = await app.inject('/health')
  t.equal(res.statusCode, 503)
  t.equal(res.json().components.kafka.status, 'down')
  t.equal(res.json().components.dynamodb.status, 'up')
  t.equal((await app.inject('/devices/')).statusCode, 200, 'the API still serves')
})

t.test('embedded default with Kafka: a second dynalite is not needed', { skip: noBroker }, async t => {
  // the config wiring: KAFKA_BROKERS turns the in-process collector off by default
  const db = await dynalite(t)
  const app = await build(t, { env: { KAFKA_BROKERS: brokers!, DYNAMODB_ENDPOINT: db.endpoint, COLLECTOR: 'auto', KAFKA_TOPICS: unique('x') } })
  t.equal((await app.inject('/health')).json().components.collector.status, 'disabled')
})

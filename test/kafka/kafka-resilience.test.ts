import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { dynalite, dynamoClient, spawnServer, tempDir, uniqueTable } from '../helper.js'
import {
  brokers, committedTotal, freePort, noBroker, produce, produceMany, producer, readings, storedReadings, unique, waitUntil
} from '../kafka-helper.js'

interface BrokerModule {
  startBroker: (o: { port: number, controllerPort: number, dataDir: string, log?: (m: string) => void }) =>
  Promise<{ brokers: string, stop: () => Promise<void> }>
}

const N = 4000

t.test('SIGKILL in the middle of a stream, then a restart: every reading is in the table exactly once', { skip: noBroker }, async t => {
  const db = await dynalite(t)
  const table = uniqueTable()
  const topic = unique('stream')
  const group = unique('group')
  const device = unique('kill')
  const data = readings(device, N)
  const p = await producer(t)
  await produceMany(p, topic, data, () => device)

  const env = { PORT: String(await freePort()), DYNAMODB_ENDPOINT: db.endpoint, DYNAMODB_TABLE: table, KAFKA_BROKERS: brokers!, KAFKA_TOPICS: topic, KAFKA_GROUP_ID: group, KAFKA_BATCH_SIZE: '100', COLLECTOR: 'off' }
  const dynamo = await dynamoClient(t, db.endpoint)
  const first = spawnServer(t, env)
  const some = await waitUntil(async () => (await storedReadings(dynamo.doc, table, [device])).length >= 300, 60_000, 50)
  t.ok(some, `some readings stored before the kill (${first.output().slice(-500)})`)
  first.child.kill('SIGKILL')
  await first.exited
  const atKill = (await storedReadings(dynamo.doc, table, [device])).length
  t.ok(atKill < N, `killed mid-stream (${atKill} of ${N} stored)`)

  const second = spawnServer(t, { ...env, PORT: String(await freePort()) })
  const all = await waitUntil(async () => (await storedReadings(dynamo.doc, table, [device])).length >= N, 90_000, 500)
  t.ok(all, `all readings stored after the restart (${second.output().slice(-500)})`)
  await sleep(1000)
  const items = await storedReadings(dynamo.doc, table, [device])
  t.equal(items.length, N, 'exactly N items')
  t.same(new Set(items.map(i => i.uuid)), new Set(data.map(r => r.uuid)), 'exactly the produced readings')
  second.child.kill('SIGTERM')
  t.equal(await second.exited, 0)
})

t.test('SIGTERM during a stream: the service drains, exits 0, and committed offsets match what was stored', { skip: noBroker }, async t => {
  const db = await dynalite(t)
  const table = uniqueTable()
  const topic = unique('stream')
  const group = unique('group')
  const device = unique('term')
  const p = await producer(t)
  // all to one partition (same key) so the committed offset counts the readings in order
  await produceMany(p, topic, readings(device, N), () => device)
  const dynamo = await dynamoClient(t, db.endpoint)
  const server = spawnServer(t, { PORT: String(await freePort()), DYNAMODB_ENDPOINT: db.endpoint, DYNAMODB_TABLE: table, KAFKA_BROKERS: brokers!, KAFKA_TOPICS: topic, KAFKA_GROUP_ID: group, KAFKA_BATCH_SIZE: '100', COLLECTOR: 'off' })
  t.ok(await waitUntil(async () => (await storedReadings(dynamo.doc, table, [device])).length >= 300, 60_000, 50), 'streaming')
  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0, `exits 0 (${server.output().slice(-500)})`)
  const stored = (await storedReadings(dynamo.doc, table, [device])).length
  const committed = await committedTotal(topic, group)
  t.ok(stored > 0 && stored <= N)
  t.equal(committed, stored, `committed offsets (${committed}) = readings stored (${stored})`)
})

t.test('the broker stopped and restarted while the service runs: it recovers and nothing is lost', { skip: noBroker }, async t => {
  // A broker of this test's own, so other test files keep theirs.
  const { startBroker } = await import(new URL('../../../tools/kafka-broker.mjs', import.meta.url).href) as BrokerModule
  const dataDir = await tempDir(t, 'sensors-kafka-restart-')
  const port = await freePort()
  const controllerPort = await freePort()
  let broker = await startBroker({ port, controllerPort, dataDir, log: () => {} })
  t.teardown(() => broker.stop())
  const db = await dynalite(t)
  const table = uniqueTable()
  const topic = unique('restart')
  const device = unique('bounce')
  const port2 = await freePort()
  const server = spawnServer(t, { PORT: String(port2), DYNAMODB_ENDPOINT: db.endpoint, DYNAMODB_TABLE: table, KAFKA_BROKERS: broker.brokers, KAFKA_TOPICS: topic, KAFKA_GROUP_ID: unique('group'), COLLECTOR: 'off' })
  const dynamo = await dynamoClient(t, db.endpoint)
  const before = readings(device, 100, Date.now() - 300_000)
  {
    const p = await producer(t, broker.brokers)
    await produceMany(p, topic, before, () => device)
  }
  t.ok(await waitUntil(async () => (await storedReadings(dynamo.doc, table, [device])).length === 100, 60_000), 'stored before the restart')

  await broker.stop()
  await sleep(3000)
  const health = await fetch(`http://127.0.0.1:${port2}/health`)
  t.equal(health.status, 503, 'health reports the consumer down while the broker is away')
  broker = await startBroker({ port, controllerPort, dataDir, log: () => {} })
  const after = readings(device, 100, Date.now() - 100_000)
  const p = await producer(t, broker.brokers)
  for (const r of after) await produce(p, topic, r, device)
  const ok = await waitUntil(async () => (await storedReadings(dynamo.doc, table, [device])).length === 200, 90_000, 500)
  t.ok(ok, `recovered: every reading stored (${server.output().slice(-800)})`)
  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0)
})

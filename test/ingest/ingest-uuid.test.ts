import t from 'tap'
import type rdkafka from 'node-rdkafka'
import { DeleteCommand, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb'
import { build, dynalite, dynamoClient, pcReading, uniqueTable } from '../helper.js'
import { brokers, consumeAll, noBroker, produce, producer, storedReadings, unique, waitUntil } from '../kafka-helper.js'

function header (m: rdkafka.Message | undefined, name: string): string | undefined {
  for (const h of m?.headers ?? []) if (name in h) return String(h[name])
  return undefined
}

async function setup (t: { teardown: (fn: () => unknown) => void }, extra: Record<string, string> = {}): Promise<{ app: Awaited<ReturnType<typeof build>>, env: Record<string, string>, topic: string, table: string, doc: Awaited<ReturnType<typeof dynamoClient>>['doc'] }> {
  const db = await dynalite(t)
  const table = uniqueTable()
  const topic = unique('pc')
  const env = {
    KAFKA_BROKERS: brokers!,
    KAFKA_TOPICS: topic,
    KAFKA_GROUP_ID: unique('group'),
    KAFKA_DLQ_TOPIC: unique('dlq'),
    DYNAMODB_ENDPOINT: db.endpoint,
    DYNAMODB_TABLE: table,
    STATUS_CACHE_TTL_MS: '0',
    ...extra
  }
  const app = await build(t, { env })
  const { doc } = await dynamoClient(t, db.endpoint)
  return { app, env, topic, table, doc }
}

async function partition (doc: Awaited<ReturnType<typeof dynamoClient>>['doc'], table: string, device: string): Promise<Array<Record<string, unknown>>> {
  const out = await doc.send(new QueryCommand({ TableName: table, KeyConditionExpression: 'device = :d', ExpressionAttributeValues: { ':d': device } }))
  return out.Items ?? []
}

t.test('an identical redelivery is one reading: status and its revision unchanged, nothing dead-lettered', { skip: noBroker }, async t => {
  const { app, env, topic, table, doc } = await setup(t)
  const p = await producer(t)
  const device = unique('dup')
  const reading = pcReading({ device })
  await produce(p, topic, reading, device)
  t.ok(await waitUntil(async () => (await app.inject(`/devices/${device}/status`)).statusCode === 200, 20_000), 'stored')
  const before = (await doc.send(new GetCommand({ TableName: table, Key: { device, sk: 'status' } }))).Item
  await produce(p, topic, { ...reading }, device)
  await produce(p, topic, reading, device)
  t.ok(await waitUntil(async () => (app.kafkaConsumer?.counters.duplicates ?? 0) >= 2, 20_000), 'both counted as duplicates')
  const after = (await doc.send(new GetCommand({ TableName: table, Key: { device, sk: 'status' } }))).Item
  t.same(after, before, 'the status item, revision included, is as it was')
  const items = await storedReadings(doc, table, [device])
  t.equal(items.length, 1, 'one reading item')
  t.equal(app.kafkaConsumer?.counters.deadLettered, 0)
  t.equal((await consumeAll(env.KAFKA_DLQ_TOPIC!, 1, 3000)).length, 0, 'nothing in the DLQ')
  t.equal((await app.inject(`/devices/${device}`)).json().length, 1)
})

t.test('the same uuid and time with other values: the first is kept, the status matches it, the second goes to the DLQ', { skip: noBroker }, async t => {
  const { app, env, topic, table, doc } = await setup(t)
  const p = await producer(t)
  const device = unique('conflict')
  const first = pcReading({ device, LoadCPUTotal: 5 })
  const second = { ...first, LoadCPUTotal: 100 }
  await produce(p, topic, first, device)
  await produce(p, topic, second, device)
  const [dead] = await consumeAll(env.KAFKA_DLQ_TOPIC!, 1, 30_000)
  t.equal(JSON.parse(String(dead?.value)).LoadCPUTotal, 100, 'the second is dead-lettered')
  t.equal(header(dead, 'dlq.reason'), `uuid ${String(first.uuid)} is already stored for device ${device} with other values`)
  const items = await storedReadings(doc, table, [device])
  t.equal(items.length, 1)
  t.equal(items[0]?.LoadCPUTotal, 5, 'first write wins')
  const [served] = (await app.inject(`/devices/${device}`)).json()
  const status = (await app.inject(`/devices/${device}/status`)).json()
  t.equal(status.uuid, first.uuid)
  t.equal(status.probability, served.probability, 'the status has the stored reading\'s probability')
  t.equal(status.probability, items[0]?.probability)
})

t.test('the same uuid at another time is one reading; the other goes to the DLQ', { skip: noBroker }, async t => {
  const { app, env, topic, table, doc } = await setup(t)
  const p = await producer(t)
  const device = unique('moved')
  const first = pcReading({ device }, 2)
  const later = { ...first, loading_datetime: new Date().toISOString() }
  await produce(p, topic, first, device)
  await produce(p, topic, later, device)
  const dlq = await consumeAll(env.KAFKA_DLQ_TOPIC!, 1, 30_000)
  t.equal(dlq.length, 1)
  t.equal(JSON.parse(String(dlq[0]?.value)).loading_datetime, later.loading_datetime)
  t.match(header(dlq[0], 'dlq.reason'), /is already stored for device .* with other values/)
  const items = await storedReadings(doc, table, [device])
  t.same(items.map(i => i.loading_datetime), [new Date(String(first.loading_datetime)).toISOString()])
  t.equal((await app.inject(`/devices/${device}/status`)).json().loading_datetime, items[0]?.loading_datetime, 'the status is the stored reading')
})

t.test('within one call and across calls in flight together, the first reading under a uuid wins', async t => {
  const { app, table, doc } = await setup(t, { KAFKA_BROKERS: '' })
  const a = pcReading({ device: 'pc7', LoadCPUTotal: 5 })
  const result = await app.ingest.ingest([a, { ...a, LoadCPUTotal: 6 }, { ...a }, pcReading({ device: 'pc7' })])
  t.equal(result.stored, 2)
  t.equal(result.duplicates, 1)
  t.same(result.rejected, [{ index: 1, reasons: [`uuid ${String(a.uuid)} is already stored for device pc7 with other values`] }])

  const b = pcReading({ device: 'pc8', LoadCPUTotal: 5 })
  const calls = await Promise.all([app.ingest.ingest([b]), app.ingest.ingest([{ ...b, LoadCPUTotal: 50 }]), app.ingest.ingest([{ ...b }])])
  t.same(calls.map(c => [c.stored, c.duplicates, c.rejected.length]), [[1, 0, 0], [0, 0, 1], [0, 1, 0]], 'in call order')
  const items = await storedReadings(doc, table, ['pc8'])
  t.same(items.map(i => i.LoadCPUTotal), [5])

  // The uuid claim: beside the readings, outside every reading query and the all-readings index.
  const claim = (await partition(doc, table, 'pc8')).find(i => String(i.sk).startsWith('uuid#'))
  t.match(claim, { sk: `uuid#${String(b.uuid)}`, reading_sk: items[0]?.sk })
  t.notOk('feed' in (claim ?? {}), 'not in the all-readings index')
  const all = (await app.inject('/devices/?limit=1000')).json()
  t.equal(all.Count, 3, 'the index holds the three readings only')
  t.equal((await app.inject('/devices/pc8')).json().length, 1)
})

t.test('a claim whose reading is missing (a crash between them) is repaired by the redelivery; a lagging status is moved forward', async t => {
  const { app: crashed, env, table, doc } = await setup(t, { KAFKA_BROKERS: '' })
  const r = pcReading({ device: 'pc9' })
  await crashed.ingest.ingest([r])
  // The process after the crash: it has written nothing yet.
  const app = await build(t, { env })
  const [item] = await storedReadings(doc, table, ['pc9'])
  await doc.send(new DeleteCommand({ TableName: table, Key: { device: 'pc9', sk: item!.sk } }))
  await doc.send(new DeleteCommand({ TableName: table, Key: { device: 'pc9', sk: 'status' } }))
  t.equal((await app.inject('/devices/pc9/status')).statusCode, 404)
  t.same(await app.ingest.ingest([{ ...r }]), { stored: 0, duplicates: 1, rejected: [] })
  t.same(await storedReadings(doc, table, ['pc9']), [item], 'rewritten as it was stored')
  const status = (await app.inject('/devices/pc9/status')).json()
  t.match(status, { uuid: r.uuid, probability: item!.probability })
})

t.test('with RETENTION_DAYS the claim expires with its reading', async t => {
  const { app, table, doc } = await setup(t, { KAFKA_BROKERS: '', RETENTION_DAYS: '2' })
  await app.ingest.ingest([pcReading({ device: 'pc6' })])
  const items = await partition(doc, table, 'pc6')
  const reading = items.find(i => /^\d/.test(String(i.sk)))
  const claim = items.find(i => String(i.sk).startsWith('uuid#'))
  t.type(reading?.expires_at, 'number')
  t.equal(claim?.expires_at, reading?.expires_at)
})

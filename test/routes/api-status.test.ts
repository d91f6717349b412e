import t from 'tap'
import { PutCommand } from '@aws-sdk/lib-dynamodb'
import { build, dynalite, dynamoClient, pcReading, piReading, uniqueTable } from '../helper.js'

const HOT = { TemperatureCPUPackage: 100, LoadCPUTotal: 100, PowerCPUPackage: 120, ClockCPUCoreOne: 4800 }
const IDLE = { TemperatureCPUPackage: 40, LoadCPUTotal: 3, PowerCPUPackage: 5, ClockCPUCoreOne: 2400 }

t.test('status of a device without readings is a JSON 404', async t => {
  const app = await build(t)
  // the first answer waits for the table; the next ones come from the cached "no status" (answered synchronously)
  for (const attempt of ['read from the table', 'from memory', 'from memory again']) {
    const res = await app.inject('/devices/pc9/status')
    t.equal(res.statusCode, 404, attempt)
    t.same(res.json(), { statusCode: 404, error: 'Not Found', message: 'No readings for device "pc9"' })
  }
})

t.test('status follows the newest reading: OK, then stressed', async t => {
  const app = await build(t, { env: { STATUS_CACHE_TTL_MS: '0' } })
  const idle = pcReading(IDLE)
  await app.ingest.ingest([idle])
  let res = await app.inject('/devices/pc1/status')
  t.equal(res.statusCode, 200)
  let body = res.json()
  t.match(body, { msg: 'The device is OK', device: 'pc1', stressed: false, stale: false, uuid: idle.uuid, kind: 'pc' })
  t.ok(body.probability >= 0 && body.probability <= 0.7)
  t.ok(body.age_seconds >= 0 && body.age_seconds < 5)

  const hot = pcReading(HOT)
  await app.ingest.ingest([hot])
  body = (await app.inject('/devices/pc1/status')).json()
  t.match(body, { msg: 'The device is stressed', stressed: true, uuid: hot.uuid })
  t.ok(body.probability > 0.7)
  res = await app.inject('/devices/pc1/status')
  t.equal(res.json().loading_datetime, new Date(String(hot.loading_datetime)).toISOString())
})

t.test('a late, older reading never moves the status backwards', async t => {
  const app = await build(t, { env: { STATUS_CACHE_TTL_MS: '0' } })
  const newest = pcReading(IDLE, 0)
  await app.ingest.ingest([newest])
  const late = pcReading(HOT, 2)
  await app.ingest.ingest([late])
  const body = (await app.inject('/devices/pc1/status')).json()
  t.equal(body.uuid, newest.uuid)
  t.equal(body.msg, 'The device is OK')
  const list = (await app.inject('/devices/pc1')).json()
  t.equal(list.length, 2, 'the late reading is still stored')
})

t.test('a device whose newest reading is older than the staleness window is not reporting', async t => {
  const app = await build(t, { env: { STALE_AFTER_SECONDS: '60', STATUS_CACHE_TTL_MS: '0' } })
  await app.ingest.ingest([pcReading(HOT, 5)])
  const body = (await app.inject('/devices/pc1/status')).json()
  t.match(body, { msg: 'The device is not reporting', stale: true, stressed: true })
  t.ok(body.age_seconds >= 300)
})

t.test('a Raspberry Pi status carries its throttled flags', async t => {
  const app = await build(t)
  await app.ingest.ingest([piReading({ throttled: '0x80008' })])
  const body = (await app.inject('/devices/raspberry/status')).json()
  t.match(body, { msg: 'The device is stressed', stressed: true, probability: 1, kind: 'raspberry' })
  t.match(body.throttled_flags, { soft_temperature_limit: true, soft_temperature_limit_occurred: true, throttled: false })
})

t.test('the original clients\' seven paths answer 200 with the original shapes', async t => {
  const app = await build(t)
  await app.ingest.ingest([pcReading({ device: 'pc1' }), pcReading({ device: 'pc2' }), piReading()])
  t.equal((await app.inject('/')).statusCode, 200)
  const all = (await app.inject('/devices/')).json()
  t.ok(Array.isArray(all.Items) && typeof all.Count === 'number')
  for (const device of ['pc1', 'pc2', 'raspberry']) {
    const list = await app.inject(`/devices/${device}`)
    t.equal(list.statusCode, 200)
    t.ok(Array.isArray(list.json()))
    const status = await app.inject(`/devices/${device}/status`)
    t.equal(status.statusCode, 200)
    t.match(status.json().msg, /^The device is (OK|stressed)$/)
  }
})

t.test('pollers revalidate with ETag: 304 until a newer reading arrives', async t => {
  const app = await build(t, { env: { STATUS_CACHE_TTL_MS: '0' } })
  await app.ingest.ingest([pcReading(IDLE, 0.01)])
  const first = await app.inject('/devices/pc1/status')
  const etag = String(first.headers.etag)
  t.match(etag, /^W\/"[0-9a-f-]{36}"$/)
  t.equal(first.headers['cache-control'], 'no-cache')
  const again = await app.inject({ url: '/devices/pc1/status', headers: { 'if-none-match': etag } })
  t.equal(again.statusCode, 304)
  t.equal(again.body, '')
  await app.ingest.ingest([pcReading(HOT)])
  const changed = await app.inject({ url: '/devices/pc1/status', headers: { 'if-none-match': etag } })
  t.equal(changed.statusCode, 200)
  t.not(changed.headers.etag, etag)
})

t.test('the status cache serves concurrent pollers, and this process writes through at once', async t => {
  const app = await build(t, { env: { STATUS_CACHE_TTL_MS: '60000' } })
  const idle = pcReading(IDLE, 1)
  await app.ingest.ingest([idle])
  const answers = await Promise.all(Array.from({ length: 50 }, () => app.inject('/devices/pc1/status')))
  t.ok(answers.every(a => a.statusCode === 200 && a.json().uuid === idle.uuid))
  const hot = pcReading(HOT)
  await app.ingest.ingest([hot])
  t.equal((await app.inject('/devices/pc1/status')).json().uuid, hot.uuid, 'write-through: no TTL wait for readings ingested here')
})

t.test('several API tasks agree within the cache TTL; this process\'s own writes show at once', async t => {
  const db = await dynalite(t)
  const env = { DYNAMODB_ENDPOINT: db.endpoint, DYNAMODB_TABLE: uniqueTable(), STATUS_CACHE_TTL_MS: '400', HISTORY_CACHE_TTL_MS: '400' }
  const a = await build(t, { env })
  const b = await build(t, { env })
  const first = pcReading(IDLE, 0.02)
  await a.ingest.ingest([first])
  t.equal((await a.inject('/devices/pc1')).json().length, 1)
  t.equal((await a.inject('/devices/pc1/status')).json().uuid, first.uuid)

  const second = pcReading(HOT, 0.01)
  await b.ingest.ingest([second])
  t.equal((await b.inject('/devices/pc1')).json().length, 2, 'the writer sees its write at once')
  t.equal((await a.inject('/devices/pc1')).json().length, 1, 'another task serves its cached page within the TTL')
  t.equal((await a.inject('/devices/pc1/status')).json().uuid, first.uuid, 'and its cached status')
  await new Promise(resolve => setTimeout(resolve, 450))
  // Between one and two TTLs: served at once, refreshed behind.
  await a.inject('/devices/pc1')
  await a.inject('/devices/pc1/status')
  await new Promise(resolve => setTimeout(resolve, 100))
  t.equal((await a.inject('/devices/pc1')).json().length, 2, 'after the TTL the page is fresh')
  t.equal((await a.inject('/devices/pc1/status')).json().uuid, second.uuid, 'and so is the status')
  await new Promise(resolve => setTimeout(resolve, 900))
  t.equal((await b.inject('/devices/pc1/status')).json().uuid, second.uuid)
  const third = pcReading(IDLE)
  await b.ingest.ingest([third])
  await new Promise(resolve => setTimeout(resolve, 850))
  t.equal((await a.inject('/devices/pc1/status')).json().uuid, third.uuid, 'past two TTLs a request waits for the table')
  t.equal((await a.inject('/devices/pc1?limit=1')).json()[0].uuid, third.uuid, 'pages of other sizes are cached apart')
})

t.test('a status read from the table is the one the writer answers, every field (a Pi\'s flags too)', async t => {
  const db = await dynalite(t)
  const env = { DYNAMODB_ENDPOINT: db.endpoint, DYNAMODB_TABLE: uniqueTable() }
  const writer = await build(t, { env })
  const reader = await build(t, { env })
  await writer.ingest.ingest([pcReading(HOT), pcReading({ device: 'pc2', ...IDLE }), piReading({ throttled: '0x50005' })])
  const withoutAge = (body: Record<string, unknown>) => { const { age_seconds: _age, ...rest } = body; return rest }
  for (const device of ['pc1', 'pc2', 'raspberry']) {
    const written = await writer.inject(`/devices/${device}/status`)
    const read = await reader.inject(`/devices/${device}/status`)
    t.equal(read.statusCode, 200, device)
    t.same(withoutAge(read.json()), withoutAge(written.json()), `${device}: the same status from memory and from the table`)
    t.equal(read.headers.etag, written.headers.etag)
  }
  t.same((await reader.inject('/devices/raspberry/status')).json().throttled_flags, {
    under_voltage: true,
    arm_frequency_capped: false,
    throttled: true,
    soft_temperature_limit: false,
    under_voltage_occurred: true,
    arm_frequency_capped_occurred: false,
    throttled_occurred: true,
    soft_temperature_limit_occurred: false
  })
})

t.test('a status item this service cannot read is a 404 for that device alone, logged once', async t => {
  const db = await dynalite(t)
  const table = uniqueTable()
  const lines: Array<Record<string, unknown>> = []
  const writer = await build(t, { env: { DYNAMODB_ENDPOINT: db.endpoint, DYNAMODB_TABLE: table } })
  const reader = await build(t, {
    env: { DYNAMODB_ENDPOINT: db.endpoint, DYNAMODB_TABLE: table, LOG_LEVEL: 'warn', STATUS_CACHE_TTL_MS: '0' },
    logStream: { write: line => { lines.push(JSON.parse(line)) } }
  })
  await writer.ingest.ingest([pcReading(), pcReading({ device: 'pc2' })])
  // written by hand, as no version of this service writes it: a kind it does not know, a string probability
  const doc = (await dynamoClient(t, db.endpoint)).doc
  await doc.send(new PutCommand({
    TableName: table,
    Item: { device: 'pc2', sk: 'status', latest_sk: '0', kind: 'toaster', uuid: 'x', loading_datetime: new Date().toISOString(), prediction: 0, probability: 'high' }
  }))
  for (let i = 0; i < 3; i++) {
    const [good, bad] = await Promise.all([reader.inject('/devices/pc1/status'), reader.inject('/devices/pc2/status')])
    t.equal(good.statusCode, 200, 'the other device of the same batched read')
    t.equal(bad.statusCode, 404)
    t.equal(bad.json().message, 'No readings for device "pc2"')
  }
  const warnings = lines.filter(l => l.device === 'pc2')
  t.equal(warnings.length, 1, 'one warning for the device')
  t.match(warnings[0], { level: 40, msg: /cannot read/ })
  t.ok((warnings[0]!.attributes as string[]).includes('kind'), 'names the attributes it found')

  // the device's next reading rewrites the item
  await writer.ingest.ingest([pcReading({ device: 'pc2' })])
  t.equal((await reader.inject('/devices/pc2/status')).statusCode, 200, 'readable again after a new reading')
})

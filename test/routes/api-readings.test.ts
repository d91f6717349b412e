import t from 'tap'
import { randomUUID } from 'node:crypto'
import { QueryCommand } from '@aws-sdk/lib-dynamodb'
import { build, dynalite, dynamoClient, pcReading, piReading, uniqueTable } from '../helper.js'

t.test('readings of a device are served newest first, with prediction, probability and ISO times', async t => {
  const app = await build(t)
  const older = pcReading({ loading_datetime: '2022-10-06@18:08:55' })
  const newer = pcReading({ TemperatureGPUCore: 61, LoadGPUCore: 12 })
  const result = await app.ingest.ingest([older, newer])
  t.same(result, { stored: 2, duplicates: 0, rejected: [] })

  const res = await app.inject('/devices/pc1')
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.ok(Array.isArray(body), 'a JSON array, as in the original API')
  t.equal(body.length, 2)
  t.equal(body[0].uuid, newer.uuid)
  t.equal(body[1].uuid, older.uuid)
  t.equal(body[1].loading_datetime, '2022-10-06T18:08:55.000Z', 'legacy time stored and served as ISO 8601 UTC')
  t.equal(body[0].TemperatureGPUCore, 61)
  t.notOk('TemperatureGPUCore' in body[1], 'a sensor the host lacks is absent, not 0')
  for (const r of body) {
    t.ok(r.prediction === 0 || r.prediction === 1)
    t.ok(r.probability >= 0 && r.probability <= 1)
    t.equal(r.kind, 'pc')
    t.notOk('sk' in r || 'feed' in r, 'no storage keys leak')
  }
  t.equal(res.headers.link, undefined, 'no Link header on the last page')
})

t.test('a Raspberry Pi reading carries its decoded throttled flags', async t => {
  const app = await build(t)
  await app.ingest.ingest([piReading({ throttled: '0x50005' })])
  const [r] = (await app.inject('/devices/raspberry')).json()
  t.equal(r.throttled, '0x50005')
  t.match(r.throttled_flags, {
    under_voltage: true,
    throttled: true,
    arm_frequency_capped: false,
    under_voltage_occurred: true,
    throttled_occurred: true,
    soft_temperature_limit_occurred: false
  })
  t.equal(r.prediction, 1, 'throttled now is ground truth for stressed')
})

t.test('device readings page through a cursor and the Link header', async t => {
  const app = await build(t)
  const readings = Array.from({ length: 25 }, (_, i) => pcReading({}, i))
  await app.ingest.ingest(readings)
  await app.ingest.ingest([pcReading({ device: 'pc2' })])
  const seen: string[] = []
  let url: string | undefined = '/devices/pc1?limit=10'
  let pages = 0
  while (url !== undefined) {
    const res = await app.inject(url)
    t.equal(res.statusCode, 200)
    pages++
    seen.push(...res.json().map((r: { uuid: string }) => r.uuid))
    const link = res.headers.link as string | undefined
    url = link === undefined ? undefined : /^<([^>]+)>; rel="next"$/.exec(link)?.[1]
    if (link !== undefined) t.match(link, /limit=10/, 'the next link keeps the query')
  }
  t.equal(pages, 3)
  t.same(seen, readings.map(r => r.uuid), 'every reading once, newest first')
})

t.test('all readings page through next_cursor in the original {Items, Count} shape', async t => {
  const app = await build(t)
  const readings = [
    ...Array.from({ length: 7 }, (_, i) => pcReading({ device: 'pc1' }, i * 2)),
    ...Array.from({ length: 6 }, (_, i) => pcReading({ device: 'pc2' }, i * 2 + 1))
  ]
  await app.ingest.ingest(readings)
  const seen: string[] = []
  let cursor: string | undefined
  do {
    const res = await app.inject({ url: '/devices/', query: { limit: '5', ...(cursor !== undefined ? { cursor } : {}) } })
    t.equal(res.statusCode, 200)
    const body = res.json()
    t.equal(body.Count, body.Items.length)
    seen.push(...body.Items.map((r: { uuid: string, loading_datetime: string }) => r.uuid))
    cursor = body.next_cursor
  } while (cursor !== undefined)
  const expected = [...readings].sort((a, b) => String(b.loading_datetime).localeCompare(String(a.loading_datetime))).map(r => r.uuid)
  t.same(seen, expected, 'all devices interleaved by time, newest first')
  t.equal((await app.inject('/devices')).statusCode, 200, 'also without the trailing slash')
})

t.test('from and to bound the readings', async t => {
  const app = await build(t)
  await app.ingest.ingest([
    pcReading({ loading_datetime: '2024-05-01T10:00:00Z' }),
    pcReading({ loading_datetime: '2024-05-02T10:00:00Z' }),
    pcReading({ loading_datetime: '2024-05-03T10:00:00Z' })
  ])
  const res = await app.inject('/devices/pc1?from=2024-05-02&to=2024-05-02')
  t.same(res.json().map((r: { loading_datetime: string }) => r.loading_datetime), ['2024-05-02T10:00:00.000Z'])
  const all = await app.inject('/devices/?from=2024-05-02T00:00:00Z')
  t.equal(all.json().Count, 2)
})

t.test('bad queries are 400s with a JSON error, never 500s', async t => {
  const app = await build(t)
  await app.ingest.ingest([pcReading(), pcReading({ device: 'pc2' })])
  const page = await app.inject('/devices/pc2?limit=1')
  const otherDevicesCursor = /cursor=([^&>]+)/.exec(String((await app.inject('/devices/pc1?limit=1')).headers.link))
  for (const url of [
    '/devices/pc1?limit=0', '/devices/pc1?limit=1001', '/devices/pc1?limit=abc',
    '/devices/pc1?cursor=garbage', '/devices/?cursor=' + Buffer.from('["pc1","x"]').toString('base64url'),
    '/devices/pc1?from=yesterday', '/devices/pc1?from=2024-05-03&to=2024-05-01', '/devices/?to=2024-13-01',
    '/devices/bad!id', '/devices/bad!id/status', '/devices/' + 'a'.repeat(65)
  ]) {
    const res = await app.inject(url)
    t.equal(res.statusCode, 400, url)
    t.same(Object.keys(res.json()).sort(), ['error', 'message', 'statusCode'], `${url} error shape`)
  }
  t.equal(page.statusCode, 200)
  // a cursor of pc1 used on pc2 is refused
  const res = await app.inject(`/devices/pc2?cursor=${otherDevicesCursor?.[1] ?? 'x'}`)
  t.equal(res.statusCode, 400)
  t.match(res.json().message, /cursor/)
})

t.test('a reading delivered twice is stored once (through the table itself)', async t => {
  const db = await dynalite(t)
  const table = uniqueTable()
  const app = await build(t, { env: { DYNAMODB_ENDPOINT: db.endpoint, DYNAMODB_TABLE: table } })
  const reading = pcReading()
  await app.ingest.ingest([reading])
  t.same(await app.ingest.ingest([reading, { ...reading }]), { stored: 0, duplicates: 2, rejected: [] }, 'redeliveries are duplicates')
  const dynamo = await dynamoClient(t, db.endpoint)
  const out = await dynamo.doc.send(new QueryCommand({ TableName: table, KeyConditionExpression: 'device = :d', ExpressionAttributeValues: { ':d': 'pc1' } }))
  const readings = (out.Items ?? []).filter(i => i.sk !== 'status' && !String(i.sk).startsWith('uuid#') && !String(i.sk).startsWith('r#'))
  t.equal(readings.length, 1)
  t.equal(out.Items?.length, 9, 'the reading, its uuid claim, the status and its history rollups (a bucket of each of the six intervals)')
  t.equal(readings[0]?.uuid, reading.uuid)
})

t.test('invalid readings are rejected with reasons and never written', async t => {
  const app = await build(t)
  const good = pcReading()
  const result = await app.ingest.ingest([
    'not an object',
    pcReading({ TemperatureCPUPackage: 900 }),
    pcReading({ uuid: 'nope', device: 'bad id' }),
    pcReading({ loading_datetime: 'yesterday' }),
    pcReading({ loading_datetime: new Date(Date.now() + 86_400_000).toISOString() }),
    { uuid: randomUUID(), device: 'x', loading_datetime: new Date().toISOString() },
    { ...pcReading(), throttled: '0x0' },
    good
  ])
  t.equal(result.stored, 1)
  const reasons = Object.fromEntries(result.rejected.map(r => [r.index, r.reasons.join(' | ')]))
  t.match(reasons[0], /JSON object/)
  t.match(reasons[1], /TemperatureCPUPackage must be a number from -50 to 150.*900/)
  t.match(reasons[2], /uuid must match/)
  t.match(reasons[2], /device must match/)
  t.match(reasons[3], /loading_datetime must be ISO 8601/)
  t.match(reasons[4], /future/)
  t.match(reasons[5], /unknown kind/)
  t.match(reasons[6], /mixes/)
  const stored = (await app.inject('/devices/pc1')).json()
  t.same(stored.map((r: { uuid: string }) => r.uuid), [good.uuid])
  t.equal((await app.inject('/devices/x/status')).statusCode, 404)
})

t.test('storage failures are 503s without internal details', async t => {
  const db = await dynalite(t)
  const app = await build(t, { env: { DYNAMODB_ENDPOINT: db.endpoint, STATUS_CACHE_TTL_MS: '0' } })
  t.equal((await app.inject('/health')).statusCode, 200)
  await db.close()
  for (const url of ['/devices/pc1', '/devices/', '/devices/pc1/status']) {
    const res = await app.inject(url)
    t.equal(res.statusCode, 503, url)
    t.same(res.json(), { statusCode: 503, error: 'Service Unavailable', message: 'Storage is unavailable, try again shortly' })
  }
  const health = await app.inject('/health')
  t.equal(health.statusCode, 503)
  t.equal(health.json().components.dynamodb.status, 'down')
})

import t from 'tap'
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb'
import type { FastifyInstance } from 'fastify'
import { build, dynaliteProcess, overHttp, pcReading, piReading } from '../helper.js'
import type { Reading } from '../../schemas/readings.js'
import type { Predictor } from '../../ingest/service.js'
import { loadConfig } from '../../config.js'

// GET /devices/{device}/stats (issue 16): buckets of rollups kept at ingest time.

type Test = Pick<typeof t, 'equal' | 'same' | 'ok' | 'match'>

/** Stressed when the load is over 90; the probability is the load / 100: values a test can compute by hand. */
const predictor: Predictor = {
  predict: (_kind, r) => {
    const load = typeof r.LoadCPUTotal === 'number' ? r.LoadCPUTotal : 0
    return { prediction: load > 90 ? 1 : 0, probability: load / 100 }
  }
}

function errorShape (t: Test, res: { statusCode: number, headers: Record<string, unknown>, json: () => any }, status: number, what: string): any {
  t.equal(res.statusCode, status, `${what}: ${status}`)
  t.match(res.headers['content-type'], /^application\/json/, `${what}: JSON`)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['error', 'message', 'statusCode'], `${what}: the error shape`)
  return body
}

const DAY = 'from=2024-05-02T00:00:00Z&to=2024-05-02'
const at = (time: string, temperature: number, load: number): Record<string, unknown> =>
  pcReading({ loading_datetime: time, TemperatureCPUPackage: temperature, LoadCPUTotal: load })

/** Seven readings across minute, 5-minute, hour and 6-hour boundaries of 2024-05-02 (UTC). */
const SEVEN = (): Array<Record<string, unknown>> => [
  at('2024-05-02T10:00:00.000Z', 50, 10),
  at('2024-05-02T10:00:59.999Z', 60, 95),
  at('2024-05-02T10:01:00.000Z', 70, 20),
  at('2024-05-02T10:04:59.999Z', 40, 30),
  at('2024-05-02T10:05:00.000Z', 80, 40),
  at('2024-05-02T11:59:59.999Z', 30, 100),
  at('2024-05-02T12:00:00.000Z', 20, 50)
]

async function stats (app: FastifyInstance, query: string, device = 'pc1'): Promise<any> {
  const res = await app.inject(`/devices/${device}/stats?${query}`)
  if (res.statusCode !== 200) throw new Error(`${query}: ${res.statusCode} ${res.body}`)
  return res.json()
}

/** start, count, stressed, then [min, max, avg] of the temperature and the load of each bucket */
const brief = (body: any): unknown[] => body.buckets.map((b: any) => [
  b.start, b.count, b.stressed,
  [b.fields.TemperatureCPUPackage.min, b.fields.TemperatureCPUPackage.max, b.fields.TemperatureCPUPackage.avg],
  [b.fields.LoadCPUTotal.min, b.fields.LoadCPUTotal.max, b.fields.LoadCPUTotal.avg]
])

t.test('every interval: buckets on UTC multiples, oldest first, empty ones left out, values as computed by hand', async t => {
  const app = await build(t, { predictor })
  t.equal((await app.ingest.ingest(SEVEN())).stored, 7)

  const m1 = await stats(app, `${DAY}&interval=1m`)
  t.same({ ...m1, buckets: undefined }, { device: 'pc1', kind: 'pc', interval: '1m', from: '2024-05-02T00:00:00.000Z', to: '2024-05-02T23:59:59.999Z', buckets: undefined })
  t.same(brief(m1), [
    ['2024-05-02T10:00:00.000Z', 2, 1, [50, 60, 55], [10, 95, 52.5]],
    ['2024-05-02T10:01:00.000Z', 1, 0, [70, 70, 70], [20, 20, 20]],
    ['2024-05-02T10:04:00.000Z', 1, 0, [40, 40, 40], [30, 30, 30]],
    ['2024-05-02T10:05:00.000Z', 1, 0, [80, 80, 80], [40, 40, 40]],
    ['2024-05-02T11:59:00.000Z', 1, 1, [30, 30, 30], [100, 100, 100]],
    ['2024-05-02T12:00:00.000Z', 1, 0, [20, 20, 20], [50, 50, 50]]
  ], '1m: the minutes between are left out')
  t.same(brief(await stats(app, `${DAY}&interval=5m`)), [
    ['2024-05-02T10:00:00.000Z', 4, 1, [40, 70, 55], [10, 95, 38.75]],
    ['2024-05-02T10:05:00.000Z', 1, 0, [80, 80, 80], [40, 40, 40]],
    ['2024-05-02T11:55:00.000Z', 1, 1, [30, 30, 30], [100, 100, 100]],
    ['2024-05-02T12:00:00.000Z', 1, 0, [20, 20, 20], [50, 50, 50]]
  ], '5m')
  t.same(brief(await stats(app, `${DAY}&interval=15m`)), [
    ['2024-05-02T10:00:00.000Z', 5, 1, [40, 80, 60], [10, 95, 39]],
    ['2024-05-02T11:45:00.000Z', 1, 1, [30, 30, 30], [100, 100, 100]],
    ['2024-05-02T12:00:00.000Z', 1, 0, [20, 20, 20], [50, 50, 50]]
  ], '15m')
  t.same(brief(await stats(app, `${DAY}&interval=1h`)), [
    ['2024-05-02T10:00:00.000Z', 5, 1, [40, 80, 60], [10, 95, 39]],
    ['2024-05-02T11:00:00.000Z', 1, 1, [30, 30, 30], [100, 100, 100]],
    ['2024-05-02T12:00:00.000Z', 1, 0, [20, 20, 20], [50, 50, 50]]
  ], '1h')
  t.same(brief(await stats(app, `${DAY}&interval=6h`)), [
    ['2024-05-02T06:00:00.000Z', 6, 2, [30, 80, 55], [10, 100, 49.166666666666664]],
    ['2024-05-02T12:00:00.000Z', 1, 0, [20, 20, 20], [50, 50, 50]]
  ], '6h')
  const d1 = await stats(app, `${DAY}&interval=1d`)
  t.same(brief(d1), [['2024-05-02T00:00:00.000Z', 7, 2, [20, 80, 50], [10, 100, 345 / 7]]], '1d')
  t.same(Object.keys(d1.buckets[0].fields), ['ClockCPUCoreOne', 'TemperatureCPUPackage', 'LoadCPUTotal', 'PowerCPUPackage', 'probability'],
    'every numeric field the readings carry, in the schema\'s order (no GPU on this host)')
  t.same(d1.buckets[0].fields.probability, { min: 0.1, max: 1, avg: 3.45 / 7 }, 'the model\'s probability too')

  // the range: from the bucket holding `from` to the one holding `to`
  t.same((await stats(app, 'from=2024-05-02T10:03:00Z&to=2024-05-02T10:05:00Z&interval=5m')).buckets.map((b: any) => b.start),
    ['2024-05-02T10:00:00.000Z', '2024-05-02T10:05:00.000Z'], 'the buckets holding from and to')
  t.same((await stats(app, 'from=2024-05-02T10:01:00Z&to=2024-05-02T10:04:00Z&interval=1m')).buckets.map((b: any) => b.start),
    ['2024-05-02T10:01:00.000Z', '2024-05-02T10:04:00.000Z'])
  t.same((await stats(app, 'from=2024-05-03&to=2024-05-04&interval=1h')).buckets, [], 'a range without readings: no buckets')
  const other = pcReading({ device: 'pc2', loading_datetime: '2024-05-02T10:00:30Z' })
  await app.ingest.ingest([other])
  t.equal((await stats(app, `${DAY}&interval=1d`)).buckets[0].count, 7, 'another device\'s readings are its own')
  t.equal((await stats(app, `${DAY}&interval=1d`, 'pc2')).buckets[0].count, 1)
})

t.test('without interval: the finest giving at most 300 buckets; to defaults to now, from to 24 h before', async t => {
  const app = await build(t, { predictor })
  await app.ingest.ingest([at(new Date(Date.now() - 3_600_000).toISOString(), 50, 10), at('2024-05-02T10:00:00Z', 50, 10)])
  for (const [query, interval] of [
    ['from=2024-05-02T10:00:00Z&to=2024-05-02T14:59:59.999Z', '1m'], // 300 minutes
    ['from=2024-05-02T10:00:00Z&to=2024-05-02T15:00:00Z', '5m'], // 301 minutes
    ['from=2024-05-02&to=2024-05-02', '5m'], // 288
    ['from=2024-05-01&to=2024-05-03', '15m'], // 288
    ['from=2024-05-01&to=2024-05-10', '1h'], // 240
    ['from=2024-04-01&to=2024-05-10', '6h'], // 160
    ['from=2024-01-01&to=2024-05-10', '1d'],
    ['from=2024-01-01&to=2025-02-04T00:00:00Z', '1d'] // 401 days' buckets: the coarsest
  ] as const) {
    t.equal((await stats(app, query)).interval, interval, query)
  }
  const now = await stats(app, '')
  t.equal(now.interval, '5m', 'the last 24 hours: 5m')
  t.ok(Math.abs(Date.parse(now.to) - Date.now()) < 10_000, 'to: now')
  t.equal(Date.parse(now.to) - Date.parse(now.from), 86_400_000 - 1, 'from: the 24 hours up to to')
  t.equal(now.buckets.length, 1, 'the recent reading, not the old one')
})

t.test('redelivery counts once; readings stored without their rollup update are counted on redelivery; a lost parent is rebuilt', async t => {
  const app = await build(t, { predictor })
  const raws = SEVEN()
  const readings = raws.map(r => { const v = app.ingest.validate(r); if (!v.ok) throw new Error('invalid'); return v.reading })
  await app.ingest.store(readings)
  const once = await stats(app, `${DAY}&interval=1m`)
  const again = await app.ingest.store(readings)
  t.equal(again.duplicates, 7, 'the same batch again: duplicates')
  await app.ingest.store([readings[1]!, readings[0]!])
  for (const interval of ['1m', '5m', '1h', '1d']) {
    t.same(await stats(app, `${DAY}&interval=${interval}`), await stats(app, `${DAY}&interval=${interval}`))
  }
  t.same(await stats(app, `${DAY}&interval=1m`), once, 'counted once, whatever the deliveries')
  t.equal((await stats(app, `${DAY}&interval=1d`)).buckets[0].count, 7)

  // a crash after put() and before the rollup update: the readings are stored, the rollups know nothing of them
  const late = [at('2024-05-02T18:00:10Z', 10, 91), at('2024-05-02T18:00:20Z', 30, 5)].map(r => { const v = app.ingest.validate(r); if (!v.ok) throw new Error('invalid'); return v.reading })
  const put = await app.readings.put(late)
  t.equal(put.stored.length, 2)
  t.equal((await stats(app, 'from=2024-05-02T18:00:00Z&to=2024-05-02T18:59:00Z&interval=1m')).buckets.length, 0, 'no rollup yet')
  const redelivered = await app.ingest.store(late)
  t.same([redelivered.stored.length, redelivered.duplicates], [0, 2], 'the redelivery is duplicates only')
  t.same(brief(await stats(app, 'from=2024-05-02T18:00:00Z&to=2024-05-02T18:59:00Z&interval=1m')),
    [['2024-05-02T18:00:00.000Z', 2, 1, [10, 30, 20], [5, 91, 48]]], 'the duplicates were counted: the rollups repaired')
  t.same(brief(await stats(app, `${DAY}&interval=1d`))[0], ['2024-05-02T00:00:00.000Z', 9, 3, [10, 80, 390 / 9], [5, 100, 49]])

  // a crash between the writes of one update: its 1m bucket written, its 5m and 15m parents left as they were
  const { doc } = app.dynamo
  const table = app.config.DYNAMODB_TABLE
  const parents = ['r#5m#2024-05-02T18:00:00.000Z', 'r#15m#2024-05-02T18:00:00.000Z']
  const saved = await Promise.all(parents.map(async sk => (await doc.send(new GetCommand({ TableName: table, Key: { device: 'pc1', sk } }))).Item!))
  const third = app.ingest.validate(at('2024-05-02T18:01:00Z', 90, 60))
  if (!third.ok) throw new Error('invalid')
  await app.ingest.store([third.reading])
  for (const item of saved) await doc.send(new PutCommand({ TableName: table, Item: item }))
  const range = 'from=2024-05-02T18:00:00Z&to=2024-05-02T18:59:00Z'
  t.same((await stats(app, `${range}&interval=5m`)).buckets[0].count, 2, 'the 5m bucket lags its children')
  t.same((await stats(app, `${range}&interval=1m`)).buckets.map((b: any) => b.count), [2, 1], 'the 1m buckets were written')
  await app.ingest.store([third.reading])
  for (const interval of ['5m', '15m']) {
    t.same(brief(await stats(app, `${range}&interval=${interval}`)), [['2024-05-02T18:00:00.000Z', 3, 1, [10, 90, 130 / 3], [5, 91, 52]]],
      `the redelivery rebuilt the ${interval} bucket from its children`)
  }
  t.same((await stats(app, `${range}&interval=1h`)).buckets[0].count, 3, 'the 1h bucket (written before the crash) has it too')
})

t.test('batches of one device stored at once: neither update lost (one device\'s updates run one after another)', async t => {
  const app = await build(t, { predictor })
  const valid = (raw: Record<string, unknown>): Reading => { const v = app.ingest.validate(raw); if (!v.ok) throw new Error('invalid'); return v.reading }
  const batches = Array.from({ length: 8 }, (_, b) => Array.from({ length: 5 }, (_, i) => valid(at(`2024-05-02T10:00:${String(b * 5 + i).padStart(2, '0')}Z`, 40 + b, i))))
  await Promise.all(batches.map(async batch => await app.ingest.store(batch)))
  for (const interval of ['1m', '5m', '1h', '1d']) {
    t.match((await stats(app, `${DAY}&interval=${interval}`)).buckets, [{ count: 40, fields: { TemperatureCPUPackage: { min: 40, max: 47 } } }], `${interval}: all 40`)
  }
})

t.test('a late reading lands in its own bucket; the others stay as they were', async t => {
  const app = await build(t, { predictor })
  const now = Date.now()
  await app.ingest.ingest([at(new Date(now - 60_000).toISOString(), 50, 10), at(new Date(now).toISOString(), 52, 12)])
  const range = `from=${encodeURIComponent(new Date(now - 3 * 86_400_000).toISOString())}&interval=1h`
  const before = await stats(app, range)
  const lateTime = new Date(now - 2 * 86_400_000)
  await app.ingest.ingest([at(lateTime.toISOString(), 99, 99)])
  const after = await stats(app, range)
  t.equal(after.buckets.length, before.buckets.length + 1)
  const hour = new Date(Math.floor(lateTime.getTime() / 3_600_000) * 3_600_000).toISOString()
  t.same(after.buckets[0], { start: hour, count: 1, stressed: 1, fields: after.buckets[0].fields })
  t.same(after.buckets.slice(1), before.buckets, 'the recent buckets unchanged')
})

t.test('CSV: start, count, stressed, then min, max, avg of every numeric field of the kind; RFC 4180', async t => {
  const app = await build(t, { predictor })
  await app.ingest.ingest([...SEVEN(), piReading({ loading_datetime: '2024-05-02T10:00:00Z' })])
  const res = await app.inject(`/devices/pc1/stats?${DAY}&interval=1h&format=csv`)
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'text/csv; charset=utf-8')
  const rows = res.body.split('\r\n')
  t.equal(rows.pop(), '', 'every row ends with CRLF')
  const fields = [
    'ClockCPUCoreOne', 'TemperatureCPUPackage', 'LoadCPUTotal', 'PowerCPUPackage', 'TemperatureGPUCore', 'LoadGPUCore',
    'ThrottleEventsCPU', 'ClockCPUMax', 'TemperatureCPUCritical', 'PowerGPU', 'ClockGPUCore', 'probability'
  ]
  t.equal(rows[0], ['start', 'count', 'stressed', ...fields.flatMap(f => [`${f}_min`, `${f}_max`, `${f}_avg`])].join(','))
  t.equal(rows.length, 4)
  t.equal(rows[1], '2024-05-02T10:00:00.000Z,5,1,3615.13,3615.13,3615.13,40,80,60,10,95,39,8.1,8.1,8.1' + ',,,'.repeat(7) + ',0.1,0.95,0.39',
    'a field no reading carries (the GPU and issue 17 ones): three empty cells each')
  const pi = await app.inject({ url: `/devices/raspberry/stats?${DAY}&interval=1d`, headers: { accept: 'text/csv' } })
  t.equal(pi.headers['content-type'], 'text/csv; charset=utf-8', 'Accept: text/csv')
  t.match(pi.body, /^start,count,stressed,GPU_temp_celsius_min,GPU_temp_celsius_max,GPU_temp_celsius_avg,CPU_temp_celsius_min,/)
  t.match(pi.body, /,probability_min,probability_max,probability_avg\r\n2024-05-02T00:00:00\.000Z,1,/)
  t.notMatch(pi.body, /throttled/, 'only numeric fields')
  const json = await app.inject({ url: `/devices/pc1/stats?${DAY}&format=json`, headers: { accept: 'text/csv' } })
  t.match(json.headers['content-type'], /^application\/json/, 'format wins over Accept')
  t.equal(json.headers.vary, 'accept')
})

t.test('400s name the parameter; an unknown device is a 404', async t => {
  const app = await build(t, { predictor })
  await app.ingest.ingest([pcReading({ loading_datetime: '2024-05-02T10:00:00Z' })])
  const future = encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())
  for (const [query, message] of [
    ['from=2024-05-03&to=2024-05-01', /^querystring\/from must not be after querystring\/to$/],
    [`from=${future}`, /^querystring\/from must not be after querystring\/to \(which defaults to now\)$/],
    ['from=2024-01-01&to=2025-02-04T00:00:00.001Z', /^querystring\/to must be at most 400 days after querystring\/from/],
    ['from=2020-01-01', /400 days .*\(to defaults to now\)/],
    ['interval=2m', /querystring\/interval must be equal to one of the allowed values/],
    ['interval=1H', /querystring\/interval/],
    ['from=2024-01-01&to=2024-02-01&interval=1m', /^querystring\/interval 1m gives 46080 buckets over this range, more than 10000/],
    ['format=xml', /querystring\/format/],
    ['from=yesterday', /^querystring\/from must be an ISO 8601 date/],
    ['to=2024-13-01', /^querystring\/to must be an ISO 8601 date/],
    ['from=' + 'x'.repeat(41), /querystring\/from must NOT have more than 40 characters/]
  ] as const) {
    t.match(errorShape(t, await app.inject(`/devices/pc1/stats?${query}`), 400, query).message, message, `${query}: message`)
  }
  t.equal((await app.inject('/devices/pc1/stats?from=2024-01-01&to=2025-02-04T00:00:00Z')).statusCode, 200, 'exactly 400 days: allowed')
  t.equal(errorShape(t, await app.inject('/devices/pc9/stats'), 404, 'unknown device').message, 'No readings for device "pc9"')
  errorShape(t, await app.inject('/devices/pc9/stats?format=csv'), 404, 'unknown device, CSV')
  errorShape(t, await app.inject('/devices/bad!id/stats'), 400, 'a bad id')
  t.equal((await app.inject({ method: 'POST', url: '/devices/pc1/stats' })).statusCode, 405)
  const head = await app.inject({ method: 'HEAD', url: '/devices/pc1/stats?format=csv' })
  t.same([head.statusCode, head.headers['content-type'], head.body], [200, 'text/csv; charset=utf-8', ''], 'HEAD: the headers only')
  t.equal((await app.inject({ method: 'HEAD', url: '/devices/pc9/stats' })).statusCode, 404)
})

t.test('the table down: 503 in the error shape, for the route and for ingest (nothing acknowledged)', async t => {
  const db = await dynaliteProcess(t)
  const app = await build(t, { predictor, env: { DYNAMODB_ENDPOINT: db.endpoint, DYNAMODB_TIMEOUT_MS: '1000', STATUS_CACHE_TTL_MS: '0' } })
  await app.ingest.ingest(SEVEN())
  t.equal((await stats(app, DAY)).buckets.length, 4)
  await db.kill()
  const http = await overHttp(t, app)
  const body = errorShape(t, await http.inject(`/devices/pc1/stats?${DAY}`), 503, 'the table killed')
  t.equal(body.message, 'Storage is unavailable, try again shortly')
  await t.rejects(app.ingest.ingest([pcReading()]), { name: 'StorageUnavailableError' }, 'ingest fails the batch')
  await db.start()
  t.equal((await http.inject(`/devices/pc1/stats?${DAY}`)).statusCode, 200, 'back')
})

t.test('rollup items: expires_at = bucket end + ROLLUP_RETENTION_DAYS; never seen by the readings routes or the export', async t => {
  for (const [env, days] of [[{}, 400], [{ ROLLUP_RETENTION_DAYS: '10.5' }, 10.5]] as const) {
    const app = await build(t, { predictor, env })
    await app.ingest.ingest(SEVEN())
    const get = async (sk: string): Promise<Record<string, unknown> | undefined> =>
      (await app.dynamo.doc.send(new GetCommand({ TableName: app.config.DYNAMODB_TABLE, Key: { device: 'pc1', sk } }))).Item
    for (const [sk, end] of [
      ['r#1m#2024-05-02T10:00:00.000Z', '2024-05-02T10:01:00Z'],
      ['r#5m#2024-05-02T10:00:00.000Z', '2024-05-02T10:05:00Z'],
      ['r#1d#2024-05-02T00:00:00.000Z', '2024-05-03T00:00:00Z']
    ] as const) {
      const item = await get(sk)
      t.equal(item?.expires_at, Date.parse(end) / 1000 + days * 86_400, `${sk}: expires ${days} days after its end`)
      t.equal(item?.feed, undefined, `${sk}: not in the all-readings index`)
    }

    // the readings routes and the export see the seven readings only
    t.equal((await app.inject('/devices/pc1?limit=1000&from=2024-05-01&to=2024-05-03')).json().length, 7, '/devices/{device}')
    t.equal((await app.inject('/devices/pc1?limit=1000')).json().length, 7, '/devices/{device} without bounds')
    const all = (await app.inject('/devices/?limit=1000')).json()
    t.same([all.Count, all.Items.every((r: Reading) => /^\d/.test(r.loading_datetime))], [7, true], '/devices')
    const exported = (await app.inject('/devices/pc1/export?from=2024-05-01&to=2024-05-03')).body.split('\n').filter(l => l !== '')
    t.equal(exported.length, 7, 'the export')
    t.equal((await app.inject('/devices/pc1/status')).json().loading_datetime, '2024-05-02T12:00:00.000Z', 'the status: the newest reading')
  }
  for (const bad of ['0', '-1', 'x', '40000']) {
    t.throws(() => loadConfig({ ROLLUP_RETENTION_DAYS: bad }), { name: 'ConfigError', message: /ROLLUP_RETENTION_DAYS/ }, `ROLLUP_RETENTION_DAYS=${bad}`)
  }
})

t.test('the OpenAPI document describes the route', async t => {
  const app = await build(t)
  const doc = (await app.inject('/docs/json')).json()
  const op = doc.paths['/devices/{device}/stats']?.get
  t.ok(op, 'documented')
  t.same(op.tags, ['devices'])
  const params = Object.fromEntries(op.parameters.map((p: { in: string, name: string }) => [`${p.in}:${p.name}`, p]))
  t.same(params['query:interval'].schema.enum, ['1m', '5m', '15m', '1h', '6h', '1d'])
  for (const name of ['from', 'to', 'interval', 'format']) t.notOk(params[`query:${name}`].required, `${name} is optional`)
  t.same(Object.keys(op.responses['200'].content).sort(), ['application/json', 'text/csv'])
  t.match(op.responses['200'].content['application/json'].schema, { $ref: '#/components/schemas/Stats' })
  t.ok(doc.components.schemas.StatsBucket.properties.fields.properties.TemperatureCPUPackage, 'the fields named')
  for (const code of ['400', '404', '414', '500', '503']) {
    t.match(op.responses[code], { content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } }, code)
  }
})

import t from 'tap'
import { request, type IncomingMessage } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { build, dynaliteProcess, dynamoProxy, overHttp, pcReading, piReading } from '../helper.js'

// GET /devices/{device}/export (issue 16): every reading of a range, oldest first, streamed as
// NDJSON or CSV with Content-Disposition: attachment.

type Test = Pick<typeof t, 'equal' | 'same' | 'ok' | 'match'>

function errorShape (t: Test, res: { statusCode: number, headers: Record<string, unknown>, json: () => any }, status: number, what: string): any {
  t.equal(res.statusCode, status, `${what}: ${status}`)
  t.match(res.headers['content-type'], /^application\/json/, `${what}: JSON`)
  t.equal(res.headers['content-disposition'], undefined, `${what}: no attachment`)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['error', 'message', 'statusCode'], `${what}: the error shape`)
  t.equal(body.statusCode, status)
  return body
}

const lines = (body: string): any[] => body.split('\n').filter(l => l !== '').map(l => JSON.parse(l))
// Issue 17 added the PC fields after LoadGPUCore and source, reasons, missing after probability; the model's threshold came last.
const PC_COLUMNS = 'uuid,device,loading_datetime,kind,ClockCPUCoreOne,TemperatureCPUPackage,LoadCPUTotal,PowerCPUPackage,TemperatureGPUCore,LoadGPUCore,' +
  'ThrottleEventsCPU,ClockCPUMax,TemperatureCPUCritical,PowerGPU,ClockGPUCore,ThrottleReasonsGPU,prediction,probability,source,reasons,missing,threshold'
const PI_COLUMNS = 'uuid,device,loading_datetime,kind,GPU_temp_celsius,CPU_temp_celsius,frequency_arm_hz,frequency_core_hz,frequency_pwm_hz,voltage_core_v,' +
  'voltage_sdram_c_v,voltage_sdram_i_v,voltage_sdram_p_v,memory_arm_bytes,memory_gpu_bytes,throttled,throttled_flags,prediction,probability,source,reasons,missing,threshold'

t.test('NDJSON: the readings of the range, oldest first, as the history route serves them, as an attachment', async t => {
  const app = await build(t)
  const readings = [
    pcReading({ loading_datetime: '2024-05-01T10:00:00Z' }),
    pcReading({ loading_datetime: '2024-05-02T10:00:00Z', TemperatureGPUCore: 61, LoadGPUCore: 12 }),
    pcReading({ loading_datetime: '2024-05-02T11:00:00Z' }),
    pcReading({ loading_datetime: '2024-05-03T10:00:00Z' }),
    pcReading({ device: 'pc2', loading_datetime: '2024-05-02T10:30:00Z' })
  ]
  t.equal((await app.ingest.ingest(readings)).stored, 5)
  const res = await app.inject('/devices/pc1/export?from=2024-05-02&to=2024-05-02')
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'application/x-ndjson')
  t.equal(res.headers['content-disposition'], 'attachment; filename="pc1-20240502T000000.000Z-20240502T235959.999Z.ndjson"')
  t.equal(res.headers['content-length'], undefined, 'streamed: no length')
  t.match(res.body, /\n$/, 'each line ends with LF')
  const exported = lines(res.body)
  t.same(exported.map(r => r.uuid), [readings[1]!.uuid, readings[2]!.uuid], 'the bare dates are whole days: oldest first')
  const history = (await app.inject('/devices/pc1?from=2024-05-02&to=2024-05-02')).json()
  t.same(exported, [...history].reverse(), 'each line is the reading as the history route serves it (fields, order, no storage keys)')
  t.same(Object.keys(exported[0]), ['uuid', 'device', 'loading_datetime', 'kind', 'ClockCPUCoreOne', 'TemperatureCPUPackage', 'LoadCPUTotal',
    'PowerCPUPackage', 'TemperatureGPUCore', 'LoadGPUCore', 'prediction', 'probability', 'source', 'reasons', 'missing', 'threshold'], 'fields in the schema\'s order')
  t.notOk('TemperatureGPUCore' in exported[1], 'a sensor the host lacks is absent')

  // a Raspberry Pi: throttled_flags as an object, in its schema's order
  await app.ingest.ingest([piReading({ loading_datetime: '2024-05-02T12:00:00Z', throttled: '0x50005' })])
  const [pi] = lines((await app.inject('/devices/raspberry/export?from=2024-05-02&to=2024-05-03')).body)
  t.same(Object.keys(pi.throttled_flags), ['under_voltage', 'arm_frequency_capped', 'throttled', 'soft_temperature_limit',
    'under_voltage_occurred', 'arm_frequency_capped_occurred', 'throttled_occurred', 'soft_temperature_limit_occurred'])
  t.equal(pi.throttled_flags.under_voltage, true)
})

t.test('CSV: a header row of the kind\'s columns in the schema\'s order, one RFC 4180 row a reading', async t => {
  const app = await build(t)
  const pcs = [
    pcReading({ loading_datetime: '2024-05-02T10:00:00Z', ClockCPUCoreOne: 3600.5 }),
    pcReading({ loading_datetime: '2024-05-02T11:00:00Z', TemperatureGPUCore: 61, LoadGPUCore: 12 })
  ]
  const pi = piReading({ loading_datetime: '2024-05-02T12:00:00Z', throttled: '0x50005' })
  await app.ingest.ingest([...pcs, pi])

  const res = await app.inject('/devices/pc1/export?from=2024-05-02&to=2024-05-02&format=csv')
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'text/csv; charset=utf-8')
  t.equal(res.headers['content-disposition'], 'attachment; filename="pc1-20240502T000000.000Z-20240502T235959.999Z.csv"')
  const rows = res.body.split('\r\n')
  t.equal(rows.pop(), '', 'every row ends with CRLF')
  t.equal(rows[0], PC_COLUMNS)
  t.equal(rows.length, 3)
  const [json0, json1] = lines((await app.inject('/devices/pc1/export?from=2024-05-02&to=2024-05-02')).body)
  const verdict = (r: { source: string, reasons: unknown, missing: unknown, threshold: number }): string =>
    [r.source, JSON.stringify(r.reasons), JSON.stringify(r.missing), String(r.threshold)].map(c => (/[",]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c)).join(',')
  t.equal(rows[1], `${pcs[0]!.uuid},pc1,2024-05-02T10:00:00.000Z,pc,3600.5,54,25.4,8.1,,,,,,,,,${json0.prediction},${json0.probability},${verdict(json0)}`,
    'absent sensors are empty cells')
  t.equal(rows[2], `${pcs[1]!.uuid},pc1,2024-05-02T11:00:00.000Z,pc,3615.13,54,25.4,8.1,61,12,,,,,,,${json1.prediction},${json1.probability},${verdict(json1)}`)

  const piRes = await app.inject({ url: '/devices/raspberry/export?from=2024-05-02&to=2024-05-02', headers: { accept: 'text/csv' } })
  t.equal(piRes.headers['content-type'], 'text/csv; charset=utf-8', 'Accept: text/csv without format: CSV')
  t.match(piRes.headers['content-disposition'], /\.csv"$/)
  const [header, row] = piRes.body.split('\r\n')
  t.equal(header, PI_COLUMNS)
  const flags = '{"under_voltage":true,"arm_frequency_capped":false,"throttled":true,"soft_temperature_limit":false,' +
    '"under_voltage_occurred":true,"arm_frequency_capped_occurred":false,"throttled_occurred":true,"soft_temperature_limit_occurred":false}'
  t.ok(row!.includes(`,0x50005,"${flags.replace(/"/g, '""')}",1,`), 'throttled_flags: its JSON in one cell, quoted and its quotes doubled (RFC 4180)')

  // the format parameter wins over Accept; Accept that does not prefer CSV: NDJSON
  for (const [url, accept, type] of [
    ['/devices/pc1/export?format=ndjson&from=2024-05-02&to=2024-05-02', 'text/csv', 'application/x-ndjson'],
    ['/devices/pc1/export?format=csv&from=2024-05-02&to=2024-05-02', 'application/x-ndjson', 'text/csv; charset=utf-8'],
    ['/devices/pc1/export?from=2024-05-02&to=2024-05-02', '*/*', 'application/x-ndjson'],
    ['/devices/pc1/export?from=2024-05-02&to=2024-05-02', 'text/csv;q=0.5, application/x-ndjson', 'application/x-ndjson'],
    ['/devices/pc1/export?from=2024-05-02&to=2024-05-02', 'text/*', 'text/csv; charset=utf-8']
  ] as const) {
    const answer = await app.inject({ url, headers: { accept } })
    t.equal(answer.headers['content-type'], type, `${url} Accept: ${accept}`)
    t.equal(answer.headers.vary, 'accept')
  }
})

t.test('from and to are inclusive; to defaults to now, from to the 24 hours up to to', async t => {
  const app = await build(t)
  const now = Date.now()
  const recent = pcReading({ loading_datetime: new Date(now - 3_600_000).toISOString() })
  const old = pcReading({ loading_datetime: new Date(now - 25 * 3_600_000).toISOString() })
  const edges = ['2024-05-01T23:59:59.999Z', '2024-05-02T00:00:00.000Z', '2024-05-02T10:00:00.000Z', '2024-05-02T23:59:59.999Z', '2024-05-03T00:00:00.000Z']
  await app.ingest.ingest([recent, old, ...edges.map(time => pcReading({ loading_datetime: time }))])
  const times = async (query: string): Promise<string[]> => lines((await app.inject(`/devices/pc1/export${query}`)).body).map(r => r.loading_datetime)

  t.same(await times(''), [recent.loading_datetime], 'no bounds: the last 24 hours')
  t.same(await times('?to=2024-05-02'), edges.slice(1, 4), 'to alone, a bare date: that day')
  t.same(await times('?to=2024-05-02T10:00:00Z'), edges.slice(0, 3), 'to alone: the 24 hours up to it, both ends inclusive')
  t.same(await times('?from=2024-05-02T00:00:00Z&to=2024-05-02T23:59:59.999Z'), edges.slice(1, 4), 'bounds inclusive, to the millisecond')
  t.same(await times('?from=2024-05-02T00:00:00.001Z&to=2024-05-02T23:59:59.998Z'), edges.slice(2, 3))
  t.same(await times('?from=2024-05-02T02:00:00%2B02:00&to=2024-05-02T12:00:00%2B02:00'), edges.slice(1, 3), 'times with an offset')
  t.equal((await times(`?from=${encodeURIComponent(new Date(now - 26 * 3_600_000).toISOString())}`)).length, 2, 'from alone: up to now')
  const res = await app.inject('/devices/pc1/export?to=2024-05-02T10:00:00Z')
  t.equal(res.headers['content-disposition'], 'attachment; filename="pc1-20240501T100000.001Z-20240502T100000.000Z.ndjson"')
})

t.test('a device with readings but none in the range: 200 with an empty body, CSV the header row only', async t => {
  const app = await build(t)
  await app.ingest.ingest([pcReading({ loading_datetime: '2024-05-02T10:00:00Z' })])
  const ndjson = await app.inject('/devices/pc1/export?from=2023-01-01&to=2023-01-02')
  t.equal(ndjson.statusCode, 200)
  t.equal(ndjson.body, '')
  const csv = await app.inject('/devices/pc1/export?from=2023-01-01&to=2023-01-02&format=csv')
  t.equal(csv.statusCode, 200)
  t.equal(csv.body, PC_COLUMNS + '\r\n')
})

t.test('400s name the parameter; an unknown device is a 404; a long id a 414; HEAD has the headers only', async t => {
  const app = await build(t)
  await app.ingest.ingest([pcReading({ loading_datetime: '2024-05-02T10:00:00Z' })])
  const future = encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())
  for (const [query, message] of [
    ['from=2024-05-03&to=2024-05-01', /^querystring\/from must not be after querystring\/to$/],
    [`from=${future}`, /^querystring\/from must not be after querystring\/to \(which defaults to now\)$/],
    ['from=2024-01-01&to=2025-02-04T00:00:00.001Z', /^querystring\/to must be at most 400 days after querystring\/from/],
    ['from=2024-01-01&to=2025-02-04', /400 days/],
    ['from=2020-01-01', /^querystring\/to must be at most 400 days after querystring\/from \(to defaults to now\)/],
    ['format=xml', /querystring\/format must be equal to one of the allowed values/],
    ['format=CSV', /querystring\/format/],
    ['from=yesterday', /^querystring\/from must be an ISO 8601 date/],
    ['to=2024-13-01', /^querystring\/to must be an ISO 8601 date/],
    ['to=9999-12-31T23:00:00-14:00', /^querystring\/to must be an ISO 8601 date or date-time from 1970 to 9999$/],
    ['from=' + 'x'.repeat(41), /querystring\/from must NOT have more than 40 characters/]
  ] as const) {
    const body = errorShape(t, await app.inject(`/devices/pc1/export?${query}`), 400, query)
    t.match(body.message, message, `${query}: message`)
  }
  t.equal((await app.inject('/devices/pc1/export?from=2024-01-01&to=2025-02-04T00:00:00Z')).statusCode, 200, 'exactly 400 days: allowed')
  t.equal((await app.inject('/devices/pc1/export?from=2024-05-01&to=2024-05-03&limit=5')).statusCode, 200, 'an unknown parameter is dropped, as on the other routes')

  const missing = errorShape(t, await app.inject('/devices/pc9/export'), 404, 'unknown device')
  t.equal(missing.message, 'No readings for device "pc9"')
  errorShape(t, await app.inject('/devices/pc9/export?format=csv'), 404, 'unknown device, CSV')
  errorShape(t, await app.inject('/devices/bad!id/export'), 400, 'a bad id')
  errorShape(t, await app.inject(`/devices/${'a'.repeat(101)}/export`), 414, 'a long id')

  const head = await app.inject({ method: 'HEAD', url: '/devices/pc1/export?from=2024-05-01&to=2024-05-03&format=csv' })
  t.equal(head.statusCode, 200)
  t.equal(head.headers['content-type'], 'text/csv; charset=utf-8')
  t.equal(head.headers['content-disposition'], 'attachment; filename="pc1-20240501T000000.000Z-20240503T235959.999Z.csv"')
  t.equal(head.body, '')
  t.equal((await app.inject({ method: 'HEAD', url: '/devices/pc9/export' })).statusCode, 404)
  t.equal((await app.inject({ method: 'POST', url: '/devices/pc1/export' })).statusCode, 405)
})

t.test('the OpenAPI document describes the route', async t => {
  const app = await build(t)
  const op = (await app.inject('/docs/json')).json().paths['/devices/{device}/export']?.get
  t.ok(op, 'documented')
  t.same(op.tags, ['devices'])
  const params = Object.fromEntries(op.parameters.map((p: { in: string, name: string }) => [`${p.in}:${p.name}`, p]))
  t.ok(params['path:device'].required)
  for (const name of ['from', 'to', 'format']) t.notOk(params[`query:${name}`].required, `${name} is optional`)
  t.same(params['query:format'].schema.enum, ['ndjson', 'csv'])
  t.same(Object.keys(op.responses['200'].content).sort(), ['application/x-ndjson', 'text/csv'])
  t.ok(op.responses['200'].headers['content-disposition'], 'Content-Disposition documented')
  for (const code of ['400', '404', '414', '500', '503']) {
    t.match(op.responses[code], { content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } }, code)
  }
})

interface Streamed {
  res: IncomingMessage
  /** the body so far */
  text: () => string
  /** resolves when the response has ended or was cut: complete = it ended with the chunked terminator */
  done: Promise<{ complete: boolean }>
}

/** A GET over a fresh connection, its body collected as it arrives. */
async function get (app: FastifyInstance, url: string): Promise<Streamed> {
  const { port } = app.server.address() as { port: number }
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: url, agent: false }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      const done = new Promise<{ complete: boolean }>(resolve => {
        res.on('end', () => resolve({ complete: res.complete }))
        res.on('error', () => resolve({ complete: false }))
        res.on('close', () => resolve({ complete: res.complete }))
      })
      resolve({ res, text: () => text, done })
    })
    req.on('error', reject)
    req.end()
  })
}

async function until (what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

t.test('over HTTP, 2,500 readings in three table pages: streamed a page at a time, oldest first; a table that dies mid-stream cuts the answer', async t => {
  const db = await dynaliteProcess(t)
  const proxy = await dynamoProxy(t, db.endpoint)
  const logs: string[] = []
  const app = await build(t, {
    env: { DYNAMODB_ENDPOINT: proxy.endpoint, DYNAMODB_TIMEOUT_MS: '2000', LOG_LEVEL: 'info' },
    logStream: { write: line => { logs.push(line) } }
  })
  const base = Date.parse('2024-05-01T00:00:00.000Z')
  const readings = Array.from({ length: 2500 }, (_, i) => pcReading({ loading_datetime: new Date(base + i * 10_000).toISOString(), LoadCPUTotal: i % 100 }))
  // stored newest first, in batches: the table's order, not the order of arrival, is the export's
  for (let i = 2500; i > 0; i -= 500) t.equal((await app.ingest.ingest(readings.slice(i - 500, i))).stored, 500)
  const url = '/devices/pc1/export?from=2024-05-01&to=2024-05-02'
  const http = await overHttp(t, app)

  /** Holds every call to the table after the next page is read (until released): the answer so far is what came before it. */
  const holdAfterOneQuery = (): void => {
    proxy.calls = {}
    proxy.rewrite = (operation, body) => {
      if (operation === 'Query') proxy.hang = true
      return body
    }
  }
  const release = (): void => { proxy.rewrite = undefined; proxy.hang = false }

  await t.test('the first page arrives while the next one is still being read; then every reading, oldest first', async t => {
    holdAfterOneQuery()
    const answer = await get(app, url)
    t.equal(answer.res.statusCode, 200)
    t.equal(answer.res.headers['content-type'], 'application/x-ndjson')
    t.equal(answer.res.headers['transfer-encoding'], 'chunked')
    await until('the first page', () => answer.text().split('\n').length > 1000)
    await sleep(200)
    t.equal(answer.text().split('\n').length - 1, 1000, 'the first page (1000 readings) has arrived, and nothing more')
    t.equal(proxy.calls.Query, 2, 'the second page\'s Query is on its way (held): the answer started before the table was read to its end')
    release()
    t.same(await answer.done, { complete: true })
    const exported = lines(answer.text())
    t.equal(exported.length, 2500)
    t.same(exported.map(r => r.uuid), readings.map(r => r.uuid), 'every reading once, oldest first, across the pages')
    t.equal(proxy.calls.Query, 4, 'three pages (the held Query timed out and was sent again), one Query each')
    t.equal(proxy.calls.Scan, undefined, 'never a Scan')

    const csv = await http.inject(url + '&format=csv')
    const rows = csv.body.split('\r\n')
    t.equal(rows.length, 2502, 'CSV: the header, 2,500 rows, the last CRLF')
    t.equal(rows[1]!.split(',')[0], readings[0]!.uuid)
    t.equal(rows[2500]!.split(',')[0], readings[2499]!.uuid)
  })

  await t.test('DynamoDB killed after the first chunk: the answer is cut (no terminator), logged once; the service serves on', async t => {
    holdAfterOneQuery()
    const answer = await get(app, url)
    t.equal(answer.res.statusCode, 200)
    await until('the first page', () => answer.text().length > 0)
    await db.kill()
    release()
    t.same(await answer.done, { complete: false }, 'the client sees the answer end early')
    t.ok(answer.text().split('\n').length - 1 < 2500, 'not every reading was sent')
    await until('the log line', () => logs.some(l => l.includes('cut short')))
    await sleep(100)
    const cut = logs.map(l => JSON.parse(l)).filter(l => /export of device "pc1" cut short/.test(l.msg))
    t.equal(cut.length, 1, 'logged once')
    t.match(cut[0], { level: 40, device: 'pc1', readings: 1000, msg: 'export of device "pc1" cut short after 1000 readings: the table does not answer' })

    const health = await http.inject('/health')
    t.equal(health.statusCode, 503, 'other requests are answered')
    errorShape(t, await http.inject(url), 503, 'a new export while the table is down')

    await db.start()
    const again = await http.inject(url)
    t.equal(again.statusCode, 200)
    t.equal(lines(again.body).length, 2500, 'the table back: a whole export again')
  })
})

t.test('the table down before the answer starts: 503 in the error shape, not a cut stream', async t => {
  for (const ttl of ['0', '60000']) {
    const db = await dynaliteProcess(t)
    const app = await build(t, { env: { DYNAMODB_ENDPOINT: db.endpoint, STATUS_CACHE_TTL_MS: ttl } })
    await app.ingest.ingest([pcReading({ loading_datetime: '2024-05-02T10:00:00Z' })])
    t.equal((await app.inject('/devices/pc1/status')).statusCode, 200)
    await db.kill()
    const http = await overHttp(t, app)
    // TTL 0: the status read fails; a cached status: the first page's Query fails
    const body = errorShape(t, await http.inject('/devices/pc1/export?from=2024-05-01&to=2024-05-03'), 503, `status cache TTL ${ttl}`)
    t.equal(body.message, 'Storage is unavailable, try again shortly')
  }
})

import t from 'tap'
import { build, dynaliteProcess, dynamoProxy, overHttp, pcReading, piReading, uniqueTable } from '../helper.js'
import type { Predictor } from '../../ingest/service.js'

// GET /fleet (issue 16): every device's latest status from the sparse fleet index, sorted,
// filtered and paged in memory. Written by one app (ROLE=all), read by another (ROLE=api) on the
// same table: the reader knows the devices only through the index.

/** The model's answer is the reading's load (PC) or CPU temperature (Pi) as a probability: tests choose it. */
const predictor: Predictor = {
  predict: (kind, reading) => {
    const probability = Number(kind === 'pc' ? reading.LoadCPUTotal : reading.CPU_temp_celsius) / 100
    return { probability, prediction: probability >= 0.5 ? 1 : 0 }
  }
}

const minutesAgo = (m: number): string => new Date(Date.now() - m * 60_000).toISOString()

async function fleetApps (t: { teardown: (fn: () => unknown) => void }, env: Record<string, string> = {}) {
  const db = await dynaliteProcess(t)
  const table = uniqueTable()
  const common = { DYNAMODB_ENDPOINT: db.endpoint, DYNAMODB_TABLE: table, STALE_AFTER_SECONDS: '600', ...env }
  const writer = await build(t, { env: { ...common, ROLE: 'all' }, predictor })
  const reader = await build(t, { env: { ...common, ROLE: 'api' } })
  return { db, writer, reader, table }
}

// ok: pc-a (0.1), pc-b (0.3), pi-c (0.2); stressed: pc-d (0.9), pi-e (0.6); stale: pc-f (0.95, an hour old), pi-g (0.05, an hour old)
const FLEET = [
  pcReading({ device: 'pc-a', LoadCPUTotal: 10 }),
  pcReading({ device: 'pc-b', LoadCPUTotal: 30 }),
  piReading({ device: 'pi-c', CPU_temp_celsius: 20 }),
  pcReading({ device: 'pc-d', LoadCPUTotal: 90 }),
  piReading({ device: 'pi-e', CPU_temp_celsius: 60 }),
  pcReading({ device: 'pc-f', LoadCPUTotal: 95, loading_datetime: minutesAgo(60) }),
  piReading({ device: 'pi-g', CPU_temp_celsius: 5, loading_datetime: minutesAgo(61) })
]

t.test('GET /fleet over the index: statuses as /status serves them, counts, filters, sorts', async t => {
  const { writer, reader } = await fleetApps(t)
  t.equal((await writer.ingest.ingest([...FLEET, pcReading({ device: 'pc-a', LoadCPUTotal: 12, loading_datetime: minutesAgo(5) })])).stored, 8)

  const res = await reader.inject('/fleet')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['counts', 'devices'], 'one page: no next_cursor')
  t.same(body.counts, { total: 7, ok: 3, stressed: 2, stale: 2 })
  t.same(body.devices.map((d: any) => d.device), ['pc-f', 'pc-d', 'pi-e', 'pi-g', 'pc-b', 'pi-c', 'pc-a'],
    'risk: stale and stressed first by probability, then the rest by probability')
  const status = (await reader.inject('/devices/pc-d/status')).json()
  const inFleet = body.devices.find((d: any) => d.device === 'pc-d')
  t.same(Object.keys(inFleet), Object.keys(status), 'the same fields, in the same order, as /devices/{device}/status')
  t.same({ ...inFleet, age_seconds: 0 }, { ...status, age_seconds: 0 })
  t.equal(body.devices.find((d: any) => d.device === 'pc-a').probability, 0.1, 'the newest reading of a device, not the last stored')
  t.equal(body.devices.find((d: any) => d.device === 'pc-f').msg, 'The device is not reporting')
  t.ok(body.devices.find((d: any) => d.device === 'pi-e').throttled_flags, 'Pi statuses carry throttled_flags')

  const by = async (q: string): Promise<any> => (await reader.inject(`/fleet?${q}`)).json()
  t.same((await by('sort=device')).devices.map((d: any) => d.device), ['pc-a', 'pc-b', 'pc-d', 'pc-f', 'pi-c', 'pi-e', 'pi-g'])
  const stressed = await by('state=stressed')
  t.same(stressed.devices.map((d: any) => d.device), ['pc-d', 'pi-e'])
  t.same(stressed.counts, { total: 7, ok: 3, stressed: 2, stale: 2 }, 'counts are not filtered by state')
  t.same((await by('state=stale,ok&sort=device')).devices.map((d: any) => d.device), ['pc-a', 'pc-b', 'pc-f', 'pi-c', 'pi-g'])
  const pis = await by('kind=raspberry')
  t.same(pis.devices.map((d: any) => d.device), ['pi-e', 'pi-g', 'pi-c'])
  t.same(pis.counts, { total: 3, ok: 1, stressed: 1, stale: 1 }, 'counts follow kind')
  const pcStale = await by('kind=pc&state=stale')
  t.same(pcStale.devices.map((d: any) => d.device), ['pc-f'])
  t.same(pcStale.counts, { total: 4, ok: 2, stressed: 1, stale: 1 })
})

t.test('paging: a cursor walks every device once, in either sort, with filters; Link names the next page', async t => {
  const { writer, reader } = await fleetApps(t)
  const readings = Array.from({ length: 45 }, (_, i) => pcReading({ device: `d${String(i).padStart(2, '0')}`, LoadCPUTotal: (i * 37) % 100 }))
  await writer.ingest.ingest(readings)
  for (const sort of ['risk', 'device']) {
    for (const extra of ['', '&state=ok']) {
      const whole = (await reader.inject(`/fleet?sort=${sort}&limit=1000${extra}`)).json().devices.map((d: any) => d.device)
      const seen: string[] = []
      let cursor: string | undefined
      let pages = 0
      do {
        const res = await reader.inject(`/fleet?sort=${sort}&limit=10${extra}${cursor !== undefined ? `&cursor=${cursor}` : ''}`)
        t.equal(res.statusCode, 200)
        const body = res.json()
        seen.push(...body.devices.map((d: any) => d.device))
        cursor = body.next_cursor
        if (cursor !== undefined) t.match(res.headers.link, new RegExp(`cursor=${cursor}>; rel="next"$`))
        else t.equal(res.headers.link, undefined)
        pages++
      } while (cursor !== undefined)
      t.same(seen, whole, `sort=${sort}${extra}: the pages are the whole list in order`)
      t.equal(pages, Math.max(1, Math.ceil(whole.length / 10)))
    }
  }
  const first = (await reader.inject('/fleet?sort=device&limit=10')).json()
  t.equal(first.devices.length, 10)
  t.equal(first.counts.total, 45)
  // a device stored between pages does not repeat or skip the others
  await writer.ingest.ingest([pcReading({ device: 'a-new', LoadCPUTotal: 1 })])
  const cursorRes = await reader.inject(`/fleet?sort=device&limit=10&cursor=${first.next_cursor}`)
  t.equal(cursorRes.json().devices[0].device, 'd10')
})

t.test('400s name the parameter: state, kind, sort, limit, format, cursor', async t => {
  const { writer, reader } = await fleetApps(t)
  await writer.ingest.ingest([pcReading({ device: 'pc-a' }), pcReading({ device: 'pc-b' })])
  const cursorRisk = (await reader.inject('/fleet?limit=1')).json().next_cursor
  t.ok(cursorRisk)
  const cases: Array<[string, RegExp]> = [
    ['state=broken', /querystring\/state/],
    ['state=ok,', /querystring\/state/],
    ['state=', /querystring\/state/],
    ['kind=toaster', /querystring\/kind/],
    ['sort=name', /querystring\/sort/],
    ['limit=0', /querystring\/limit/],
    ['limit=1001', /querystring\/limit/],
    ['limit=ten', /querystring\/limit/],
    ['limit=1e2', /limit/],
    ['format=xml', /querystring\/format/],
    ['cursor=', /querystring\/cursor/],
    ['cursor=not-a-cursor', /Invalid cursor/],
    [`cursor=${Buffer.from('["r",0,0.5,"../x"]').toString('base64url')}`, /Invalid cursor/],
    [`cursor=${cursorRisk}&sort=device`, /another sort/]
  ]
  for (const [q, message] of cases) {
    const res = await reader.inject(`/fleet?${q}`)
    t.equal(res.statusCode, 400, q)
    t.same(Object.keys(res.json()).sort(), ['error', 'message', 'statusCode'])
    t.match(res.json().message, message, `${q}: ${res.json().message}`)
  }
})

t.test('CSV: format=csv or Accept: text/csv, a header row, RFC 4180 quoting', async t => {
  const { writer, reader } = await fleetApps(t)
  await writer.ingest.ingest([pcReading({ device: 'pc-a', LoadCPUTotal: 10 }), piReading({ device: 'pi-b', CPU_temp_celsius: 70, throttled: '0x50005' })])
  const res = await reader.inject('/fleet?format=csv&sort=device')
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'text/csv; charset=utf-8')
  const rows = res.body.split('\r\n')
  t.equal(rows.pop(), '', 'every row ends with CRLF')
  t.equal(rows[0], 'device,kind,state,msg,stressed,probability,loading_datetime,uuid,age_seconds,stale,throttled_flags')
  t.equal(rows.length, 3)
  t.match(rows[1], /^pc-a,pc,ok,The device is OK,false,0\.1,[^,]+,[0-9a-f-]{36},[\d.]+,false,$/)
  t.match(rows[2], /^pi-b,raspberry,stressed,The device is stressed,true,0\.7,/)
  t.match(rows[2], /,"\{""under_voltage"":true,.*\}"$/, 'the flags\' JSON in one quoted cell, its quotes doubled')
  const accept = await reader.inject({ url: '/fleet?sort=device', headers: { accept: 'text/csv' } })
  t.equal(accept.headers['content-type'], 'text/csv; charset=utf-8')
  t.equal(accept.body.split('\r\n').length, 4)
  const json = await reader.inject({ url: '/fleet', headers: { accept: 'text/csv;q=0.5, application/json' } })
  t.match(json.headers['content-type'], /^application\/json/)
  const paged = await reader.inject('/fleet?format=csv&limit=1&sort=device')
  t.match(paged.headers.link, /format=csv&limit=1&sort=device&cursor=/, 'CSV pages by Link')
})

t.test('one read of the index per TTL however many ask: 16 Queries, never a Scan', async t => {
  const db = await dynaliteProcess(t)
  const proxy = await dynamoProxy(t, db.endpoint)
  const table = uniqueTable()
  const writer = await build(t, { env: { DYNAMODB_ENDPOINT: db.endpoint, DYNAMODB_TABLE: table }, predictor })
  const reader = await build(t, { env: { DYNAMODB_ENDPOINT: proxy.endpoint, DYNAMODB_TABLE: table, ROLE: 'api', STATUS_CACHE_TTL_MS: '60000' } })
  await writer.ingest.ingest(Array.from({ length: 40 }, (_, i) => pcReading({ device: `d${i}` })))
  proxy.calls = {}
  const answers = await Promise.all(Array.from({ length: 20 }, async () => await reader.inject('/fleet?limit=5')))
  t.ok(answers.every(a => a.statusCode === 200 && a.json().counts.total === 40))
  for (let i = 0; i < 10; i++) t.equal((await reader.inject('/fleet')).json().counts.total, 40)
  t.same(proxy.calls, { Query: 16 }, 'one round of 16 shard Queries for 30 requests')
})

t.test('the table down: 503 in the error shape; back: 200', async t => {
  const { db, writer, reader } = await fleetApps(t, { STATUS_CACHE_TTL_MS: '100', DYNAMODB_TIMEOUT_MS: '1000' })
  await writer.ingest.ingest([pcReading({ device: 'pc-a' })])
  t.equal((await reader.inject('/fleet')).statusCode, 200)
  await db.kill()
  await new Promise(resolve => setTimeout(resolve, 250)) // past two TTLs: the view must be read again
  const http = await overHttp(t, reader)
  const res = await http.inject('/fleet')
  t.equal(res.statusCode, 503)
  t.same(res.json(), { statusCode: 503, error: 'Service Unavailable', message: 'Storage is unavailable, try again shortly' })
  await db.start()
  const again = await http.inject('/fleet')
  t.equal(again.statusCode, 200)
  t.equal(again.json().counts.total, 1)
})

t.test('the OpenAPI document describes /fleet and the event routes', async t => {
  const app = await build(t)
  const doc = (await app.inject('/docs/json')).json()
  const op = doc.paths['/fleet/']?.get ?? doc.paths['/fleet']?.get
  t.ok(op, 'documented')
  t.same(op.tags, ['fleet'])
  const params = Object.fromEntries(op.parameters.map((p: { in: string, name: string }) => [p.name, p]))
  t.same(Object.keys(params).sort(), ['cursor', 'format', 'kind', 'limit', 'sort', 'state'])
  t.same(params.sort.schema.enum, ['risk', 'device'])
  t.same(params.kind.schema.enum, ['pc', 'raspberry'])
  t.same(Object.keys(op.responses['200'].content).sort(), ['application/json', 'text/csv'])
  t.match(op.responses['200'].content['application/json'].schema, { $ref: '#/components/schemas/Fleet' })
  t.match(doc.components.schemas.Fleet.properties.devices.items, { $ref: '#/components/schemas/Status' })
  for (const code of ['400', '500', '503']) t.match(op.responses[code], { content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } })
  t.ok(doc.paths['/fleet/events']?.get.responses['200'].content['text/event-stream'], '/fleet/events')
  const device = doc.paths['/devices/{device}/events']?.get
  t.ok(device.responses['200'].content['text/event-stream'], '/devices/{device}/events')
  t.ok(device.responses['404'])
})

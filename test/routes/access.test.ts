import t from 'tap'
import { request, type IncomingMessage } from 'node:http'
import { build, overHttp, pcReading } from '../helper.js'

// Issue 19 over real HTTP: API keys, rate limits, CORS, security headers, /metrics; every request,
// answers from the caches included (60 s TTLs: the caches stay warm for the whole test).

const KEYS = 'dash:dash-key-0123456789abcdef,ops:ops-key-0123456789abcdef'
const DASH = 'dash-key-0123456789abcdef'
const WARM = { HISTORY_CACHE_TTL_MS: '60000', STATUS_CACHE_TTL_MS: '60000' }

/** Opens an event stream and resolves with its response head; the stream is closed at once. */
async function streamHead (port: number, path: string, headers: Record<string, string>): Promise<IncomingMessage> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { accept: 'text/event-stream', ...headers } }, res => {
      resolve(res)
      req.destroy()
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('without API_KEYS the service is open and says so once at start', async t => {
  const lines: string[] = []
  const app = await build(t, { env: { ...WARM, LOG_LEVEL: 'info' }, logStream: { write: l => { lines.push(l) } } })
  await app.ingest.ingest([pcReading()])
  const client = await overHttp(t, app)
  t.equal((await client.inject('/devices/pc1/status')).statusCode, 200)
  t.equal((await client.inject('/metrics')).statusCode, 200)
  t.equal(lines.filter(l => l.includes('API_KEYS is not set')).length, 1, 'one line says the API is open')
})

t.test('with API_KEYS: 401 without a valid key, every time, cached answers included; /health and the pages open', async t => {
  const lines: string[] = []
  const app = await build(t, { env: { ...WARM, API_KEYS: KEYS, LOG_LEVEL: 'info' }, logStream: { write: l => { lines.push(l) } } })
  await app.ingest.ingest(Array.from({ length: 5 }, (_, i) => pcReading({}, i)))
  const client = await overHttp(t, app)
  for (const url of ['/devices/pc1/status', '/devices/pc1', '/devices/', '/fleet', '/metrics', '/nowhere']) {
    const res = await client.inject(url)
    t.equal(res.statusCode, 401, `${url}: 401 without a key`)
    t.match(res.headers['www-authenticate'], /^Bearer/, `${url}: WWW-Authenticate: Bearer`)
    t.same(Object.keys(res.json()).sort(), ['error', 'message', 'statusCode'], `${url}: the service's error shape`)
  }
  for (const url of ['/health', '/docs/json', '/ui/assets/fleet.js']) {
    t.equal((await client.inject(url)).statusCode, 200, `${url}: open`)
  }
  t.equal((await client.inject({ url: '/', headers: { accept: 'text/html' } })).statusCode, 200, 'the dashboard page loads (it asks for a key)')

  const url = '/devices/pc1/status'
  const bearer = { authorization: `Bearer ${DASH}` }
  const header = { 'x-api-key': 'ops-key-0123456789abcdef' }
  const first = await client.inject({ url, headers: bearer })
  t.equal(first.statusCode, 200)
  const etag = first.headers.etag as string
  let ok = 0
  let refused = 0
  for (let i = 0; i < 30; i++) {
    const authorised = await client.inject({ url, headers: i % 2 === 0 ? bearer : header })
    if (authorised.statusCode === 200) ok++
    for (const headers of [{}, { authorization: 'Bearer wrong-key-0123456789abcdef' }, { 'x-api-key': DASH.slice(0, -1) }, { 'if-none-match': etag }, { authorization: DASH }] as Array<Record<string, string>>) {
      const res = await client.inject({ url, headers })
      if (res.statusCode === 401 && !res.body.includes('"device"')) refused++
    }
  }
  t.equal(ok, 30, 'every authorised poll answered (from the cache)')
  t.equal(refused, 150, 'every poll without a valid key between them: 401, never the cached answer')
  t.equal((await client.inject({ url, headers: { ...bearer, 'if-none-match': etag } })).statusCode, 304, 'a 304 with the key')

  const all = lines.join('')
  t.notOk(all.includes(DASH) || all.includes('ops-key-0123456789abcdef'), 'no key in the log')
  t.ok(lines.some(l => l.includes('"apiKey":"dash"') && l.includes('request completed')), 'the key\'s name in the request log')
})

t.test('API_KEYS: bad pairs and duplicate names stop start-up, never echoing a key', async t => {
  const { loadConfig, ConfigError } = await import('../../config.js')
  for (const bad of ['nokey', 'a:short', ':no-name-0123456789abcdef', 'a:key-0123456789abcdef,a:key-fedcba9876543210', 'a b:key-0123456789abcdef', 'a:key 0123456789abcdef']) {
    t.throws(() => loadConfig({ API_KEYS: bad }), ConfigError, `refused: ${bad.replace(/key.*$/, '…')}`)
    try { loadConfig({ API_KEYS: bad }) } catch (err) { t.notMatch((err as Error).message, /0123456789/, 'no key in the message') }
  }
  t.same(loadConfig({ API_KEYS: KEYS }).apiKeys.map(k => k.name), ['dash', 'ops'])
  t.equal(loadConfig({}).RATE_LIMIT_PER_MINUTE, 3000, 'RATE_LIMIT_PER_MINUTE defaults to 3000 (README)')
  t.same(loadConfig({}).apiKeys, [], 'no API_KEYS: open')
  t.throws(() => loadConfig({ CORS_ORIGINS: 'ops.example.com' }), ConfigError, 'CORS_ORIGINS are origins with a scheme')
  t.same(loadConfig({ CORS_ORIGINS: 'https://a.example,http://localhost:8080' }).corsOrigins, ['https://a.example', 'http://localhost:8080'])
})

t.test('the OpenAPI document offers bearer and X-API-Key for Swagger UI\'s Authorize', async t => {
  const app = await build(t, { env: { API_KEYS: KEYS } })
  const doc = (await app.inject('/docs/json')).json()
  t.same(Object.keys(doc.components.securitySchemes).sort(), ['apiKey', 'bearer'])
  t.same(doc.security, [{ bearer: [] }, { apiKey: [] }])
  t.notOk(doc.paths['/metrics'], '/metrics is not in the public document')
})

t.test('session cookie for the event streams: signed, HttpOnly, SameSite=Strict, taken on the streams only', async t => {
  const app = await build(t, { env: { API_KEYS: KEYS } })
  const client = await overHttp(t, app)
  t.equal((await client.inject({ url: '/auth/session', method: 'POST' })).statusCode, 401, 'no session without a key')
  const res = await client.inject({ url: '/auth/session', method: 'POST', headers: { 'x-api-key': DASH } })
  t.equal(res.statusCode, 200)
  const cookie = String(res.headers['set-cookie'])
  t.match(cookie, /HttpOnly/)
  t.match(cookie, /SameSite=Strict/)
  t.notMatch(cookie, /Secure/, 'not Secure over plain HTTP')
  t.notOk(cookie.includes(DASH), 'the cookie is not the key')
  const value = cookie.split(';')[0]!
  const { port } = app.server.address() as { port: number }
  t.equal((await streamHead(port, '/fleet/events', { cookie: value })).statusCode, 200, 'the stream takes the cookie')
  t.equal((await streamHead(port, '/fleet/events', {})).statusCode, 401, 'not without it')
  t.equal((await streamHead(port, '/fleet/events', { cookie: value.slice(0, -2) + 'xx' })).statusCode, 401, 'nor with a forged one')
  t.equal((await client.inject({ url: '/fleet', headers: { cookie: value } })).statusCode, 401, 'other routes want the key itself')
  const https = await app.inject({ url: '/auth/session', method: 'POST', headers: { 'x-api-key': DASH, 'x-forwarded-proto': 'https' } })
  t.match(String(https.headers['set-cookie']), /; Secure/, 'Secure behind the ALB\'s HTTPS')
})

t.test('rate limits: 429 with Retry-After and RateLimit-* per key, cached answers counted, /health never limited', async t => {
  const app = await build(t, { env: { ...WARM, API_KEYS: KEYS, RATE_LIMIT_PER_MINUTE: '5' } })
  await app.ingest.ingest([pcReading()])
  const client = await overHttp(t, app)
  const dash = { 'x-api-key': DASH }
  const codes: number[] = []
  for (let i = 0; i < 7; i++) codes.push((await client.inject({ url: '/devices/pc1/status', headers: dash })).statusCode)
  t.same(codes, [200, 200, 200, 200, 200, 429, 429], 'the sixth cached answer in a minute is refused')
  const refused = await client.inject({ url: '/devices/pc1/status', headers: dash })
  t.equal(refused.statusCode, 429)
  t.ok(Number(refused.headers['retry-after']) > 0, `Retry-After: ${String(refused.headers['retry-after'])}`)
  t.equal(refused.headers['ratelimit-limit'], '5')
  t.equal(refused.headers['ratelimit-remaining'], '0')
  t.ok(refused.headers['ratelimit-reset'] !== undefined, 'RateLimit-Reset')
  t.same(Object.keys(refused.json()).sort(), ['error', 'message', 'statusCode'], 'the service\'s error shape')
  t.equal((await client.inject({ url: '/fleet', headers: { 'x-api-key': 'ops-key-0123456789abcdef' } })).statusCode, 200, 'another key has its own budget')
  for (let i = 0; i < 10; i++) t.equal((await client.inject('/health')).statusCode, 200, '/health is never limited')
})

t.test('rate limits without keys: per client address, X-Forwarded-For from a proxy on a private address', async t => {
  const app = await build(t, { env: { RATE_LIMIT_PER_MINUTE: '3' } })
  const client = await overHttp(t, app)
  const as = (ip: string) => ({ url: '/fleet', headers: { 'x-forwarded-for': ip } })
  const a = []
  for (let i = 0; i < 4; i++) a.push((await client.inject(as('203.0.113.1'))).statusCode)
  t.same(a, [200, 200, 200, 429])
  t.equal((await client.inject(as('203.0.113.2'))).statusCode, 200, 'another client address is not limited by the first')
})

t.test('CORS: preflight from an allowed origin names Authorization and X-API-Key; other origins get no CORS headers', async t => {
  const app = await build(t, { env: { API_KEYS: KEYS, CORS_ORIGINS: 'https://ops.example.com,http://localhost:8080' } })
  const client = await overHttp(t, app)
  const preflight = (origin: string) => client.inject({
    url: '/devices/pc1/status',
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization,x-api-key' }
  })
  const allowed = await preflight('https://ops.example.com')
  t.equal(allowed.statusCode, 204, 'answered without a key')
  t.equal(allowed.headers['access-control-allow-origin'], 'https://ops.example.com')
  t.match(String(allowed.headers['access-control-allow-headers']).toLowerCase(), /authorization.*x-api-key/)
  const refused = await preflight('https://evil.example.net')
  t.notOk(refused.headers['access-control-allow-origin'], 'no Access-Control-Allow-Origin for another origin')
  t.notOk(refused.headers['access-control-allow-headers'], 'nor Allow-Headers')
  const get = await client.inject({ url: '/fleet', headers: { origin: 'https://ops.example.com', 'x-api-key': DASH } })
  t.equal(get.headers['access-control-allow-origin'], 'https://ops.example.com', 'on the answer itself')
  const none = await build(t, {})
  const plain = await (await overHttp(t, none)).inject({ url: '/fleet', headers: { origin: 'https://ops.example.com' } })
  t.notOk(plain.headers['access-control-allow-origin'], 'no CORS_ORIGINS: no CORS headers')
})

t.test('security headers on cached answers, 304s, errors and event streams; HSTS only over HTTPS', async t => {
  const app = await build(t, { env: { ...WARM, CORS_ORIGINS: 'https://ops.example.com' } })
  await app.ingest.ingest([pcReading()])
  const client = await overHttp(t, app)
  const first = await client.inject('/devices/pc1/status')
  const heads = [first.headers]
  for (let i = 0; i < 3; i++) heads.push((await client.inject('/devices/pc1/status')).headers)
  heads.push((await client.inject({ url: '/devices/pc1/status', headers: { 'if-none-match': first.headers.etag as string } })).headers)
  heads.push((await client.inject('/devices/bad%20id/status')).headers)
  const { port } = app.server.address() as { port: number }
  const sse = await streamHead(port, '/fleet/events', { origin: 'https://ops.example.com' })
  t.equal(sse.statusCode, 200)
  heads.push(sse.headers)
  for (const [i, h] of heads.entries()) {
    t.equal(h['x-content-type-options'], 'nosniff', `#${i} nosniff`)
    t.match(h['content-security-policy'], /default-src 'self'/, `#${i} CSP`)
    t.equal(h['referrer-policy'], 'no-referrer', `#${i} Referrer-Policy`)
    t.match(h['content-security-policy'], /frame-ancestors 'none'.*script-src 'self'/, `#${i} the dashboard's CSP`)
    t.equal(h['x-frame-options'], 'SAMEORIGIN', `#${i} X-Frame-Options`)
    t.equal(h['cross-origin-opener-policy'], 'same-origin', `#${i} COOP`)
    t.notOk(h['cross-origin-embedder-policy'], `#${i} no COEP`)
    t.notOk(h['strict-transport-security'], `#${i} no HSTS over plain HTTP`)
  }
  t.equal(sse.headers['access-control-allow-origin'], 'https://ops.example.com', 'the stream carries the CORS headers too')
  const https = await client.inject({ url: '/devices/pc1/status', headers: { 'x-forwarded-proto': 'https' } })
  t.match(https.headers['strict-transport-security'], /max-age=\d+/, 'HSTS when the ALB says the client came over HTTPS')
})

t.test('/metrics: exact request counts per route pattern, cached answers included; ingest, caches and SSE figures', async t => {
  const app = await build(t, { env: { ...WARM, API_KEYS: KEYS } })
  await app.ingest.ingest([pcReading(), pcReading({}, 1)])
  await app.ingest.ingest([{ device: 'pc1', nonsense: true }])
  const client = await overHttp(t, app)
  const key = { 'x-api-key': DASH }
  const N = 40
  for (let i = 0; i < N; i++) await client.inject({ url: '/devices/pc1/status', headers: key })
  for (let i = 0; i < 7; i++) await client.inject('/devices/pc1/status')
  for (let i = 0; i < 3; i++) await client.inject({ url: '/devices/nobody/status', headers: key })
  t.equal((await client.inject('/metrics')).statusCode, 401, '/metrics wants a key with API_KEYS set')
  const res = await client.inject({ url: '/metrics', headers: key })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain/)
  const value = (series: string): number => {
    const line = res.body.split('\n').find(l => l.startsWith(series + ' '))
    return line === undefined ? NaN : Number(line.slice(series.length + 1))
  }
  t.equal(value('http_request_duration_seconds_count{method="GET",route="/devices/:device/status",status_code="200"}'), N, `${N} polls, ${N} counted`)
  t.equal(value('http_request_duration_seconds_count{method="GET",route="/devices/:device/status",status_code="401"}'), 7)
  t.equal(value('http_request_duration_seconds_count{method="GET",route="/devices/:device/status",status_code="404"}'), 3)
  t.equal(value('http_request_duration_seconds_count{method="GET",route="/metrics",status_code="401"}'), 1)
  t.equal(value('sensors_ingest_messages_total{result="stored"}'), 2)
  t.equal(value('sensors_ingest_messages_total{result="rejected"}'), 1)
  t.equal(value('sensors_ingest_messages_total{result="duplicate"}'), 0)
  t.ok(value('sensors_cache_requests_total{cache="status",result="hit"}') >= N - 1, 'status cache hits')
  t.equal(value('sensors_sse_clients'), 0)
  t.ok(res.body.includes('process_cpu_seconds_total'), 'process metrics')
  t.ok(value('sensors_dynamodb_request_duration_seconds_count{operation="BatchWriteItem",result="ok"}') >= 1, 'DynamoDB writes measured')
  t.ok(value('sensors_dynamodb_request_duration_seconds_count{operation="BatchGetItem",result="ok"}') >= 1, 'and reads')
  t.ok(res.body.includes('sensors_dynamodb_throttles_total'), 'DynamoDB throttles (none here)')
})

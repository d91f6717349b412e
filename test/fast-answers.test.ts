import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { FastAnswers } from '../lib/fast-answers.js'
import { build, overHttp, pcReading, type HttpAnswer, type BuildOptions } from './helper.js'

// A URL's first request is routed by Fastify; FastAnswers answers its next ones before routing.
// An `onRequest` hook counts the requests Fastify routes.
async function counted (t: Parameters<typeof build>[0], options: BuildOptions = {}) {
  const routed: string[] = []
  const app = await build(t, {
    ...options,
    env: { HISTORY_CACHE_TTL_MS: '60000', STATUS_CACHE_TTL_MS: '60000', ...options.env },
    before: (fastify: FastifyInstance) => {
      fastify.addHook('onRequest', async (request) => { routed.push(`${request.method} ${request.url}`) })
      options.before?.(fastify)
    }
  })
  await app.ingest.ingest(Array.from({ length: 30 }, (_, i) => pcReading({}, i + 1)))
  const client = await overHttp(t, app)
  return { app, client, routed }
}

/**
 * What a client can tell of an answer: status, headers (but the date) and body bytes. A status's
 * `age_seconds` moves every tenth of a second (and the length with it): left out of a status.
 */
function seen (answer: HttpAnswer): { statusCode: number, headers: Record<string, unknown>, body: unknown } {
  const { date: _date, ...headers } = answer.headers
  const status = answer.statusCode === 200 && /"age_seconds"/.test(answer.body)
  if (!status) return { statusCode: answer.statusCode, headers, body: answer.rawPayload.toString('base64') }
  const { age_seconds: _age, ...body } = answer.json()
  const { 'content-length': _length, ...rest } = headers
  return { statusCode: answer.statusCode, headers: rest, body }
}

t.test('a URL asked again is answered before routing, exactly as the route answers it', async t => {
  const { client, routed } = await counted(t)
  const history = '/devices/pc1?limit=20'
  const status = '/devices/pc1/status'
  const first = await client.inject(history)
  t.equal(first.statusCode, 200)
  t.match(first.headers.link, /rel="next"/, 'a page with a next one')
  const etag = first.headers.etag as string
  const statusFirst = await client.inject(status)
  const statusEtag = statusFirst.headers.etag as string
  t.same(routed, [`GET ${history}`, `GET ${status}`])

  // Each kind of answer: asked first under another URL of the same page (routed), then under the known URL (not).
  const kinds: Array<[string, string, Record<string, string>]> = [
    ['identity', history, {}],
    ['gzip', history, { 'accept-encoding': 'gzip' }],
    ['304', history, { 'if-none-match': etag }],
    ['304 to a gzip client', history, { 'if-none-match': etag, 'accept-encoding': 'gzip' }],
    ['status', status, {}],
    ['status 304', status, { 'if-none-match': statusEtag }]
  ]
  for (const [kind, url, headers] of kinds) {
    const other = `${url}${url.includes('?') ? '&' : '?'}asked=${kind.replaceAll(' ', '-')}`
    const before = routed.length
    const byRoute = await client.inject({ url: other, headers })
    t.equal(routed.length, before + 1, `${kind}: a new URL is routed`)
    const fast = await client.inject({ url, headers })
    t.equal(routed.length, before + 1, `${kind}: the known URL is answered before routing`)
    t.same(seen(fast), seen(byRoute), `${kind}: the same status, headers and body`)
  }
  t.equal((await client.inject({ url: history, headers: { 'accept-encoding': 'gzip' } })).headers['content-encoding'], 'gzip')
  const notModified = await client.inject({ url: history, headers: { 'if-none-match': etag } })
  t.equal(notModified.statusCode, 304)
  t.equal(notModified.headers['content-length'], undefined, 'a 304 has no Content-Length (none of the 200\'s, RFC 9110 8.6)')
  t.equal(notModified.rawPayload.length, 0)
})

t.test('a stored reading is seen at once, and expired answers go back to the route', async t => {
  const { app, client, routed } = await counted(t, { env: { STATUS_CACHE_TTL_MS: '200', HISTORY_CACHE_TTL_MS: '200' } })
  const url = '/devices/pc1?limit=5'
  const before = await client.inject(url)
  await client.inject('/devices/pc1/status')
  const newest = pcReading()
  await app.ingest.ingest([newest])
  t.equal((await client.inject(url)).json()[0].uuid, newest.uuid, 'this process\'s write drops the page: read again')
  t.equal((await client.inject('/devices/pc1/status')).json().uuid, newest.uuid, 'and applies to the status at once')
  t.not((await client.inject(url)).headers.etag, before.headers.etag)
  // Past two TTLs nothing kept can be answered with: the request goes to the route, which reads the table.
  const routedBefore = routed.length
  await sleep(450)
  t.equal((await client.inject(url)).statusCode, 200)
  t.equal(routed.length, routedBefore + 1, 'an answer too old is left to the route')
})

t.test('HEAD and unknown devices are routed as before', async t => {
  const { client, routed } = await counted(t)
  const url = '/devices/pc1?limit=20'
  const get = await client.inject(url)
  const head = await client.inject({ url, method: 'HEAD' })
  t.equal(head.statusCode, 200)
  t.equal(head.headers['content-length'], get.headers['content-length'])
  t.equal(head.rawPayload.length, 0)
  t.equal(routed.at(-1), `HEAD ${url}`, 'HEAD is routed')
  for (let i = 0; i < 2; i++) {
    const missing = await client.inject('/devices/nobody/status')
    t.equal(missing.statusCode, 404, 'a device without readings: 404 every time')
    t.equal(missing.json().message, 'No readings for device "nobody"')
  }
  t.equal(routed.filter(r => r === 'GET /devices/nobody/status').length, 2, 'a 404 is always the route\'s')
  const bad = await client.inject('/devices/pc1?limit=0')
  t.equal(bad.statusCode, 400, 'an invalid query is the route\'s 400')
})

t.test('while requests are logged (LOG_LEVEL=info, LOG_REQUESTS on), every request is routed and logged; LOG_REQUESTS=false logs none', async t => {
  const url = '/devices/pc1?limit=20'
  for (const [logRequests, routedTimes, loggedTimes] of [['true', 3, 3], ['false', 1, 0]] as const) {
    const lines: Array<{ msg: string, req?: { url: string } }> = []
    const { client, routed } = await counted(t, {
      env: { LOG_LEVEL: 'info', LOG_REQUESTS: logRequests },
      logStream: { write: line => { lines.push(JSON.parse(line)) } }
    })
    for (let i = 0; i < 3; i++) t.equal((await client.inject(url)).statusCode, 200)
    t.equal(routed.filter(r => r === `GET ${url}`).length, routedTimes, `LOG_REQUESTS=${logRequests}: ${routedTimes} of 3 requests routed`)
    const logged = lines.filter(l => l.msg === 'incoming request' && l.req?.url === url)
    t.equal(logged.length, loggedTimes, `LOG_REQUESTS=${logRequests}: ${loggedTimes} logged`)
    t.ok(lines.some(l => l.msg.startsWith('Server listening')), `LOG_REQUESTS=${logRequests}: the service's own info lines are written`)
  }
})

t.test('from the start of shutdown every request gets the route\'s 503, known URLs included', async t => {
  let closing!: () => void
  const closeStarted = new Promise<void>(resolve => { closing = resolve })
  const { app, client } = await counted(t, {
    // after the app's own preClose hooks: keeps the server listening a moment into shutdown
    after: fastify => { fastify.addHook('preClose', async () => { closing(); await sleep(300) }) }
  })
  const url = '/devices/pc1/status'
  t.equal((await client.inject(url)).statusCode, 200)
  t.equal((await client.inject(url)).statusCode, 200)
  const closed = app.close()
  await closeStarted
  const during = await fetch(`http://127.0.0.1:${(app.server.address() as { port: number }).port}${url}`)
  t.equal(during.status, 503)
  t.equal(during.headers.get('connection'), 'close')
  await closed
})

t.test('FastAnswers keeps at most maxEntries URLs, the oldest going first', async t => {
  const answers = new FastAnswers({ enabled: true, maxEntries: 2 })
  for (const url of ['/a', '/b', '/c']) answers.remember(url, () => undefined)
  t.same(['/a', '/b', '/c'].map(url => answers.has(url)), [false, true, true])
  answers.disable()
  t.equal(answers.active, false)
  t.equal(answers.has('/c'), false, 'disabled: nothing kept')
  answers.remember('/d', () => undefined)
  t.equal(answers.has('/d'), false, 'nor kept from then on')
})

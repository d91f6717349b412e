import t from 'tap'
import { connect } from 'node:net'
import { PutCommand } from '@aws-sdk/lib-dynamodb'
import { Type } from '@sinclair/typebox'
import { build, overHttp, pcReading, dynalite, dynamoClient, uniqueTable } from '../helper.js'
import type { Reading } from '../../schemas/readings.js'

type Test = Pick<typeof t, 'equal' | 'same' | 'ok'>

function errorShape (t: Test, res: { statusCode: number, body: string, json: () => any }, status: number, what: string): any {
  t.equal(res.statusCode, status, `${what}: ${status}`)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['error', 'message', 'statusCode'], `${what}: the error shape`)
  t.equal(body.statusCode, status, `${what}: statusCode in the body`)
  t.ok(res.body.length < 400, `${what}: a short body (${res.body.length} bytes)`)
  return body
}

/** One request over a raw socket (so a URL of any length reaches the server as a client sends it). */
async function raw (port: number, path: string): Promise<{ statusCode: number, body: string, json: () => any }> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let data = ''
    socket.on('data', (chunk: Buffer) => { data += chunk.toString('latin1') })
    socket.on('error', err => { if (data === '') reject(err) })
    socket.on('close', () => {
      const [head = '', body = ''] = data.split('\r\n\r\n')
      const statusCode = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0)
      resolve({ statusCode, body, json: () => JSON.parse(body) })
    })
    socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`)
  })
}

const BAD_NUMBERS = ['1e309', 'Infinity', '-Infinity', 'NaN', '1e2', '0x10', '0b1', '0o7', '+5', ' 5', '5 ', '5.0', '5.', '.5', '010', '-0',
  '1_0', '١٠', '5%00', '9'.repeat(400), '']

t.test('numbers in the query are plain decimal integers as written: anything else is a 400 naming the parameter', async t => {
  const app = await build(t)
  await app.ingest.ingest([pcReading()])
  for (const base of ['/devices/', '/devices/pc1']) {
    for (const value of BAD_NUMBERS) {
      const url = `${base}?limit=${encodeURIComponent(value)}`
      const body = errorShape(t, await app.inject(url), 400, url)
      t.match(body.message, /^querystring\/limit must be an integer in plain decimal digits/, `${url}: names the parameter`)
      t.ok(body.message.length < 200, `${url}: the echo of the value is bounded`)
    }
    for (const [value, count] of [['1', 1], ['7', 1], ['1000', 1]] as const) {
      const res = await app.inject(`${base}?limit=${value}`)
      t.equal(res.statusCode, 200, `${base}?limit=${value}`)
      const items = base === '/devices/' ? res.json().Items : res.json()
      t.equal(items.length, count)
    }
    // still the schema's bounds, with Ajv's own message naming the parameter
    t.match(errorShape(t, await app.inject(`${base}?limit=1001`), 400, 'limit=1001').message, /querystring\/limit must be <= 1000/)
    t.match(errorShape(t, await app.inject(`${base}?limit=0`), 400, 'limit=0').message, /querystring\/limit must be >= 1/)
    t.match(errorShape(t, await app.inject(`${base}?limit=5&limit=6`), 400, 'limit twice').message, /querystring\/limit/)
    t.equal((await app.inject({ method: 'HEAD', url: `${base}?limit=Infinity` })).statusCode, 400, 'HEAD too')
  }
  // control and bidi characters are escaped in the echo
  const body = errorShape(t, await app.inject('/devices/?limit=%E2%80%AE5%0A'), 400, 'bidi')
  t.match(body.message, /got "\\u202e5\\u000a"/)
})

t.test('the check follows every route\'s schema: a route declared later gets it for its query, params and headers', async t => {
  const app = await build(t, {
    after: fastify => {
      fastify.get('/probe/:n', {
        schema: {
          params: Type.Object({ n: Type.Integer() }),
          querystring: Type.Object({ x: Type.Optional(Type.Number()), ids: Type.Optional(Type.Array(Type.Integer())) }),
          headers: Type.Object({ 'x-count': Type.Optional(Type.Integer()) })
        }
      }, async request => request.params)
    }
  })
  t.same((await app.inject('/probe/-12?x=2.5&ids=1&ids=2')).json(), { n: -12 })
  for (const url of ['/probe/1e3', '/probe/Infinity', '/probe/0x1', '/probe/1?x=1e400', '/probe/1?x=Infinity', '/probe/1?ids=1&ids=0x2']) {
    t.match(errorShape(t, await app.inject(url), 400, url).message, /^(params\/n|querystring\/x|querystring\/ids) must be/, url)
  }
  const header = errorShape(t, await app.inject({ url: '/probe/1', headers: { 'x-count': '1e3' } }), 400, 'header')
  t.match(header.message, /^headers\/x-count must be an integer/)
})

t.test('a bad URL asked again is still refused, next to good URLs answered from memory', async t => {
  const app = await build(t, { env: { HISTORY_CACHE_TTL_MS: '60000', STATUS_CACHE_TTL_MS: '60000' } })
  await app.ingest.ingest([pcReading()])
  const client = await overHttp(t, app)
  for (const url of ['/devices/pc1?limit=Infinity', '/devices/pc1?limit=1e309', '/devices/?limit=0x10', '/devices/pc1?from=yesterday']) {
    for (const round of [1, 2, 3]) errorShape(t, await client.inject(url), 400, `${url} #${round}`)
  }
  // a good URL, asked again (answered from memory), next to its bad variant
  for (const round of [1, 2]) {
    t.equal((await client.inject('/devices/pc1?limit=5')).statusCode, 200, `good #${round}`)
    errorShape(t, await client.inject('/devices/pc1?limit=05'), 400, `bad variant #${round}`)
    t.equal((await client.inject({ url: '/devices/pc1?limit=5', method: 'POST' })).statusCode, 405, `POST #${round}`)
  }
})

function stored (iso: string, uuid: string): Reading {
  const { uuid: _u, loading_datetime: _l, ...fields } = pcReading()
  return { ...fields, uuid, loading_datetime: iso, kind: 'pc', prediction: 0, probability: 0.1 } as Reading
}

t.test('time bounds hold over the whole range the parser accepts (1970 to 9999)', async t => {
  const db = await dynalite(t)
  const table = uniqueTable()
  const app = await build(t, { env: { DYNAMODB_ENDPOINT: db.endpoint, DYNAMODB_TABLE: table } })
  const first = '00000000-0000-4000-8000-000000000001'
  const last = 'ffffffff-ffff-4fff-bfff-ffffffffffff'
  const now = pcReading()
  // Through the repository: the ingest refuses times this far ahead, the table's key range must not.
  await app.readings.put([stored('1970-01-01T00:00:00.000Z', first), stored('9999-12-31T23:59:59.999Z', last)])
  await app.ingest.ingest([now])
  // Another kind of item of the device, as other features add ("uuid#…"), is never a reading.
  const dynamo = await dynamoClient(t, db.endpoint)
  await dynamo.doc.send(new PutCommand({ TableName: table, Item: { device: 'pc1', sk: `uuid#${first}`, feed: 'all' } }))

  const uuids = async (url: string): Promise<string[]> => {
    const res = await app.inject(url)
    t.equal(res.statusCode, 200, url)
    const items = url.startsWith('/devices/?') ? res.json().Items : res.json()
    return items.map((r: { uuid: string }) => r.uuid)
  }
  t.same(await uuids('/devices/pc1'), [last, now.uuid, first], 'no bounds: every reading, the other item not')
  t.same(await uuids('/devices/?limit=10'), [last, now.uuid, first])
  for (const base of ['/devices/pc1?', '/devices/?']) {
    t.same(await uuids(`${base}from=9000-01-01`), [last], `${base} from 9000`)
    t.same(await uuids(`${base}from=9999-12-31T23:59:59.999Z`), [last])
    t.same(await uuids(`${base}from=9999-12-31&to=9999-12-31`), [last], 'a bare date as `to` is its whole day, up to the last millisecond')
    t.same(await uuids(`${base}to=9999-12-31T23:59:59.998Z&from=9999-01-01`), [])
    t.same(await uuids(`${base}to=1970-01-01`), [first], 'the lower end')
    t.same(await uuids(`${base}to=1970-01-01T00:00:00.000Z`), [first])
    // before 1970 in UTC once the zone is applied: outside what the parser accepts
    for (const bad of ['from=1970-01-01T00:00:00%2B14:00&to=1970-01-01T00:00:00Z', 'from=1969-12-31', 'to=10000-01-01', 'from=9999-12-32', 'from=9999-12-31T23:59:59Z&to=9999-12-31T00:00:00Z']) {
      errorShape(t, await app.inject(`${base}${bad}`), 400, `${base}${bad}`)
    }
    // in year 10000 once the zone is applied (its ISO form would not sort as a time): refused, naming the bound
    for (const bad of ['from=9999-12-31T23:00:00-14:00', 'to=9999-12-31T23:59:59.999-00:01&from=9998-01-01']) {
      t.match(errorShape(t, await app.inject(`${base}${bad}`), 400, `${base}${bad}`).message, /^querystring\/(from|to) must (not be after 9999-12-31T23:59:59\.999Z|be an ISO 8601 date or date-time from 1970 to 9999)$/)
    }
  }
})

t.test('a cursor used with other time bounds than its page is a 400, not a 500', async t => {
  const app = await build(t)
  await app.ingest.ingest([pcReading({}, 1), pcReading({}, 2), pcReading({}, 3)])
  const device = /cursor=([^&>]+)/.exec(String((await app.inject('/devices/pc1?limit=1')).headers.link))?.[1]
  const all = (await app.inject('/devices/?limit=1')).json().next_cursor
  for (const url of [`/devices/pc1?cursor=${device}&to=2000-01-01`, `/devices/pc1?cursor=${device}&from=9000-01-01`,
    `/devices/?cursor=${all}&to=2000-01-01`, `/devices/?cursor=${all}&from=9000-01-01`]) {
    t.match(errorShape(t, await app.inject(url), 400, url).message, /cursor/)
  }
  t.equal((await app.inject(`/devices/pc1?cursor=${device}&from=2000-01-01`)).statusCode, 200, 'within the bounds it pages on')
})

t.test('router errors have the error shape and echo at most a short, escaped part of the path', async t => {
  const app = await build(t)
  for (const url of ['/devices/%E0%A4%A', '/devices/%', '/devices/%ZZ/status', '/devices/%FF', '/devices/%C0%AF']) {
    const body = errorShape(t, await app.inject(url), 400, url)
    t.match(body.message, /not valid percent-encoded/)
  }
  for (const length of [101, 150, 10_000]) {
    for (const suffix of ['', '/status']) {
      const url = `/devices/${'a'.repeat(length)}${suffix}`
      const body = errorShape(t, await app.inject(url), 414, `id of ${length}${suffix}`)
      t.equal(body.error, 'URI Too Long')
      t.match(body.message, /longer than 100 characters: "\/devices\/a+\.\.\."$/)
    }
  }
  for (const length of [65, 100]) errorShape(t, await app.inject(`/devices/${'a'.repeat(length)}`), 400, `id of ${length}: the schema's 400`)
  const unknown = errorShape(t, await app.inject('/' + 'x'.repeat(10_000)), 404, 'a long unknown path')
  t.match(unknown.message, /^Route GET "\/x+\.\.\." not found$/)
  t.match(errorShape(t, await app.inject('/nope%0A%E2%80%AE'), 404, 'as sent').message, /^Route GET "\/nope%0A%E2%80%AE" not found$/)
  // bodies on paths without a route: Fastify's own 400 and 415, in the shape
  errorShape(t, await app.inject({ method: 'POST', url: '/nope', payload: '{bad', headers: { 'content-type': 'application/json' } }), 400, 'invalid JSON')
  errorShape(t, await app.inject({ method: 'POST', url: '/nope', payload: '', headers: { 'content-type': 'application/json' } }), 400, 'empty JSON')
  errorShape(t, await app.inject({ method: 'POST', url: '/nope', payload: 'x', headers: { 'content-type': 'text/plain' } }), 404, 'text body')
  errorShape(t, await app.inject({ method: 'POST', url: '/nope', payload: 'x', headers: { 'content-type': '\u0001' } }), 415, 'a broken media type')
  // HEAD: the status, no body
  const head = await app.inject({ method: 'HEAD', url: '/nope' })
  t.equal(head.statusCode, 404)
  t.equal(head.body, '')
  t.equal((await app.inject({ method: 'HEAD', url: '/devices/' + 'a'.repeat(150) })).statusCode, 414)
})

t.test('over a real socket: a 10k device id is a short 414 in the error shape, a URL past Node\'s header limit a 431', async t => {
  const app = await build(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const long = await raw(port, `/devices/${'a'.repeat(10_000)}`)
  t.equal(errorShape(t, long, 414, '10k id').error, 'URI Too Long')
  t.equal(errorShape(t, await raw(port, '/devices/%E0%A4%A'), 400, 'bad encoding').error, 'Bad Request')
  errorShape(t, await raw(port, `/devices/${'a'.repeat(20_000)}`), 431, '20k id (Node\'s 16 KB header limit)')
})

t.test('a method a path does not have is a 405 with Allow, found by the router, for every route', async t => {
  const app = await build(t)
  for (const [method, url] of [
    ['POST', '/devices/pc1/status'], ['DELETE', '/health'], ['PUT', '/'], ['PATCH', '/devices/'], ['POST', '/devices/'],
    ['DELETE', '/devices/pc1'], ['POST', '/docs/json'], ['OPTIONS', '/devices/pc1'], ['OPTIONS', '/health'], ['TRACE', '/devices/'],
    ['PUT', '/devices/pc1/status?limit=1'], ['POST', '/devices'], ['POST', '/devices/pc1/']
  ] as const) {
    const res = await app.inject({ method, url, payload: method === 'TRACE' || method === 'OPTIONS' ? undefined : '{bad', headers: { 'content-type': 'application/json' } })
    const body = errorShape(t, res, 405, `${method} ${url}`)
    t.equal(res.headers.allow, 'GET, HEAD', `${method} ${url}: Allow`)
    t.match(body.message, new RegExp(`^Method ${method} is not allowed on "`))
  }
  // a path without any route stays a 404, whatever the method
  for (const method of ['POST', 'DELETE', 'OPTIONS'] as const) {
    const res = await app.inject({ method, url: '/devices/pc1/status/more' })
    errorShape(t, res, 404, `${method} of an unknown path`)
    t.equal(res.headers.allow, undefined)
  }
})

t.test('the OpenAPI document: no query parameter required (limit defaults to 100), each route\'s errors declared', async t => {
  const app = await build(t)
  const doc = (await app.inject('/docs/json')).json()
  let queries = 0
  for (const [path, operations] of Object.entries<Record<string, any>>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(operations)) {
      for (const p of op.parameters ?? []) {
        if (p.in !== 'query') continue
        queries++
        t.notOk(p.required, `${method} ${path}: query ${p.name} is not required`)
      }
    }
  }
  t.ok(queries >= 8, 'the list routes\' query parameters were seen')
  for (const path of ['/devices', '/devices/{device}']) {
    const limit = doc.paths[path].get.parameters.find((p: { in: string, name: string }) => p.in === 'query' && p.name === 'limit')
    t.equal(limit.required, false)
    t.match(limit.schema, { type: 'integer', minimum: 1, maximum: 1000, default: 100 })
  }
  const expected: Record<string, string[]> = {
    '/devices': ['400', '500', '503'],
    '/devices/{device}': ['400', '414', '500', '503'],
    '/devices/{device}/status': ['400', '404', '414', '500', '503']
  }
  for (const [path, codes] of Object.entries(expected)) {
    for (const code of codes) {
      t.match(doc.paths[path].get.responses[code], { content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } }, `${path} ${code}`)
    }
  }
  // the default is still applied
  await app.ingest.ingest(Array.from({ length: 105 }, (_, i) => pcReading({}, i)))
  t.equal((await app.inject('/devices/pc1')).json().length, 100)
  t.equal((await app.inject('/devices/')).json().Count, 100)
})

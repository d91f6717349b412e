import t from 'tap'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { build, overHttp, pcReading } from '../helper.js'

// Issue 15 item 1: every request passes Fastify's lifecycle. A root-level plugin, registered the
// way an API-key check or a metrics plugin is, sees every request of a poller, answers from memory
// included (the caches are warm for the whole test: a 60 s TTL).
function counter () {
  const seen = { onRequest: 0, onResponse: 0, codes: [] as number[] }
  const plugin = fp(async function countEveryRequest (fastify: FastifyInstance) {
    fastify.addHook('onRequest', async () => { seen.onRequest++ })
    fastify.addHook('onResponse', async (_request, reply) => { seen.onResponse++; seen.codes.push(reply.statusCode) })
  }, { name: 'count-every-request' })
  return { seen, plugin }
}

const N = 50

for (const logRequests of ['true', 'false']) {
  t.test(`root-level hooks run for each of N repeated polls (LOG_REQUESTS=${logRequests})`, async t => {
    const { seen, plugin } = counter()
    const app = await build(t, {
      env: { LOG_REQUESTS: logRequests, LOG_LEVEL: 'info', HISTORY_CACHE_TTL_MS: '60000', STATUS_CACHE_TTL_MS: '60000' },
      logStream: { write: () => {} },
      before: fastify => { fastify.register(plugin) }
    })
    await app.ingest.ingest(Array.from({ length: 30 }, (_, i) => pcReading({}, i + 1)))
    const client = await overHttp(t, app)
    for (const url of ['/devices/pc1/status', '/devices/pc1', '/devices/pc1?limit=10']) {
      const first = await client.inject(url)
      t.equal(first.statusCode, 200, `${url} answers`)
      const etag = first.headers.etag as string
      for (const conditional of [false, true]) {
        const before = { ...seen, codes: seen.codes.length }
        for (let i = 0; i < N; i++) {
          const res = await client.inject({ url, headers: conditional ? { 'if-none-match': etag } : {} })
          t.equal(res.statusCode, conditional ? 304 : 200)
        }
        const what = `${url}${conditional ? ' with If-None-Match' : ''}`
        t.equal(seen.onRequest - before.onRequest, N, `${what}: onRequest ran ${N} times for ${N} polls`)
        t.equal(seen.onResponse - before.onResponse, N, `${what}: onResponse ran ${N} times`)
        t.same(new Set(seen.codes.slice(before.codes)), new Set([conditional ? 304 : 200]), `${what}: the hook saw the codes sent`)
      }
    }
  })
}

t.test('X-Request-Id is on every answer, answers from memory, 304s and errors included', async t => {
  const app = await build(t, { env: { HISTORY_CACHE_TTL_MS: '60000', STATUS_CACHE_TTL_MS: '60000' } })
  await app.ingest.ingest([pcReading()])
  const client = await overHttp(t, app)
  const ids = new Set<string>()
  for (const url of ['/devices/pc1/status', '/devices/pc1', '/devices/nobody/status', '/devices/pc1?limit=0', '/health', '/nowhere']) {
    for (let i = 0; i < 3; i++) {
      const generated = await client.inject(url)
      const id = generated.headers['x-request-id'] as string
      t.match(id, /^[0-9a-f-]{36}$/, `${url} #${i}: a generated id (${generated.statusCode})`)
      ids.add(id)
      const given = await client.inject({ url, headers: { 'x-request-id': `poll-${i}`, 'if-none-match': '*' } })
      t.equal(given.headers['x-request-id'], `poll-${i}`, `${url} #${i}: the client's id comes back (${given.statusCode})`)
    }
  }
  t.equal(ids.size, 18, 'a new id for each request')
  const insane = await client.inject({ url: '/devices/pc1/status', headers: { 'x-request-id': 'x'.repeat(300) } })
  t.match(insane.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'an id that is too long is replaced, not echoed')
})

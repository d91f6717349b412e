import t from 'tap'
import { Agent, get } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { build, pcReading, spawnServer, tempDir } from './helper.js'
import { freePort } from './kafka-helper.js'

async function waitFor<T> (fn: () => Promise<T | undefined>, ms: number): Promise<T | undefined> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    const v = await fn().catch(() => undefined)
    if (v !== undefined) return v
    await sleep(200)
  }
  return undefined
}

t.test('npm start path: real HTTP, embedded DynamoDB, this host\'s collector, status within seconds, SIGTERM exits 0', async t => {
  const port = await freePort()
  const dataDir = await tempDir(t)
  const { child, output, exited } = spawnServer(t, { PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, DEVICE_NAME: 'e2e-host', COLLECT_INTERVAL_SECONDS: '1', LOG_LEVEL: 'info' })
  const status = await waitFor(async () => {
    const res = await fetch(`http://127.0.0.1:${port}/devices/e2e-host/status`)
    return res.status === 200 ? await res.json() as Record<string, unknown> : undefined
  }, 20_000)
  t.ok(status, `status answered (output: ${output().slice(-2000)})`)
  t.match(status, { device: 'e2e-host', stale: false, msg: /^The device is (OK|stressed)$/ })
  const health = await fetch(`http://127.0.0.1:${port}/health`)
  t.equal(health.status, 200)
  const body = await health.json() as { components: Record<string, { status: string }> }
  t.equal(body.components.dynamodb?.status, 'up')
  t.equal(body.components.collector?.status, 'up')
  const docs = await fetch(`http://127.0.0.1:${port}/`)
  t.equal(docs.status, 200, 'GET / ends in 200 after the redirect')
  // X-Request-Id (from a proxy or a client) names the request in the logs when it is a sane id
  const ids = { valid: 'edge-7f3a.42:1', spaces: 'not an id', long: 'x'.repeat(129), quote: 'a"b' }
  for (const [probe, id] of Object.entries(ids)) {
    t.equal((await fetch(`http://127.0.0.1:${port}/health?probe=${probe}`, { headers: { 'x-request-id': id } })).status, 200)
  }
  // idle connections outlive the ALB's (60 s): the server says so on every keep-alive answer
  const keepAlive = await new Promise<string | undefined>((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/health', agent: new Agent({ keepAlive: true }) }, res => {
      res.resume()
      resolve(String(res.headers['keep-alive']))
    }).on('error', reject)
  })
  t.equal(keepAlive, 'timeout=65', 'Keep-Alive: timeout=65')
  // behind the ALB: the client address is the one the ALB appended, not one the client sent
  const forwarded = await fetch(`http://127.0.0.1:${port}/health?probe=forwarded`, { headers: { 'x-forwarded-for': '6.6.6.6, 203.0.113.7' } })
  t.equal(forwarded.status, 200)

  child.kill('SIGTERM')
  const code = await exited
  t.equal(code, 0, 'SIGTERM exits 0')
  const lines = output().split('\n').filter(l => l.startsWith('{'))
  t.ok(lines.length > 0 && lines.every(l => { try { JSON.parse(l); return true } catch { return false } }), 'logs are JSON lines')
  t.ok(lines.some(l => /"reqId"/.test(l)), 'request logs carry request ids')
  t.notMatch(output(), /DeprecationWarning|\[FST(DEP|WRN)\d+\]/, 'no deprecation warning (Fastify\'s FSTDEP023 was one at every start)')
  t.notMatch(output(), /unrecognized flag/, 'this Node.js knows every V8 flag of v8-flags.ts (V8 only says so on stderr)')
  const entries = lines.map(l => JSON.parse(l) as { reqId?: string, req?: { url?: string, remoteAddress?: string } })
  const logOf = (probe: string): typeof entries[number] | undefined => entries.find(e => e.req?.url === `/health?probe=${probe}`)
  const reqIdOf = (probe: string): unknown => logOf(probe)?.reqId
  t.equal(reqIdOf('valid'), ids.valid, 'a sane X-Request-Id is the request id')
  t.equal(logOf('forwarded')?.req?.remoteAddress, '203.0.113.7', 'the client address is the last X-Forwarded-For hop (the ALB\'s), not the client\'s own claim')
  for (const probe of ['spaces', 'long', 'quote']) {
    t.match(reqIdOf(probe), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, `an X-Request-Id with ${probe} is replaced by a generated id`)
  }
})

t.test('ROLE=api starts with its own V8 flags (v8-flags.ts API_V8_FLAGS), serves reads and exits 0 on SIGTERM', async t => {
  const port = await freePort()
  const { child, output, exited } = spawnServer(t, { ROLE: 'api', PORT: String(port), HOST: '127.0.0.1', DATA_DIR: await tempDir(t) })
  const health = await waitFor(async () => {
    const res = await fetch(`http://127.0.0.1:${port}/health`)
    return res.status === 200 ? res.status : undefined
  }, 20_000)
  t.equal(health, 200, `/health answered (output: ${output().slice(-2000)})`)
  t.equal((await fetch(`http://127.0.0.1:${port}/devices/none/status`)).status, 404, 'a read route is served')
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'SIGTERM exits 0')
  t.notMatch(output(), /unrecognized flag/, 'this Node.js knows every flag of the api role')
})

t.test('a bad configuration value stops start-up with one clear line', async t => {
  for (const [key, value] of [['PORT', '99999'], ['DYNAMODB_ENDPOINT', 'not a url'], ['COLLECTOR', 'maybe'], ['LOG_REQUESTS', 'sometimes']] as const) {
    const { output, exited } = spawnServer(t, { [key]: value, DATA_DIR: await tempDir(t) })
    const code = await exited
    t.equal(code, 1, `${key} exits 1`)
    const text = output().trim()
    t.equal(text.split('\n').length, 1, `${key}: one line`)
    t.match(text, new RegExp(`^Invalid configuration: ${key} `))
    t.notMatch(text, /at .*\.js:\d+/, 'no stack trace')
  }
})

t.test('the embedded DynamoDB keeps data across a restart', async t => {
  const dataDir = await tempDir(t)
  const reading = pcReading()
  {
    const app = await build(t, { env: { DATA_DIR: dataDir, DYNAMODB_TABLE: 'sensors_data' } })
    await app.ingest.ingest([reading])
    await app.close()
  }
  const app = await build(t, { env: { DATA_DIR: dataDir, DYNAMODB_TABLE: 'sensors_data' } })
  const list = (await app.inject('/devices/pc1')).json()
  t.same(list.map((r: { uuid: string }) => r.uuid), [reading.uuid])
  t.equal((await app.inject('/devices/pc1/status')).json().uuid, reading.uuid)
})

// first, as in server.ts: the service's V8 flags
import { setRoleFlags } from '../../v8-flags.js'
import Fastify, { type FastifyInstance, type FastifySchema } from 'fastify'
import app from '../../app.js'
import { loadConfig } from '../../config.js'
import { serverOptions } from '../../server-options.js'
import { flavourOf, type Flavour } from './data.js'
import { answerGc } from './gc.js'

// The server under test: the real app built exactly as server.ts builds it (same server options,
// same plugin, configured from the environment), plus the bench's ceiling routes. Over IPC: "ready"
// once listening; "ceiling" (the answers the ceilings send); the Kafka consumer's counters.

const config = loadConfig()
setRoleFlags(config.ROLE)
const fastify = Fastify(serverOptions(config))

/** Where the ceilings live: `/__bench/devices/:device` and `/__bench/devices/:device/status`. */
const PREFIX = '/__bench'

// The real device routes' schemas (params, querystring, headers, responses) as they declare them,
// seen by an onRoute hook added before the app: the ceilings declare the very same ones.
const realSchemas = new Map<string, FastifySchema>()
fastify.addHook('onRoute', route => {
  if (route.method === 'GET' && /^\/devices\/:device(\/status)?$/.test(route.url) && route.schema !== undefined) realSchemas.set(route.url, route.schema)
})

interface Answer { code: number, headers: Record<string, string>, body: Buffer }
/** per ceiling route and device flavour: what the real route answered for a device of that flavour */
const answers = new Map<string, Answer>()

/**
 * The ceilings: what the real device routes would cost if their answer cost nothing. Each answers,
 * from a synchronous handler through `reply`, a constant: the real route's own answer (status code,
 * headers, body bytes) for a device of the asked device's flavour (a PC with a GPU, one without, a
 * Raspberry Pi; bench devices have their flavour in their number), captured from the real route by
 * the runner before the loads. So ceiling and real route send the same bytes the same way, and
 * real / ceiling is what the route's own work costs (cache lookups, ETag and Accept-Encoding checks).
 *
 * Same lifecycle as the real routes: this plugin is registered on the root instance after the app,
 * which is a fastify-plugin (not encapsulated), so every root-level hook and handler the app sets
 * (the request-id and 405 onRequest hooks, the error and not-found handlers, the onRoute hook that
 * adds the numeric-query preValidation to each route declaring a number) applies to these routes
 * as to the real ones, whose plugins are children of the same root; and there is only one server,
 * so one set of server options (serverOptions(config)). The runner checks it over HTTP before any
 * load (run.ts, `sameLifecycle`): same answer but for the request id, the same 400 for a number
 * not written in plain decimal, the same 405.
 */
async function ceilings (instance: FastifyInstance): Promise<void> {
  if (realSchemas.size !== 2) throw new Error(`bench server: found ${realSchemas.size} of the two device routes`)
  for (const [url, schema] of realSchemas) {
    instance.get(url, { schema: { ...schema, hide: true } }, function ceiling (request, reply) {
      const answer = answers.get(`${url}|${flavourOf((request.params as { device: string }).device)}`)
      if (answer === undefined) throw new Error('the runner has not sent the ceilings\' answers')
      reply.code(answer.code).headers(answer.headers).send(answer.body)
    })
  }
}

let readyAt = 0
try {
  await fastify.register(app, { config })
  await fastify.register(ceilings, { prefix: PREFIX })
  // after the app's own onReady hooks: the Kafka consumer (if any) has just been started
  fastify.addHook('onReady', async () => { readyAt = Date.now() })
  await fastify.listen({ port: config.PORT, host: '127.0.0.1' })
} catch (err) {
  process.stderr.write(`bench server could not start: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
}

const address = fastify.server.address()
const port = typeof address === 'object' && address !== null ? address.port : config.PORT
// the memory Node.js sized V8's heap for: a cgroup's limit, if the runner started it in one
const constrained = process.constrainedMemory()
process.send?.({ type: 'ready', port, readyAt, constrainedMib: constrained > 0 && constrained < 2 ** 53 ? Math.round(constrained / 2 ** 20) : null })
answerGc()

/** answers the runner may not copy: set per connection or per request (x-request-id: by the app's hook) */
const PER_REQUEST = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding', 'x-request-id'])

let watcher: NodeJS.Timeout | undefined
process.on('message', (msg: { type: string, target?: number, devices?: string[] }) => {
  const counters = () => ({ ...fastify.kafkaConsumer?.counters, at: Date.now() })
  if (msg.type === 'counters') process.send?.({ type: 'counters', ...counters() })
  // "watch": tell the runner the moment the consumer has stored `target` readings (checked every 10 ms)
  if (msg.type === 'watch') {
    clearInterval(watcher)
    watcher = setInterval(() => {
      const c = fastify.kafkaConsumer?.counters
      if (c !== undefined && c.stored + c.deadLettered >= (msg.target ?? 0)) {
        clearInterval(watcher)
        process.send?.({ type: 'stored', ...counters() })
      }
    }, 10)
  }
  // "ceiling": the answers of the real routes (identity-coded) for these devices, one per flavour
  if (msg.type === 'ceiling') {
    captureCeilings(msg.devices ?? []).then(
      () => { process.send?.({ type: 'ceiling' }) },
      (err: unknown) => { process.send?.({ type: 'ceiling', error: String(err) }) })
  }
})

async function captureCeilings (devices: string[]): Promise<void> {
  for (const device of devices) {
    const flavour: Flavour = flavourOf(device)
    for (const url of realSchemas.keys()) {
      const path = url.replace(':device', device) + (url.endsWith('/status') ? '' : '?limit=100')
      const res = await fastify.inject({ method: 'GET', url: path, headers: { 'accept-encoding': 'identity' } })
      if (res.statusCode !== 200) throw new Error(`GET ${path} answered ${res.statusCode}`)
      const headers = Object.fromEntries(Object.entries(res.headers).filter(([name]) => !PER_REQUEST.has(name)).map(([name, value]) => [name, String(value)]))
      answers.set(`${url}|${flavour}`, { code: 200, headers, body: res.rawPayload })
    }
  }
}

let closing = false
async function shutdown (): Promise<void> {
  if (closing) return
  closing = true
  clearInterval(watcher)
  const timer = setTimeout(() => { process.exit(1) }, 20_000)
  await fastify.close().catch(() => {})
  clearTimeout(timer)
  process.exit(0)
}
process.once('SIGTERM', () => { shutdown().catch(() => { process.exit(1) }) })
process.once('SIGINT', () => { shutdown().catch(() => { process.exit(1) }) })
process.once('disconnect', () => { shutdown().catch(() => { process.exit(1) }) })

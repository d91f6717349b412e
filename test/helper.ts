import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'
import { setTimeout as sleep } from 'node:timers/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import app, { type AppOptions } from '../app.js'
import { ConfigSchema, loadConfig } from '../config.js'
import { serverOptions } from '../server-options.js'
import { createDynamo, startEmbeddedDynamo, type Dynamo, type EmbeddedDynamo } from '../storage/client.js'
import { PC_SENSORS, PI_SENSORS } from '../tools/bench/data.js'

interface Teardown { teardown: (fn: () => unknown) => void }

const serverJs = fileURLToPath(new URL('../server.js', import.meta.url))

export interface ServerProcess {
  child: ChildProcess
  /** the last 20 KB of its stdout and stderr */
  output: () => string
  exited: Promise<number | null>
}

/**
 * `node dist/server.js`, as `npm start` runs it, with `env` over this process's environment,
 * from which every setting of the service (and `AWS_REGION`) is removed first: the server sees
 * only what the test sets (`LOG_LEVEL` is `warn` unless set). Killed when the test ends.
 */
export function spawnServer (t: Teardown, env: Record<string, string>): ServerProcess {
  const clean = { ...process.env }
  for (const key of [...Object.keys(ConfigSchema.properties), 'AWS_REGION']) delete clean[key]
  const child = spawn(process.execPath, [serverJs], { env: { ...clean, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-20_000) })
  child.stderr?.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-20_000) })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return { child, output: () => out, exited }
}

/** An in-memory dynalite on a free port, stopped when the test ends. */
export async function dynalite (t: Teardown): Promise<EmbeddedDynamo> {
  const db = await startEmbeddedDynamo(null)
  t.teardown(() => db.close())
  return db
}

export interface DynaliteProcess {
  endpoint: string
  /** kills the process (SIGKILL unless told) and waits until it has exited */
  kill: (signal?: NodeJS.Signals) => Promise<void>
  /** starts it again on the same port and data; resolves when it answers HTTP */
  start: () => Promise<void>
  /** SIGSTOP: a table that accepts connections and never answers; thaw() with SIGCONT */
  freeze: () => void
  thaw: () => void
}

/**
 * dynalite in a process of its own (its CLI), its LevelDB files in a temp dir: a DynamoDB that a
 * test can kill and start again on the same port with the same data. Killed when the test ends.
 */
export async function dynaliteProcess (t: Teardown): Promise<DynaliteProcess> {
  const { freePort } = await import('./kafka-helper.js')
  // registered before the data dir's removal, so the process is gone first
  t.teardown(() => kill())
  const dir = await tempDir(t, 'sensors-dynalite-')
  const port = await freePort()
  const cli = createRequire(import.meta.url).resolve('dynalite/cli.js')
  const endpoint = `http://127.0.0.1:${port}`
  let child: ChildProcess | undefined
  let out = ''
  const running = (): boolean => child !== undefined && child.exitCode === null && child.signalCode === null
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    if (child === undefined || !running()) return
    const exited = once(child, 'exit')
    child.kill(signal)
    await exited
  }
  const start = async (): Promise<void> => {
    if (running()) throw new Error('dynalite is already running')
    const args = [cli, '--host', '127.0.0.1', '--port', String(port), '--path', dir, '--createTableMs', '0', '--deleteTableMs', '0', '--updateTableMs', '0']
    const proc = child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    proc.stdout?.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-4000) })
    proc.stderr?.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-4000) })
    const until = Date.now() + 20_000
    while (Date.now() < until) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`dynalite exited at start: ${out}`)
      if (await fetch(endpoint).then(() => true, () => false)) return
      await sleep(50)
    }
    throw new Error(`dynalite did not answer on ${endpoint} within 20 s: ${out}`)
  }
  await start()
  return { endpoint, kill, start, freeze: () => child?.kill('SIGSTOP'), thaw: () => child?.kill('SIGCONT') }
}

export async function tempDir (t: Teardown, prefix = 'sensors-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

export function uniqueTable (): string {
  return `test_${randomUUID().slice(0, 8)}`
}

/** A DynamoDB client against the given endpoint, closed when the test ends. */
export async function dynamoClient (t: Teardown, endpoint: string): Promise<Dynamo> {
  const dynamo = await createDynamo({ mode: 'endpoint', endpoint, dataDir: '' })
  t.teardown(() => dynamo.close())
  return dynamo
}

export interface BuildOptions extends Partial<Omit<AppOptions, 'config'>> {
  env?: Record<string, string>
  /** where the log lines go (default: stdout) */
  logStream?: { write: (line: string) => void }
  /** runs on the instance before the app is registered (hooks that see every request) */
  before?: (fastify: FastifyInstance) => void
  /** runs on the instance after the app is registered, before it is ready */
  after?: (fastify: FastifyInstance) => void
}

/**
 * Builds the app exactly as server.ts does (same server options, same plugin), with the
 * environment given: by default against a fresh in-memory dynalite and a fresh table.
 */
export async function build (t: Teardown, options: BuildOptions = {}): Promise<FastifyInstance> {
  // RATE_LIMIT_PER_MINUTE=0 unless a test sets it: tests poll from one address far over the default
  const env: Record<string, string> = { LOG_LEVEL: 'silent', COLLECTOR: 'off', DYNAMODB_TABLE: uniqueTable(), RATE_LIMIT_PER_MINUTE: '0', ...options.env }
  if (env.DYNAMODB_ENDPOINT === undefined && env.AWS_REGION === undefined && env.DATA_DIR === undefined) {
    env.DYNAMODB_ENDPOINT = (await dynalite(t)).endpoint
  }
  const config = loadConfig(env)
  const server = serverOptions(config)
  const { env: _env, logStream, before, after, ...seams } = options
  const fastify = Fastify(logStream === undefined ? server : { ...server, logger: { ...server.logger as object, stream: logStream } })
  before?.(fastify)
  await fastify.register(app, { config, ...seams })
  after?.(fastify)
  t.teardown(() => fastify.close())
  await fastify.ready()
  return fastify
}

let seq = 0
/** A valid PC reading; `minutesAgo` spaces readings in time. */
export function pcReading (overrides: Record<string, unknown> = {}, minutesAgo = 0): Record<string, unknown> {
  seq++
  return {
    uuid: randomUUID(),
    device: 'pc1',
    loading_datetime: new Date(Date.now() - minutesAgo * 60_000 - seq).toISOString(),
    ...PC_SENSORS,
    ...overrides
  }
}

export function piReading (overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { uuid: randomUUID(), device: 'raspberry', loading_datetime: new Date().toISOString(), ...PI_SENSORS, ...overrides }
}

export interface DynamoProxy {
  endpoint: string
  /** API calls seen, by operation name (`GetItem`, `BatchGetItem`, `Query`…) */
  calls: Record<string, number>
  /** answer calls with this DynamoDB error instead of forwarding them (undefined: forward) */
  fail: { status: number, type: string } | undefined
  /** answer the calls it picks (by operation and request JSON) with that DynamoDB error */
  failWhen: ((operation: string, request: string) => { status: number, type: string } | undefined) | undefined
  /** accept calls and never answer them (a DynamoDB that hangs); held until the test ends */
  hang: boolean
  /** rewrites a forwarded answer's JSON (the CRC32 header is dropped then); `request`: the call's JSON */
  rewrite: ((operation: string, body: Record<string, unknown>, request: Record<string, unknown>) => Record<string, unknown>) | undefined
}

/**
 * A pass-through HTTP proxy in front of a DynamoDB endpoint: counts the API calls the service
 * makes and injects failures (errors, throttled batches) into the real protocol.
 */
export async function dynamoProxy (t: Teardown, target: string): Promise<DynamoProxy> {
  const { createServer, request } = await import('node:http')
  const upstream = new URL(target)
  const proxy: DynamoProxy = { endpoint: '', calls: {}, fail: undefined, failWhen: undefined, hang: false, rewrite: undefined }
  const server = createServer((req, res) => {
    const operation = String(req.headers['x-amz-target'] ?? '').split('.')[1] ?? ''
    proxy.calls[operation] = (proxy.calls[operation] ?? 0) + 1
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (proxy.hang) return
      const fail = proxy.fail ?? proxy.failWhen?.(operation, Buffer.concat(chunks).toString('utf8'))
      if (fail !== undefined) {
        res.writeHead(fail.status, { 'content-type': 'application/x-amz-json-1.0' })
        res.end(JSON.stringify({ __type: `com.amazonaws.dynamodb.v20120810#${fail.type}`, message: 'injected by the test' }))
        return
      }
      const out = request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, up => {
        const body: Buffer[] = []
        up.on('data', (c: Buffer) => body.push(c))
        up.on('end', () => {
          let payload = Buffer.concat(body)
          const headers = { ...up.headers }
          if (proxy.rewrite !== undefined && up.statusCode === 200) {
            const call = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>
            payload = Buffer.from(JSON.stringify(proxy.rewrite(operation, JSON.parse(payload.toString('utf8')), call)))
            delete headers['x-amz-crc32']
            headers['content-length'] = String(payload.length)
          }
          res.writeHead(up.statusCode ?? 500, headers)
          res.end(payload)
        })
      })
      out.on('error', () => res.destroy())
      out.end(Buffer.concat(chunks))
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => { server.closeAllConnections(); server.close(resolve) }))
  const { port } = server.address() as { port: number }
  proxy.endpoint = `http://127.0.0.1:${port}`
  return proxy
}

export interface HttpAnswer {
  statusCode: number
  headers: Record<string, string | string[] | undefined>
  rawPayload: Buffer
  body: string
  json: () => any
}

export interface HttpClient {
  /** as `fastify.inject`, but over a real keep-alive connection (bodies left as sent: no decompression) */
  inject: (request: string | { url: string, method?: string, headers?: Record<string, string> }) => Promise<HttpAnswer>
}

/**
 * Makes the app listen on a free loopback port and asks it over HTTP: unlike `inject`, which hands
 * requests to Fastify's router, these reach the server as a client's do (keep-alive, raw bytes).
 */
export async function overHttp (t: Teardown, app: FastifyInstance): Promise<HttpClient> {
  const { Agent, request } = await import('node:http')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const agent = new Agent({ keepAlive: true, maxSockets: 64 })
  t.teardown(() => { agent.destroy() })
  return {
    inject: async (what) => {
      const { url, method = 'GET', headers = {} } = typeof what === 'string' ? { url: what } : what
      return await new Promise<HttpAnswer>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: url, method, headers, agent }, res => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('error', reject)
          res.on('end', () => {
            const rawPayload = Buffer.concat(chunks)
            const body = rawPayload.toString('utf8')
            resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, rawPayload, body, json: () => JSON.parse(body) })
          })
        })
        req.on('error', reject)
        req.end()
      })
    }
  }
}

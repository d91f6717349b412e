// `npm run bench [-- --json] [-- --quick]`: the service's figures against the targets of issue 15,
// each throughput a ratio to a reference measured in the same run on the same machine
// (BENCHMARKS.md, Method).
//
//   processes: this runner (setup), dynalite (dynalite.ts, in memory), the server under test
//   (server.ts: the real app + ceiling routes), the floor (floor.ts: bare node:http), the load
//   generator (load.ts: wrk, or autocannon), and for ingest a real Kafka 4 broker (kafka.ts).
//
// Exit status 0 whatever the figures; 1 only when the harness breaks (a server that does not
// start, a sanity check that fails, a count mismatch, a stall).

import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import pLimit from 'p-limit'
import { BatchGetItemCommand, DeleteTableCommand } from '@aws-sdk/client-dynamodb'
import { BatchWriteCommand } from '@aws-sdk/lib-dynamodb'
import { createDynamo, type Dynamo } from '../../storage/client.js'
import { claimSk, createTable, deviceReadingPages } from '../../storage/table.js'
import { CLAIM_PROJECTION, ReadingsRepository, itemsOf, newClaim } from '../../storage/readings-repository.js'
import type { Reading } from '../../schemas/readings.js'
import { ConfigSchema } from '../../config.js'
import { fleet, flavourOf, validator, type Fleet } from './data.js'
import { createTopics, preload, startKafka, topicOf, type Broker } from './kafka.js'
import type { LoadResult, LoadSpec, LoadTool } from './load.js'
import { RssSampler, cpuSeconds, killAllNow, log, otherProcesses, spawnNode, stopAll, tempDirs, type Child, type SpawnOptions } from './procs.js'
import { memoryCgroup, type MemoryCgroup } from './cgroup.js'
import { table, verdicts } from './report.js'
import { fullGc } from './gc.js'
import { resolveServiceNode, type ServiceNode } from './node.js'
import type { CapturedAnswer } from './floor.js'
import { statsBench } from './stats.js'
import { benchFleet } from './fleet.js'
import { benchSse } from './sse.js'

const USAGE = `usage: npm run bench -- [--json] [--quick] [--only=startup,ingest,http,stats,fleet,sse] [--node=image|this]
  --json   one JSON object on stdout (progress on stderr)
  --quick  CI smoke run: small data, 2 s loads (figures printed, nothing judged)
  --only   run only these parts (default: all)
  --node   the service's Node.js in the start-up and HTTP parts: image (default: the Dockerfile's
           major, fetched once from the npm registry into ~/.cache/sensors-api) or this (the one
           running the bench). The ingest server runs on this one: node-rdkafka is built for it.
The HTTP load generator is wrk when it is on the PATH, else autocannon.`

const PARTS = ['startup', 'ingest', 'http', 'stats', 'fleet', 'sse']
const only = new Set(PARTS)
let asJson = false
let quick = false
let nodeChoice: 'image' | 'this' = 'image'
for (const arg of process.argv.slice(2)) {
  if (arg === '--json') asJson = true
  else if (arg === '--quick') quick = true
  else if (arg === '--help' || arg === '-h') {
    process.stdout.write(USAGE + '\n')
    process.exit(0)
  } else if (arg.startsWith('--only=')) {
    only.clear()
    for (const part of arg.slice(7).split(',')) {
      if (!PARTS.includes(part)) throw new Error(`--only: unknown part "${part}"\n${USAGE}`)
      only.add(part)
    }
  } else if (arg === '--node=image' || arg === '--node=this') {
    nodeChoice = arg === '--node=image' ? 'image' : 'this'
  } else if (arg.startsWith('--node')) {
    throw new Error(`--node: image or this, not "${arg.slice(7)}"\n${USAGE}`)
  } else {
    throw new Error(`unknown argument "${arg}"\n${USAGE}`)
  }
}

const settings = quick
  ? { durationS: 2, warmupS: 1, rounds: 1, readings: 2_000, devices: 20, kafkaMessages: 5_000, startupRuns: 1, ceilingSample: 2_000 }
  : { durationS: 6, warmupS: 3, rounds: 3, readings: 100_000, devices: 100, kafkaMessages: 100_000, startupRuns: 3, ceilingSample: 10_000 }
/** warm-up of the loads after the first round (the server is warm by then; the load's connections are not) */
const LATER_WARMUP_S = 1
const CONNECTIONS = 64
/** the history load that asks for compression, as browsers do (wrk and autocannon ask for nothing) */
const GZIP = { 'accept-encoding': 'gzip' }
const LOAD_TOOL: LoadTool = spawnSync('wrk', ['-v'], { stdio: 'ignore' }).error === undefined ? 'wrk' : 'autocannon'
const CEILING_CONCURRENCY = [4, 8, 16, 32]
const TOPIC_PARTITIONS = 3

const here = fileURLToPath(new URL('.', import.meta.url))
const root = fileURLToPath(new URL('../../../', import.meta.url))
const runId = randomUUID().slice(0, 8)

// The environment of every child: the app's defaults, never a setting inherited from this shell
// (an outside DynamoDB, AWS region, Kafka broker, cache TTL...); only what the bench says.
function childEnv (extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const key of Object.keys(ConfigSchema.properties)) delete env[key]
  // RATE_LIMIT_PER_MINUTE=0: the bench's load comes from one address, far over the default limit
  return { ...env, LOG_LEVEL: 'warn', COLLECTOR: 'off', HOST: '127.0.0.1', PORT: '0', RATE_LIMIT_PER_MINUTE: '0', ...extra }
}

// ---------------------------------------------------------------------------- helpers

/** `fn` over `items`, at most `concurrency` at once (p-limit, as the repository's writes); rejects with the first failure. */
async function mapLimit<T> (items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  await pLimit(concurrency).map(items, fn)
}

function round (x: number, digits = 0): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

function chunks<T> (items: T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/** Readings of these devices in the table (status and claim items excluded), by Query COUNT. */
async function countReadings (dynamo: Dynamo, tableName: string, devices: string[]): Promise<number> {
  let total = 0
  await mapLimit(devices, 8, async device => {
    for await (const page of deviceReadingPages(dynamo.doc, tableName, device, { count: true })) total += page.count
  })
  return total
}

async function dropTable (dynamo: Dynamo, tableName: string): Promise<void> {
  await dynamo.client.send(new DeleteTableCommand({ TableName: tableName })).catch(() => {})
}

async function startServer (
  name: string, env: Record<string, string>, options: SpawnOptions = {}
): Promise<{ child: Child, port: number, readyAt: number, constrainedMib: number | null }> {
  const child = spawnNode(name, join(here, 'server.js'), [], childEnv(env), options)
  return { child, ...await child.message<{ port: number, readyAt: number, constrainedMib: number | null }>('ready', 60_000) }
}

/** A free loopback port: the project's one helper (tools/kafka-broker.mjs freePorts). */
async function freePort (): Promise<number> {
  const { freePorts } = await import(new URL('../../../tools/kafka-broker.mjs', import.meta.url).href) as { freePorts: (n: number) => Promise<number[]> }
  return (await freePorts(1))[0]!
}

/** CPU milliseconds per unit of work from /proc CPU seconds before and after */
function msPer (units: number, before: Record<string, number | undefined>, after: Record<string, number | undefined>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [name, a] of Object.entries(before)) {
    const b = after[name]
    if (a !== undefined && b !== undefined) out[name] = round((b - a) * 1000 / units, 3)
  }
  return out
}

// ---------------------------------------------------------------------------- start-up

/**
 * Node >= 22.8 keeps compiled code in NODE_COMPILE_CACHE (server.ts turns it on): a directory of
 * this run, so the first start-up run compiles everything (a new container's first start) and the
 * others start as a restarted one does. Node 20 has no such cache: every run compiles.
 */
async function startupOnce (node: ServiceNode, compileCache: string): Promise<number> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sensors-bench-startup-'))
  tempDirs.add(dataDir)
  const port = await freePort()
  const env = childEnv({ ...node.env, DATA_DIR: dataDir, PORT: String(port), NODE_COMPILE_CACHE: compileCache })
  const started = performance.now()
  const proc = spawn(node.path, [join(root, 'build', 'server.js')], { env, stdio: ['ignore', 'ignore', 'pipe'] })
  otherProcesses.add(proc)
  let err = ''
  proc.stderr.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-5000) })
  try {
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`server.js exited with ${proc.exitCode} during start-up: ${err}`)
      if (performance.now() - started > 30_000) throw new Error(`server.js did not answer /health 200 within 30 s: ${err}`)
      if (await fetch(`http://127.0.0.1:${port}/health`).then(r => r.status === 200, () => false)) return performance.now() - started
      await sleep(5)
    }
  } finally {
    proc.kill('SIGTERM')
    if (proc.exitCode === null) await Promise.race([new Promise(resolve => proc.once('exit', resolve)), sleep(10_000, undefined, { ref: false })])
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
    otherProcesses.delete(proc)
    await rm(dataDir, { recursive: true, force: true })
    tempDirs.delete(dataDir)
  }
}

// ---------------------------------------------------------------------------- HTTP

type HttpRun = LoadResult & { server_rss_mb_max: number }

/**
 * Waits (up to 10 s) until this runner is idle (under 3 % of a core over 250 ms): after the full GC
 * before a load, V8 may still be marking and sweeping on background threads of this process, and
 * that CPU would compete with the server and the load.
 */
async function settle (): Promise<void> {
  const started = performance.now()
  for (;;) {
    const before = process.cpuUsage()
    await sleep(250)
    const { user, system } = process.cpuUsage(before)
    if ((user + system) / 1000 / 250 < 0.03 || performance.now() - started > 10_000) return
  }
}

/** One load of `paths` on `target` (the server or the floor), after a full GC of every process in play. */
async function load (
  name: string, target: Child, dynalite: Child, port: number, paths: string[], headers: Record<string, string> | undefined, warmupS: number
): Promise<HttpRun> {
  const spec: LoadSpec = { tool: LOAD_TOOL, url: `http://127.0.0.1:${port}`, paths, headers, connections: CONNECTIONS, durationS: settings.durationS, warmupS }
  fullGc()
  target.send({ type: 'gc' })
  dynalite.send({ type: 'gc' })
  await Promise.all([target.message('gc', 30_000), dynalite.message('gc', 30_000)])
  await settle()
  const child = spawnNode(`load ${name}`, join(here, 'load.js'), [JSON.stringify(spec)], process.env)
  const timeout = (warmupS + settings.durationS) * 1000 + 60_000
  await child.message('measuring', timeout)
  const rss = new RssSampler(target.pid)
  const { result } = await child.message<{ result: LoadResult }>('result', timeout)
  const rssMb = rss.stop()
  await child.stop()
  const bad = result.non2xx + result.errors + result.timeouts
  log(`http: ${name}: ${result.rps} req/s, p99 ${result.latency_ms.p99} ms, rss ${rssMb} MB${bad > 0 ? `, ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts` : ''}`)
  if (bad > result.requests * 0.01) throw new Error(`${name}: ${bad} failed answers in ${result.requests} requests: the figure would mean nothing`)
  return { ...result, server_rss_mb_max: rssMb }
}

function check (ok: boolean, what: string): void {
  if (!ok) throw new Error(`sanity check failed: ${what}`)
}

/**
 * The ceilings run through the same lifecycle as the real routes (server.ts, `ceilings`): the same
 * answer but for the request id, the app's request-id hook on both, its numeric-query check (a
 * 400 before validation) on both, its 405 on both.
 */
async function sameLifecycle (base: string, device: string): Promise<void> {
  const get = async (path: string, init: RequestInit = {}): Promise<{ status: number, headers: Headers, body: string }> => {
    const res = await fetch(base + path, { ...init, headers: { 'x-request-id': 'bench-check', 'accept-encoding': 'identity' } })
    return { status: res.status, headers: res.headers, body: await res.text() }
  }
  const names = (h: Headers): string => {
    const all: string[] = []
    h.forEach((_, name) => { if (name !== 'date') all.push(name) })
    return all.sort().join(',')
  }
  for (const path of [`/devices/${device}/status`, `/devices/${device}?limit=100`]) {
    const [real, ceiling] = [await get(path), await get(`/__bench${path}`)]
    check(real.status === 200 && ceiling.status === 200 && names(real.headers) === names(ceiling.headers) && real.headers.get('etag') === ceiling.headers.get('etag') &&
      real.headers.get('x-request-id') === 'bench-check' && ceiling.headers.get('x-request-id') === 'bench-check',
    `GET ${path} and its ceiling answered ${real.status} [${names(real.headers)}] and ${ceiling.status} [${names(ceiling.headers)}]`)
    const [r405, c405] = [await get(path, { method: 'POST' }), await get(`/__bench${path}`, { method: 'POST' })]
    check(r405.status === 405 && c405.status === 405 && r405.headers.get('allow') === c405.headers.get('allow'), `POST ${path} answered ${r405.status}, its ceiling ${c405.status}`)
    // the status body holds its age in tenths of a second: only the history's must be the same bytes
    if (path.endsWith('/status')) continue
    check(real.body === ceiling.body, `GET ${path} and its ceiling answered other bodies`)
    const bad = path.replace('limit=100', 'limit=0x64')
    const [r400, c400] = [await get(bad), await get(`/__bench${bad}`)]
    check(r400.status === 400 && c400.status === 400 && r400.body === c400.body, `GET ${bad} answered ${r400.status}, its ceiling ${c400.status}`)
  }
}

/** The floor on the service's Node.js, answering each path with what the service has just answered for it (identity-coded). */
async function startFloor (base: string, paths: string[], env: Record<string, string>, options: SpawnOptions): Promise<{ child: Child, port: number }> {
  const answers: Record<string, CapturedAnswer> = {}
  const perConnection = new Set(['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding'])
  await mapLimit(paths, 8, async path => {
    const res = await fetch(base + path, { headers: { 'accept-encoding': 'identity' } })
    const body = Buffer.from(await res.arrayBuffer())
    check(res.status === 200 && res.headers.get('content-encoding') === null, `GET ${path} answered ${res.status} ${res.headers.get('content-encoding') ?? ''}`)
    const headers: Record<string, string> = {}
    res.headers.forEach((value, name) => { if (!perConnection.has(name)) headers[name] = value })
    answers[path] = { code: res.status, headers, body: body.toString('base64') }
  })
  const child = spawnNode('floor', join(here, 'floor.js'), [], childEnv(env), options)
  child.send({ type: 'answers', answers })
  return { child, port: (await child.message<{ port: number }>('ready', 30_000)).port }
}

/** Setup, not a measurement: the readings (with their claims and each device's status) into a new table through the repository. */
async function prefill (dynamo: Dynamo, tableName: string, readings: Reading[]): Promise<void> {
  await createTable(dynamo.client, tableName)
  const repository = new ReadingsRepository({ doc: dynamo.doc, table: tableName, writeConcurrency: 16 })
  await mapLimit(chunks(readings, 1000), 4, async chunk => { await repository.put(chunk) })
}

/** The api task's memory (MiB): `api_memory`'s default in deploy/variables.tf. */
async function apiTaskMemoryMib (): Promise<number> {
  const m = /variable\s+"api_memory"\s*\{[^}]*?default\s*=\s*(\d+)/.exec(await readFile(join(root, 'deploy', 'variables.tf'), 'utf8'))
  if (m === null) throw new Error('deploy/variables.tf: no default for api_memory')
  return Number(m[1])
}

/** GET /metrics once a second (a Prometheus scrape interval far shorter than the usual 15 s), until stopped. */
function scrapeEverySecond (base: string): { stop: () => void, scrapes: number, failed: number, ms: number[] } {
  const state = { scrapes: 0, failed: 0, ms: [] as number[], stop: () => { clearInterval(timer) } }
  const timer = setInterval(() => {
    const started = performance.now()
    fetch(`${base}/metrics`).then(async res => {
      await res.text()
      if (res.status !== 200) state.failed++
      else { state.scrapes++; state.ms.push(performance.now() - started) }
    }, () => { state.failed++ })
  }, 1000)
  return state
}

async function httpPhase (
  dynamo: Dynamo, dynalite: Child, tableName: string, devices: string[], node: ServiceNode
): Promise<{ http: Record<string, unknown>, memory: Record<string, unknown> }> {
  const count = await countReadings(dynamo, tableName, devices)
  check(count === settings.readings, `the HTTP table holds ${count} readings, expected ${settings.readings}`)
  // The server (and the floor) in a memory cgroup of the api task's size, when one can be made:
  // Node.js sizes V8's heap from the memory it can use.
  const taskMib = await apiTaskMemoryMib()
  const made = memoryCgroup(`sensors-bench-${runId}`, taskMib)
  const cgroup = 'wrap' in made ? made : undefined
  if (cgroup !== undefined) cgroupDirs.add(cgroup)
  log(cgroup !== undefined
    ? `http: server in a memory cgroup of ${taskMib} MiB (the api task's), ${cgroup.dir}`
    : `http: server on the host's memory: no cgroup of the api task's ${taskMib} MiB (${'reason' in made ? made.reason : ''})`)
  // The server and the floor with the image's runtime settings (V8 heap, malloc arenas: node.ts RUNTIME_ENV).
  const spawnOptions: SpawnOptions = { node: node.path, wrap: cgroup?.wrap }
  // ROLE=api: what the api task runs (deploy/ecs.tf), in a cgroup of its memory.
  const { child: server, port, constrainedMib } = await startServer('server', {
    ...node.env, ROLE: 'api', DYNAMODB_ENDPOINT: dynamo.endpoint, DYNAMODB_TABLE: tableName
  }, spawnOptions)
  let floor: { child: Child, port: number } | undefined
  try {
    if (cgroup !== undefined) check(constrainedMib === taskMib, `the server in the cgroup sees ${String(constrainedMib)} MiB, not ${taskMib}`)
    // Every route answers what the bench assumes, before any load.
    const device = devices[0]!
    const base = `http://127.0.0.1:${port}`
    const status = await fetch(`${base}/devices/${device}/status`).then(async r => await r.json() as { device?: string })
    check(status.device === device, `GET /devices/${device}/status answered ${JSON.stringify(status).slice(0, 300)}`)
    const zipped = await fetch(`${base}/devices/${device}?limit=100`, { headers: GZIP })
    const page = await zipped.json().catch(() => null) as unknown
    check(zipped.headers.get('content-encoding') === 'gzip' && Array.isArray(page) && page.length === 100, `GET /devices/${device}?limit=100 with ${JSON.stringify(GZIP)}`)
    // The ceilings' answers: the real routes' for the first device of each flavour (devices[0] included).
    const samples = new Map<string, string>()
    for (const d of devices) if (!samples.has(flavourOf(d))) samples.set(flavourOf(d), d)
    server.send({ type: 'ceiling', devices: [...samples.values()] })
    const ceiling = await server.message<{ error?: string }>('ceiling', 30_000)
    check(ceiling.error === undefined, `the ceilings' answers: ${ceiling.error ?? ''}`)
    await sameLifecycle(base, device)

    const statusPaths = devices.map(d => `/devices/${d}/status`)
    const historyPaths = devices.map(d => `/devices/${d}?limit=100`)
    floor = await startFloor(base, [...statusPaths, ...historyPaths], node.env, spawnOptions)
    const target = { server: { child: server, port }, floor }
    // Rounds of the seven loads, each real route just before its ceiling and its floor; every figure
    // is the median over the rounds (a ratio: of each round's own ratio), so one window in which the
    // shared machine stalls does not make the figure. The memory figure takes the first round's
    // real loads only: the ceilings and floors are the bench's, not the service.
    const loads = [
      { name: 'status', on: 'server', paths: statusPaths },
      { name: 'status ceiling', on: 'server', paths: statusPaths.map(p => `/__bench${p}`) },
      { name: 'status floor', on: 'floor', paths: statusPaths },
      // issue 19: the same polling load while Prometheus scrapes /metrics once a second
      { name: 'status scraped', on: 'server', paths: statusPaths },
      { name: 'history', on: 'server', paths: historyPaths },
      { name: 'history gzip', on: 'server', paths: historyPaths, headers: GZIP },
      { name: 'history ceiling', on: 'server', paths: historyPaths.map(p => `/__bench${p}`) },
      { name: 'history floor', on: 'floor', paths: historyPaths }
    ] as const
    type Name = typeof loads[number]['name']
    const runs = Object.fromEntries(loads.map(l => [l.name, [] as HttpRun[]])) as Record<Name, HttpRun[]>
    let rssMb = 0
    for (let n = 0; n < settings.rounds; n++) {
      if (settings.rounds > 1) log(`http: round ${n + 1} of ${settings.rounds}`)
      for (const l of loads) {
        const { child, port } = target[l.on]
        const scraper = l.name === 'status scraped' ? scrapeEverySecond(base) : undefined
        const run = await load(l.name, child, dynalite, port, l.paths, 'headers' in l ? l.headers : undefined, n === 0 ? settings.warmupS : LATER_WARMUP_S)
          .finally(() => scraper?.stop())
        if (scraper !== undefined) {
          check(scraper.failed === 0 && scraper.scrapes > 0, `GET /metrics under load: ${scraper.scrapes} scrapes, ${scraper.failed} failed`)
          log(`http: status scraped: ${scraper.scrapes} scrapes of /metrics, median ${round(median(scraper.ms), 2)} ms`)
        }
        if (n === 0 && l.on === 'server' && !l.name.includes('ceiling')) rssMb = Math.max(rssMb, run.server_rss_mb_max)
        runs[l.name].push(run)
      }
    }
    const rounds = runs.status.map((_, i) => {
      const rps = (name: Name): number => runs[name][i]!.rps
      const p99 = (name: Name): number => runs[name][i]!.latency_ms.p99
      return {
        ceiling_rps: rps('status ceiling'),
        ceiling_p99_ms: p99('status ceiling'),
        status_rps: rps('status'),
        status_p99_ms: p99('status'),
        status_vs_ceiling: rps('status') / rps('status ceiling'),
        status_vs_floor: rps('status') / rps('status floor'),
        status_scraped_rps: rps('status scraped'),
        status_scraped_vs_ceiling: rps('status scraped') / rps('status ceiling'),
        history_ceiling_rps: rps('history ceiling'),
        history_ceiling_p99_ms: p99('history ceiling'),
        history_rps: rps('history'),
        history_p99_ms: p99('history'),
        history_vs_ceiling: rps('history') / rps('history ceiling'),
        history_vs_floor: rps('history') / rps('history floor'),
        history_gzip_rps: rps('history gzip'),
        history_gzip_p99_ms: p99('history gzip'),
        history_gzip_vs_ceiling: rps('history gzip') / rps('history ceiling'),
        status_floor_rps: rps('status floor'),
        status_floor_p99_ms: p99('status floor'),
        history_floor_rps: rps('history floor'),
        history_floor_p99_ms: p99('history floor')
      }
    })
    const digits = (key: string): number => key.includes('_vs_') ? 3 : key.endsWith('_ms') ? 3 : 0
    const medians = Object.fromEntries(Object.keys(rounds[0]!).map(key => [key, round(median(rounds.map(r => r[key as keyof typeof r])), digits(key))]))
    return {
      // `task_memory_mib`: the cgroup's limit the server ran under; null: the host's memory
      memory: { rss_mb_under_load: rssMb, task_memory_mib: cgroup !== undefined ? taskMib : null, ...('reason' in made ? { host_memory_reason: made.reason } : {}) },
      http: {
        ...medians,
        node: node.version,
        rounds: rounds.map(r => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v, digits(k))]))),
        runs: Object.fromEntries(Object.entries(runs).map(([name, list]) => [name.replace(' ', '_'), list]))
      }
    }
  } finally {
    await floor?.child.stop()
    await server.stop()
    await dropTable(dynamo, tableName)
    cgroup?.remove()
    if (cgroup !== undefined) cgroupDirs.delete(cgroup)
  }
}

// ---------------------------------------------------------------------------- ingest

/** BatchWriteItem of these items (25 at most), until DynamoDB has processed all of them. */
async function writeBatch (dynamo: Dynamo, tableName: string, items: Array<Record<string, unknown>>): Promise<void> {
  let requests = items.map(Item => ({ PutRequest: { Item } }))
  for (let attempt = 1; requests.length > 0; attempt++) {
    if (attempt > 10) throw new Error('ingest ceiling: BatchWriteItem kept leaving items unprocessed')
    const out = await dynamo.doc.send(new BatchWriteCommand({ RequestItems: { [tableName]: requests } }))
    requests = (out.UnprocessedItems?.[tableName] ?? []) as typeof requests
  }
}

/**
 * The table work the service must do to store these readings, done straight from the runner with
 * the app's own client settings and nothing else: per 100 readings (as put() asks) the consistent
 * BatchGetItem of their uuid claims (none found), then BatchWriteItem of each reading's two items,
 * the reading and its claim (itemsOf: what put() writes), 25 a call; `concurrency` calls in flight.
 * Then each device's status once, through put() of its newest reading: that also proves put()
 * takes these items for its own (every reading a duplicate, none stored again). Readings a second.
 */
async function ceilingRun (dynamo: Dynamo, tableName: string, readings: Reading[], concurrency: number): Promise<number> {
  const units = chunks(readings, 100).map(unit => ({
    keys: unit.map(r => ({ device: { S: r.device }, sk: { S: claimSk(r.uuid) } })),
    writes: chunks(unit.flatMap(r => itemsOf(r, newClaim(r))), 25)
  }))
  const newest = [...new Map(readings.map(r => [r.device, r])).values()]
  const repository = new ReadingsRepository({ doc: dynamo.doc, table: tableName })
  const started = performance.now()
  await mapLimit(units, concurrency, async ({ keys, writes }) => {
    const out = await dynamo.client.send(new BatchGetItemCommand({ RequestItems: { [tableName]: { Keys: keys, ...CLAIM_PROJECTION } } }))
    if ((out.Responses?.[tableName]?.length ?? 0) > 0 || (out.UnprocessedKeys?.[tableName]?.Keys?.length ?? 0) > 0) throw new Error('ingest ceiling: a claim in a new table, or unprocessed keys')
    for (const items of writes) await writeBatch(dynamo, tableName, items)
  })
  const put = await repository.put(newest)
  const seconds = (performance.now() - started) / 1000
  if (put.duplicates !== newest.length) throw new Error(`ingest ceiling: put() took ${put.stored.length} of ${newest.length} readings the ceiling wrote for new ones: itemsOf() is not what put() writes`)
  return readings.length / seconds
}

/** The ingest ceiling: the concurrency tuned on a sample (a fresh table each), then every reading at the best one. */
async function ingestCeiling (dynamo: Dynamo, dynalite: Child, readings: Reading[], devices: string[], keep?: string): Promise<Record<string, unknown>> {
  const sample = readings.slice(0, Math.min(settings.ceilingSample, readings.length))
  const trials: Array<{ concurrency: number, msgs_per_s: number }> = []
  for (const concurrency of CEILING_CONCURRENCY) {
    const tableName = `bench_ceiling_${runId}_${concurrency}`
    await createTable(dynamo.client, tableName)
    trials.push({ concurrency, msgs_per_s: Math.round(await ceilingRun(dynamo, tableName, sample, concurrency)) })
    log(`ingest ceiling: ${sample.length} readings, concurrency ${concurrency}: ${trials.at(-1)!.msgs_per_s} msgs/s`)
    await dropTable(dynamo, tableName)
  }
  const best = trials.reduce((a, b) => b.msgs_per_s > a.msgs_per_s ? b : a)
  const tableName = keep ?? `bench_ceiling_${runId}_full`
  await createTable(dynamo.client, tableName)
  const before = { dynalite: cpuSeconds(dynalite.pid), runner: process.cpuUsage() }
  const rate = await ceilingRun(dynamo, tableName, readings, best.concurrency)
  const runner = process.cpuUsage(before.runner)
  const perMsg = {
    ...msPer(readings.length, { dynalite: before.dynalite }, { dynalite: cpuSeconds(dynalite.pid) }),
    runner: round((runner.user + runner.system) / 1000 / readings.length, 3)
  }
  const count = await countReadings(dynamo, tableName, devices)
  if (count !== readings.length) throw new Error(`ingest ceiling: ${count} readings in the table, expected ${readings.length}`)
  if (keep === undefined) await dropTable(dynamo, tableName)
  log(`ingest ceiling: all ${readings.length} readings at concurrency ${best.concurrency}: ${Math.round(rate)} msgs/s, cpu ms/msg ${JSON.stringify(perMsg)}`)
  return {
    ceiling_msgs_per_s: Math.round(rate),
    ceiling_concurrency: best.concurrency,
    ceiling_trials: trials,
    ceiling_sample: sample.length,
    ceiling_cpu_ms_per_msg: perMsg
  }
}

async function ingestPhase (
  dynamo: Dynamo, dynalite: Child, data: Fleet, readings: Reading[], broker: Broker, keepCeilingTable?: string
): Promise<Record<string, unknown>> {
  const prefix = `bench-${runId}`
  const topics = [...new Set(data.devices.map(d => topicOf(prefix, d)))]
  await createTopics(broker.brokers, topics, TOPIC_PARTITIONS)
  const produced = await preload(broker.brokers, prefix, data.raws)
  log(`ingest: preloaded ${data.raws.length} messages into ${topics.length} topics x ${TOPIC_PARTITIONS} partitions in ${round(produced.ms / 1000, 1)} s`)

  // The ceiling runs while the broker idles, right before the Kafka run (on a shared machine the noise changes by the minute).
  const ceiling = await ingestCeiling(dynamo, dynalite, readings, data.devices, keepCeilingTable)

  const tableName = `bench_kafka_${runId}`
  await createTable(dynamo.client, tableName)
  const target = data.raws.length
  const { child: server, readyAt } = await startServer('ingest server', {
    DYNAMODB_ENDPOINT: dynamo.endpoint,
    DYNAMODB_TABLE: tableName,
    KAFKA_BROKERS: broker.brokers,
    KAFKA_TOPICS: topics.join(','),
    KAFKA_GROUP_ID: prefix,
    KAFKA_DLQ_TOPIC: `${prefix}.dlq`
  })
  try {
    const rss = new RssSampler(server.pid)
    const before = { server: cpuSeconds(server.pid), dynalite: cpuSeconds(dynalite.pid) }
    server.send({ type: 'watch', target })
    interface Counters { stored: number, deadLettered: number, batches: number, retries: number, at: number }
    const done = server.message<Counters>('stored', 30 * 60_000)
    // progress; a stall is a broken harness, not a slow figure
    let last = -1
    let lastChange = Date.now()
    let firstStoredAt: number | undefined
    let end: Counters | undefined
    for (;;) {
      end = await Promise.race([done, sleep(1000, undefined)])
      if (end !== undefined) break
      server.send({ type: 'counters' })
      const c = await server.message<Counters>('counters', 10_000)
      if (c.stored > 0) firstStoredAt ??= c.at
      if (c.stored !== last) [last, lastChange] = [c.stored, Date.now()]
      log(`ingest: ${c.stored} / ${target} stored`)
      if (Date.now() - lastChange > 60_000) throw new Error(`ingest stalled at ${c.stored} of ${target} readings for 60 s`)
    }
    const cpu = msPer(target, before, { server: cpuSeconds(server.pid), dynalite: cpuSeconds(dynalite.pid) })
    const elapsedMs = end.at - readyAt
    if (end.deadLettered > 0) throw new Error(`ingest: ${end.deadLettered} readings were dead-lettered, expected none`)
    const count = await countReadings(dynamo, tableName, data.devices)
    if (count !== target || end.stored !== target) throw new Error(`ingest: the table holds ${count} readings and the consumer counted ${end.stored}; ${target} were produced`)
    const rate = target / (elapsedMs / 1000)
    log(`ingest: ${target} readings from Kafka into the table in ${round(elapsedMs / 1000, 1)} s: ${Math.round(rate)} msgs/s, cpu ms/msg ${JSON.stringify(cpu)}`)
    return {
      ...ceiling,
      kafka_to_table_msgs_per_s: Math.round(rate),
      vs_ceiling: round(rate / (ceiling.ceiling_msgs_per_s as number), 3),
      node: process.version,
      kafka_messages: target,
      kafka_elapsed_ms: Math.round(elapsedMs),
      first_progress_ms: firstStoredAt !== undefined ? firstStoredAt - readyAt : null,
      table_count: count,
      consumer: { stored: end.stored, dead_lettered: end.deadLettered, batches: end.batches, retries: end.retries },
      topics: topics.length,
      partitions_per_topic: TOPIC_PARTITIONS,
      preload_ms: Math.round(produced.ms),
      server_rss_mb: rss.stop(),
      cpu_ms_per_msg: cpu
    }
  } finally {
    await server.stop()
    await dropTable(dynamo, tableName)
  }
}

// ---------------------------------------------------------------------------- main

function git (...argv: string[]): string {
  try {
    return execFileSync('git', argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return 'unknown'
  }
}

let broker: Broker | undefined
/** cgroups of the run, removed at the end whatever happens (once their processes are gone) */
const cgroupDirs = new Set<MemoryCgroup>()

async function main (): Promise<Record<string, unknown>> {
  const startedAt = performance.now()
  const context: Record<string, unknown> = {
    mode: quick ? 'quick' : 'full',
    node: process.version,
    cpu_model: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    loadavg_at_start: loadavg().map(x => round(x, 2)),
    load_tool: LOAD_TOOL,
    connections: CONNECTIONS,
    pipelining: 1,
    duration_s: settings.durationS,
    warmup_s: settings.warmupS,
    http_rounds: settings.rounds,
    devices: settings.devices,
    readings: settings.readings,
    kafka_messages: settings.kafkaMessages,
    kafka_devices: settings.devices,
    parts: [...only],
    log_level: 'warn',
    dynamodb: 'dynalite (in memory, own process)',
    git_commit: git('rev-parse', 'HEAD'),
    git_dirty: git('status', '--porcelain', '--untracked-files=no') !== '',
    date: new Date().toISOString()
  }
  log(`${String(context.mode)} run on ${String(context.cores)} cores (${String(context.cpu_model)}), node ${process.version}, load average ${loadavg().map(x => round(x, 2)).join(' ')}`)

  const serviceNode = only.has('startup') || only.has('http') ? resolveServiceNode(nodeChoice, join(root, 'Dockerfile'), log) : undefined
  if (serviceNode !== undefined) {
    log(`service on Node.js ${serviceNode.version}: ${serviceNode.source}`)
    const { path: _, ...named } = serviceNode // no machine path in a report that may be pasted
    context.service_node = named
  }
  const report: Record<string, unknown> = {}

  // 1. start-up, first, while nothing else runs
  if (only.has('startup')) {
    const compileCache = await mkdtemp(join(tmpdir(), 'sensors-bench-compile-cache-'))
    tempDirs.add(compileCache)
    const runs: number[] = []
    for (let i = 0; i < settings.startupRuns; i++) {
      runs.push(Math.round(await startupOnce(serviceNode!, compileCache)))
      log(`startup: ready in ${runs.at(-1)!} ms`)
    }
    report.startup = { ready_ms: median(runs), runs_ms: runs, node: serviceNode!.version, first_run_compiles_everything: true }
  }

  const dynalite = spawnNode('dynalite', join(here, 'dynalite.js'), [], childEnv({}))
  const { endpoint } = await dynalite.message<{ endpoint: string }>('ready', 30_000)
  // The runner's own client: setup and the ingest ceiling, whose calls at concurrency 32 can take
  // dynalite over the service's 5 s per request; a ceiling measures throughput, so it waits them out.
  const dynamo = await createDynamo({ mode: 'endpoint', endpoint, dataDir: '', requestTimeoutMs: 60_000 })
  try {
    const toReading = await validator()
    // In full mode the ingest data is the HTTP data too: the ceiling's table, with its readings,
    // claims and statuses, becomes the HTTP part's table (that saves a prefill of ~45 s).
    const httpTable = `bench_http_${runId}`
    const shared = only.has('ingest') && only.has('http') && settings.readings === settings.kafkaMessages
    let devices: string[] = []
    if (only.has('ingest')) {
      const data = fleet(settings.kafkaMessages, settings.devices)
      broker = await startKafka()
      log(`kafka: broker ${broker.brokers} up in ${round(broker.startupMs / 1000, 1)} s`)
      report.ingest = await ingestPhase(dynamo, dynalite, data, data.raws.map(toReading), broker, shared ? httpTable : undefined)
      await broker.stop()
      devices = data.devices
    }
    if (only.has('http')) {
      if (!shared) {
        const data = fleet(settings.readings, settings.devices, Date.now() - 1000, 7)
        await prefill(dynamo, httpTable, data.raws.map(toReading))
        devices = data.devices
      }
      // From here the runner holds device names only: with the bench data alive, each of its full
      // GCs marked ~200 MB on background threads for seconds, inside measured windows.
      Object.assign(report, await httpPhase(dynamo, dynalite, httpTable, devices, serviceNode!))
    }
    // issue 16: a month of one device's rollups, GET /stats at 1h (720 buckets)
    if (only.has('stats')) {
      const { month_p50_ms: p50, buckets, p99_ms: p99, readings } = await statsBench({ endpoint, ...(quick ? { days: 2, requests: 50 } : {}) })
      report.stats = { month_p50_ms: p50, p99_ms: p99, buckets, readings }
      log(`stats: ${buckets} buckets of ${readings} readings, p50 ${p50} ms`)
    }
    // issue 16: a page of 1,000 of a 10,000-device fleet; 1,000 subscribers of /fleet/events with
    // readings published to Kafka and stored by a ROLE=ingest process (each part has its own table)
    if (only.has('fleet')) report.fleet = await benchFleet(quick ? { devices: 1000, requests: 50 } : {})
    if (only.has('sse')) report.sse = await benchSse(quick ? { subscribers: 50, rounds: 4 } : {})
    const end = { loadavg_at_end: loadavg().map(x => round(x, 2)), bench_seconds: round((performance.now() - startedAt) / 1000, 1) }
    return { ...report, context: { ...context, ...end } }
  } finally {
    await dynamo.close()
    await dynalite.stop()
  }
}

async function cleanup (): Promise<void> {
  await stopAll()
  for (const c of cgroupDirs) c.remove()
  await broker?.stop().catch(err => { log(`could not stop the broker: ${(err as Error).message}`) })
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping`)
    cleanup().finally(() => { process.exit(130) }).catch(() => {})
  })
}
process.once('exit', () => {
  killAllNow()
  for (const c of cgroupDirs) c.remove()
})

try {
  const report = await main()
  const rows = verdicts(report)
  if (asJson) process.stdout.write(JSON.stringify({ ...report, verdicts: rows }) + '\n')
  else process.stdout.write(`\n${table(rows)}\n${quick ? '\nquick mode: small data and 2 s loads; the verdicts mean nothing here.\n' : ''}`)
  process.exitCode = 0
} catch (err) {
  log(`FAILED: ${(err as Error).stack ?? String(err)}`)
  await cleanup()
  process.exitCode = 1
}
// Everything is stopped by now; a client library's stray handle must not keep CI waiting.
setTimeout(() => { process.exit() }, 5000).unref()

// `npm run bench [-- --json] [-- --quick]`: the service's performance figures, each against a
// ceiling measured in the same run on the same machine (see BENCHMARKS.md for the method).
//
//   processes: this runner (setup, sampling), dynalite (tools/bench/dynalite.ts, in memory), the server
//   under test (tools/bench/server.ts: the real app + ceiling routes), the load generator
//   (tools/bench/load.ts: wrk, or autocannon), and for ingest a real Kafka 4 broker (tools/kafka-broker.mjs).
//
// --json prints one JSON object on stdout (progress goes to stderr). --quick is the CI smoke run:
// small data and 2 s loads; it proves the harness works end to end. Both exit 0 whatever the
// figures; non-zero only when the harness breaks (a server that does not start, a count mismatch).

import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { DeleteTableCommand } from '@aws-sdk/client-dynamodb'
import { BatchWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'
import { createDynamo, type Dynamo } from '../../storage/client.js'
import { createTable, deviceReadingPages } from '../../storage/table.js'
import { ReadingsRepository } from '../../storage/readings-repository.js'
import type { Reading } from '../../schemas/readings.js'
import { ConfigSchema } from '../../config.js'
import { fleet, itemOf, validator, type Fleet } from './data.js'
import { createTopics, preload, startKafka, topicOf, type Broker } from './kafka.js'
import type { LoadResult, LoadSpec, LoadTool } from './load.js'
import { CpuMeter, RssSampler, killAllNow, log, otherProcesses, removeTempDirs, spawnNode, stopAll, tempDirs, type Child, type SpawnOptions } from './procs.js'
import { memoryCgroup, type MemoryCgroup } from './cgroup.js'
import { table, verdicts } from './report.js'
import { fullGc } from './gc.js'
import { resolveServiceNode, type ServiceNode } from './node.js'
import type { CapturedAnswer } from './floor.js'

const USAGE = `usage: npm run bench -- [--json] [--quick] [--only=startup,ingest,http] [--set KEY=VALUE ...] [--node=image|this|PATH] [--load-tool=wrk|autocannon]
  --json     one JSON object on stdout (progress on stderr)
  --quick    CI smoke run: small data, 2 s loads (figures printed, nothing judged)
  --only     run only these parts (default: all)
  --set      an environment variable for the app's processes (repeatable), to measure a setting:
             e.g. --set KAFKA_BATCH_SIZE=2000 or --set NODE_OPTIONS=--max-old-space-size=96
  --node     the Node.js of the service in the start-up and HTTP parts: image (default: the
             Dockerfile's major, fetched once from the npm registry into ~/.cache/sensors-api),
             this (the one running the bench) or a node binary's path. The ingest part's server
             runs on this one: node-rdkafka is compiled for it
  --load-tool  the HTTP load generator (default: wrk when it is on the PATH, else autocannon)`

const args = process.argv.slice(2)
const asJson = args.includes('--json')
const quick = args.includes('--quick')
const PARTS = ['startup', 'ingest', 'http'] as const
const only = new Set<string>(PARTS)
/** --set KEY=VALUE: environment of the servers under test (the bench server and server.js) */
const appEnv: Record<string, string> = {}
let nodeChoice = 'image'
let loadTool: LoadTool | undefined
for (let i = 0; i < args.length; i++) {
  const arg = args[i]!
  if (arg === '--json' || arg === '--quick') continue
  if (arg === '--help' || arg === '-h') {
    process.stdout.write(USAGE + '\n')
    process.exit(0)
  }
  if (arg.startsWith('--only=')) {
    only.clear()
    for (const part of arg.slice(7).split(',')) {
      if (!(PARTS as readonly string[]).includes(part)) throw new Error(`--only: unknown part "${part}"\n${USAGE}`)
      only.add(part)
    }
    continue
  }
  if (arg.startsWith('--node=')) {
    nodeChoice = arg.slice('--node='.length)
    if (nodeChoice === '') throw new Error(`--node: image, this or a path\n${USAGE}`)
    continue
  }
  if (arg.startsWith('--load-tool=')) {
    const tool = arg.slice('--load-tool='.length)
    if (tool !== 'wrk' && tool !== 'autocannon') throw new Error(`--load-tool: wrk or autocannon, not "${tool}"\n${USAGE}`)
    loadTool = tool
    continue
  }
  if (arg === '--set' || arg.startsWith('--set=')) {
    const kv = arg === '--set' ? args[++i] ?? '' : arg.slice(6)
    const eq = kv.indexOf('=')
    if (eq <= 0) throw new Error(`--set needs KEY=VALUE\n${USAGE}`)
    appEnv[kv.slice(0, eq)] = kv.slice(eq + 1)
    continue
  }
  throw new Error(`unknown argument "${arg}"\n${USAGE}`)
}

const settings = quick
  ? { durationS: 2, warmupS: 1, rounds: 1, readings: 2_000, devices: 20, kafkaMessages: 5_000, kafkaDevices: 20, startupRuns: 1, ceilingSample: 2_000 }
  : { durationS: 6, warmupS: 3, rounds: 3, readings: 100_000, devices: 100, kafkaMessages: 100_000, kafkaDevices: 100, startupRuns: 3, ceilingSample: 10_000 }
/** warm-up of the loads after the first round (the server is warm by then; wrk's connections are not) */
const LATER_WARMUP_S = 1
const CONNECTIONS = 64
/** the history load that asks for compression (the other asks for nothing, as wrk and autocannon do) */
const GZIP = { 'accept-encoding': 'gzip' }
const wrkInstalled = spawnSync('wrk', ['-v'], { stdio: 'ignore' }).error === undefined
if (loadTool === 'wrk' && !wrkInstalled) throw new Error('--load-tool=wrk: wrk is not on the PATH (Debian: apt-get install wrk)')
const LOAD_TOOL: LoadTool = loadTool ?? (wrkInstalled ? 'wrk' : 'autocannon')
const CEILING_CONCURRENCY = [4, 8, 16, 32]
const TOPIC_PARTITIONS = 3

const distBench = fileURLToPath(new URL('.', import.meta.url))
const serverJs = fileURLToPath(new URL('../../server.js', import.meta.url))
const dockerfile = fileURLToPath(new URL('../../../Dockerfile', import.meta.url))
const runId = randomUUID().slice(0, 8)

// The environment of every child: the app's defaults, never a setting inherited from this shell
// (an outside DynamoDB, AWS region, Kafka broker, cache TTL...); only what the bench and --set say.
function childEnv (extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const key of Object.keys(ConfigSchema.properties)) delete env[key]
  return { ...env, LOG_LEVEL: 'warn', COLLECTOR: 'off', HOST: '127.0.0.1', PORT: '0', ...extra }
}

// ---------------------------------------------------------------------------- helpers

async function mapLimit<T> (items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T)
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker))
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

/** Readings of these devices in the table (status items excluded), by Query COUNT. */
async function countReadings (doc: DynamoDBDocumentClient, table: string, devices: string[]): Promise<number> {
  let total = 0
  await mapLimit(devices, 8, async device => {
    for await (const page of deviceReadingPages(doc, table, device, { count: true })) total += page.count
  })
  return total
}

async function dropTable (dynamo: Dynamo, table: string): Promise<void> {
  await dynamo.client.send(new DeleteTableCommand({ TableName: table })).catch(() => {})
}

async function startServer (name: string, env: Record<string, string>, options: SpawnOptions = {}): Promise<{ child: Child, port: number, readyAt: number, constrainedMib: number | null }> {
  const child = spawnNode(name, join(distBench, 'server.js'), [], childEnv({ ...appEnv, ...env }), options)
  const ready = await child.message<{ port: number, readyAt: number, constrainedMib: number | null }>('ready', 60_000)
  return { child, port: ready.port, readyAt: ready.readyAt, constrainedMib: ready.constrainedMib }
}

async function getJson (url: string): Promise<{ status: number, body: unknown }> {
  const res = await fetch(url)
  return { status: res.status, body: await res.json().catch(() => null) }
}

// ---------------------------------------------------------------------------- startup

/**
 * Node >= 22.8 keeps compiled code in NODE_COMPILE_CACHE (server.ts turns it on): a directory of
 * this run, so the first start-up run compiles everything (a new container's first start) and the
 * others start as a restarted one does. Node 20 has no such cache: every run compiles.
 */
const compileCache = await mkdtemp(join(tmpdir(), 'sensors-bench-compile-cache-'))
tempDirs.add(compileCache)

/** `node dist/server.js` with the embedded DynamoDB in a fresh DATA_DIR: spawn to the first /health 200. */
async function startupOnce (node: string): Promise<number> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sensors-bench-startup-'))
  tempDirs.add(dataDir)
  const port = await freePort()
  const env = childEnv({ ...appEnv, DATA_DIR: dataDir, PORT: String(port), NODE_COMPILE_CACHE: compileCache })
  const started = performance.now()
  const proc = spawn(node, [serverJs], { env, stdio: ['ignore', 'ignore', 'pipe'] })
  otherProcesses.add(proc)
  let err = ''
  proc.stderr.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-5000) })
  try {
    const deadline = started + 30_000
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`server.js exited with ${proc.exitCode} during start-up: ${err}`)
      if (performance.now() > deadline) throw new Error(`server.js did not answer /health 200 within 30 s: ${err}`)
      const ok = await fetch(`http://127.0.0.1:${port}/health`).then(r => r.status === 200, () => false)
      if (ok) return performance.now() - started
      await sleep(5)
    }
  } finally {
    proc.kill('SIGTERM')
    if (proc.exitCode === null) {
      await Promise.race([new Promise(resolve => proc.once('exit', resolve)), sleep(10_000, undefined, { ref: false })])
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
    }
    otherProcesses.delete(proc)
    await rm(dataDir, { recursive: true, force: true })
    tempDirs.delete(dataDir)
  }
}

async function freePort (): Promise<number> {
  const { createServer } = await import('node:net')
  const srv = createServer()
  await new Promise<void>(resolve => srv.listen(0, '127.0.0.1', resolve))
  const { port } = srv.address() as { port: number }
  await new Promise<void>(resolve => srv.close(() => { resolve() }))
  return port
}

// ---------------------------------------------------------------------------- HTTP

interface HttpRun extends LoadResult {
  /** CPU use during the measured window, % of one core; `others`: processes outside the bench */
  cpu_percent: Record<string, number>
  /** CPU cost per answered request, which noise from other processes hardly changes */
  cpu_ms_per_request: Record<string, number>
  /** how late the server's event loop ran a 10 ms timer during the window: its stalls */
  server_event_loop_delay_ms: EventLoopDelay
  server_rss_mb_max: number
}

/** and the major GCs in the window (each a stall of its own), with the longest pause */
interface EventLoopDelay { p50: number, p99: number, max: number, major_gcs: number, major_gc_max_ms: number }

/** CPU milliseconds per unit of work, from CPU % of one core and units per second */
function perUnit (cpu: Record<string, number>, rate: number, names: string[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const name of names) if (cpu[name] !== undefined && rate > 0) out[name] = round(cpu[name] * 10 / rate, 3)
  return out
}

/**
 * Waits (up to 10 s) until this runner is idle (under 3 % of a core over 250 ms, by the same
 * CpuMeter as the windows): after the full GC before a load, V8 may still be marking and sweeping
 * on background threads of this process, and that CPU competed with the server and the load.
 */
async function settle (): Promise<{ waitedMs: number, lastPercent: number }> {
  const started = performance.now()
  for (;;) {
    const meter = new CpuMeter({})
    await sleep(250)
    const percent = meter.read().runner
    if (percent === undefined) return { waitedMs: 0, lastPercent: 0 }
    const waited = performance.now() - started
    if (percent < 3 || waited > 10_000) return { waitedMs: waited < 300 ? 0 : Math.round(waited), lastPercent: percent }
  }
}

async function load (name: string, server: Child, dynalite: Child, port: number, paths: string[], headers: Record<string, string> | undefined, warmupS: number): Promise<HttpRun> {
  const pids = { server: server.pid, dynalite: dynalite.pid }
  const spec: LoadSpec = { tool: LOAD_TOOL, url: `http://127.0.0.1:${port}`, paths, headers, connections: CONNECTIONS, durationS: settings.durationS, warmupS }
  log(`http: ${name}: ${LOAD_TOOL}, ${CONNECTIONS} connections, ${warmupS} s warm-up + ${settings.durationS} s, ${paths.length} paths`)
  // Every process a full GC first: the runner holds the bench's data (100,000 readings), and the
  // history ceiling leaves a heap of garbage in the server; collected inside the next window,
  // they took 10-20 % of a core (the runner) and stalled the server's loop for up to 20 ms.
  fullGc()
  server.send({ type: 'gc' })
  dynalite.send({ type: 'gc' })
  await Promise.all([server.message('gc', 30_000), dynalite.message('gc', 30_000)])
  const settled = await settle()
  if (settled.waitedMs > 0) log(`http: ${name}: waited ${settled.waitedMs} ms for the runner's own background work (${settled.lastPercent} % of a core at the end)`)
  const child = spawnNode(`load ${name}`, join(distBench, 'load.js'), [JSON.stringify(spec)], process.env)
  const timeout = (warmupS + settings.durationS) * 1000 + 60_000
  await child.message('measuring', timeout)
  // wrk runs as a child of the load process: its CPU is counted once it has ended
  const meter = new CpuMeter({ ...pids, load: child.pid }, new Set(['load']))
  const rss = new RssSampler(pids.server)
  server.send({ type: 'loop-reset' })
  const { result } = await child.message<{ result: LoadResult }>('result', timeout)
  const cpu = meter.read()
  const rssMb = round(rss.stop() / 2 ** 20, 1)
  server.send({ type: 'loop' })
  const { type: _, ...loop } = await server.message<EventLoopDelay & { type: string }>('loop', 10_000)
  await child.stop()
  const perRequest = perUnit(cpu, result.rps, ['server', 'dynalite', 'load'])
  log(`http: ${name}: ${result.rps} req/s, p99 ${result.latency_ms.p99} ms, cpu % ${JSON.stringify(cpu)}, cpu ms/request ${JSON.stringify(perRequest)}, ` +
    `event loop delay ms ${JSON.stringify(loop)}, rss ${rssMb} MB` +
    `${result.non2xx + result.errors > 0 ? `, ${result.non2xx} non-2xx, ${result.errors} errors` : ''}`)
  return { ...result, cpu_percent: cpu, cpu_ms_per_request: perRequest, server_event_loop_delay_ms: loop, server_rss_mb_max: rssMb }
}

/**
 * Setup, not a measurement: the readings into the table through the repository (which also
 * writes each device's status). `written`: the table already holds the readings (the ingest
 * ceiling wrote exactly the items put() writes), so only the statuses are left to write.
 */
async function prefill (dynamo: Dynamo, tableName: string, data: Fleet, readings: Reading[], written: boolean): Promise<void> {
  const started = performance.now()
  const repository = new ReadingsRepository({ doc: dynamo.doc, table: tableName, writeConcurrency: 16 })
  if (written) {
    const newest = new Map<string, Reading>()
    for (const r of readings) newest.set(r.device, r)
    await repository.put([...newest.values()])
  } else {
    await createTable(dynamo.client, tableName)
    const chunks: Reading[][] = []
    for (let i = 0; i < readings.length; i += 1000) chunks.push(readings.slice(i, i + 1000))
    await mapLimit(chunks, 4, async chunk => { await repository.put(chunk) })
  }
  const count = await countReadings(dynamo.doc, tableName, data.devices)
  if (count !== readings.length) throw new Error(`prefill: ${count} readings in the table, expected ${readings.length}`)
  const statuses = await repository.getStatuses(data.devices)
  if (statuses.size !== data.devices.length) throw new Error('prefill: a device has no status')
  log(`http: table holds ${count} readings over ${data.devices.length} devices (prefill ${round((performance.now() - started) / 1000, 1)} s)`)
}

/**
 * How long this VM takes a running process off its core: a busy loop that only reads the clock,
 * for `ms`, while nothing else of the bench works. Every gap between two readings longer than
 * 1 ms is time the process was not running; a p99 of a few milliseconds cannot be steadier than this.
 */
function schedulerPauses (ms: number): { longest_ms: number[], over_1ms_per_s: number } {
  const gaps: number[] = []
  const end = performance.now() + ms
  let last = performance.now()
  while (last < end) {
    const now = performance.now()
    if (now - last > 1) gaps.push(now - last)
    last = now
  }
  gaps.sort((a, b) => b - a)
  return { longest_ms: gaps.slice(0, 5).map(g => round(g, 1)), over_1ms_per_s: round(gaps.length / (ms / 1000), 1) }
}

async function httpPhase (dynamo: Dynamo, dynalite: Child, tableName: string, devices: string[], node: ServiceNode): Promise<{ http: Record<string, unknown>, memory: Record<string, unknown> }> {
  const pauses = schedulerPauses(2000)
  log(`http: the machine paused a busy process ${pauses.over_1ms_per_s} times a second for over 1 ms; longest ${pauses.longest_ms.join(', ')} ms`)
  // The server (and the floor) in a memory cgroup of the api task's size, when one can be made.
  const taskMib = apiTaskMemoryMib()
  const made = memoryCgroup(`sensors-bench-${runId}`, taskMib)
  const inCgroup = 'wrap' in made ? made : undefined
  const hostReason = 'reason' in made ? made.reason : undefined
  if (inCgroup !== undefined) cgroupDirs.add(inCgroup)
  log(inCgroup !== undefined
    ? `http: server in a memory cgroup of ${taskMib} MiB (the api task's), ${inCgroup.dir}`
    : `http: server on the host's memory: no cgroup of the api task's ${taskMib} MiB (${hostReason ?? ''})`)
  const spawnOptions: SpawnOptions = { node: node.path, wrap: inCgroup?.wrap }
  const { child: server, port, constrainedMib } = await startServer('server', { DYNAMODB_ENDPOINT: dynamo.endpoint, DYNAMODB_TABLE: tableName }, spawnOptions)
  if (inCgroup !== undefined && constrainedMib !== taskMib) throw new Error(`the server in the cgroup sees ${String(constrainedMib)} MiB, not ${taskMib}`)
  let floor: { child: Child, port: number } | undefined
  try {
    // Sanity: every route answers what the bench assumes, before any load.
    const device = devices[0]!
    const base = `http://127.0.0.1:${port}`
    const checks: Array<[string, (body: unknown) => boolean]> = [
      [`/devices/${device}/status`, b => (b as { device?: string }).device === device],
      [`/__bench/devices/${device}/status`, b => (b as { device?: string }).device === device],
      [`/devices/${device}?limit=100`, b => Array.isArray(b) && b.length === 100],
      [`/__bench/devices/${device}?limit=100`, b => Array.isArray(b) && b.length === 100]
    ]
    for (const [path, ok] of checks) {
      const { status, body } = await getJson(base + path)
      if (status !== 200 || !ok(body)) throw new Error(`sanity check failed: GET ${path} answered ${status} ${JSON.stringify(body).slice(0, 300)}`)
    }
    const zipped = await fetch(`${base}/devices/${device}?limit=100`, { headers: GZIP })
    const unzipped = await zipped.json().catch(() => null) as unknown
    if (zipped.headers.get('content-encoding') !== 'gzip' || !Array.isArray(unzipped) || unzipped.length !== 100) {
      throw new Error(`sanity check failed: the history with ${JSON.stringify(GZIP)} came back ${zipped.headers.get('content-encoding') ?? 'identity'}-coded`)
    }

    const statusPaths = devices.map(d => `/devices/${d}/status`)
    const historyPaths = devices.map(d => `/devices/${d}?limit=100`)
    floor = await startFloor(base, [...statusPaths, ...historyPaths], spawnOptions)
    // Rounds of the seven loads, each real route just before its ceiling, each ceiling before its
    // floor (another process: the server idles then); every figure is the
    // median over the rounds (a ratio: of each round's ratio), so one window in which the shared
    // machine stalls does not make the figure. The memory figure comes from the first round's real
    // loads only: the history ceiling serialises 41 KB per request, which grows the heap (V8 keeps
    // it for a while); that is the bench's own route, not the service.
    const loads = [
      { name: 'status', paths: statusPaths, real: true },
      { name: 'status ceiling', paths: statusPaths.map(p => `/__bench${p}`), real: false },
      { name: 'status floor', paths: statusPaths, real: false, floor: true },
      { name: 'history', paths: historyPaths, real: true },
      // as browsers, fetch, Python requests and Go's client ask by default
      { name: 'history gzip', paths: historyPaths, headers: GZIP, real: true },
      { name: 'history ceiling', paths: historyPaths.map(p => `/__bench${p}`), real: false },
      { name: 'history floor', paths: historyPaths, real: false, floor: true }
    ] as const
    type Name = typeof loads[number]['name']
    const runs = Object.fromEntries(loads.map(l => [l.name, [] as HttpRun[]])) as Record<Name, HttpRun[]>
    let rssMb = 0
    for (let n = 0; n < settings.rounds; n++) {
      if (settings.rounds > 1) log(`http: round ${n + 1} of ${settings.rounds}`)
      for (const l of loads) {
        const target = 'floor' in l ? floor : { child: server, port }
        const run = await load(l.name, target.child, dynalite, target.port, l.paths, 'headers' in l ? l.headers : undefined, n === 0 ? settings.warmupS : LATER_WARMUP_S)
        if (l.real && n === 0) rssMb = Math.max(rssMb, run.server_rss_mb_max)
        runs[l.name].push(run)
      }
    }
    for (const [name, list] of Object.entries(runs)) {
      for (const r of list) {
        const bad = r.non2xx + r.errors + r.timeouts
        if (bad > r.requests * 0.01) throw new Error(`${name}: ${r.non2xx} non-2xx answers, ${r.errors} errors, ${r.timeouts} timeouts in ${r.requests} requests: the figure would mean nothing`)
      }
    }
    const perRound = runs.status.map((_, i) => {
      const at = (name: Name): HttpRun => runs[name][i]!
      return {
        ceiling_rps: at('status ceiling').rps,
        ceiling_p99_ms: at('status ceiling').latency_ms.p99,
        status_rps: at('status').rps,
        status_p99_ms: at('status').latency_ms.p99,
        status_vs_ceiling: round(at('status').rps / at('status ceiling').rps, 3),
        history_ceiling_rps: at('history ceiling').rps,
        history_ceiling_p99_ms: at('history ceiling').latency_ms.p99,
        history_rps: at('history').rps,
        history_p99_ms: at('history').latency_ms.p99,
        history_vs_ceiling: round(at('history').rps / at('history ceiling').rps, 3),
        history_gzip_rps: at('history gzip').rps,
        history_gzip_p99_ms: at('history gzip').latency_ms.p99,
        history_gzip_vs_ceiling: round(at('history gzip').rps / at('history ceiling').rps, 3),
        status_floor_rps: at('status floor').rps,
        status_floor_p99_ms: at('status floor').latency_ms.p99,
        history_floor_rps: at('history floor').rps,
        history_floor_p99_ms: at('history floor').latency_ms.p99
      }
    })
    const figures = Object.fromEntries(Object.keys(perRound[0]!).map(key => {
      const values = perRound.map(r => r[key as keyof typeof r])
      return [key, key.endsWith('_vs_ceiling') ? round(median(values), 3) : round(median(values), key.endsWith('_ms') ? 3 : 0)]
    }))
    if (settings.rounds > 1) {
      log(`http: medians of ${settings.rounds} rounds: status ${figures.status_rps} req/s (${figures.status_vs_ceiling} of the ceiling), p99 ${figures.status_p99_ms} ms; ` +
        `history ${figures.history_rps} req/s (${figures.history_vs_ceiling}), p99 ${figures.history_p99_ms} ms; history gzip p99 ${figures.history_gzip_p99_ms} ms`)
    }
    return {
      // `task_memory_mib`: the cgroup's limit the server ran under; null: the host's memory
      memory: { rss_mb_under_load: round(rssMb, 1), task_memory_mib: inCgroup !== undefined ? taskMib : null, ...(hostReason !== undefined ? { host_memory_reason: hostReason } : {}) },
      http: {
        ...figures,
        node: node.version,
        machine_pauses: pauses,
        rounds: perRound,
        runs: {
          status_ceiling: runs['status ceiling'],
          status: runs.status,
          history_ceiling: runs['history ceiling'],
          history: runs.history,
          history_gzip: runs['history gzip'],
          status_floor: runs['status floor'],
          history_floor: runs['history floor']
        }
      }
    }
  } finally {
    await floor?.child.stop()
    await server.stop()
    await dropTable(dynamo, tableName)
    if (inCgroup !== undefined) {
      inCgroup.remove()
      cgroupDirs.delete(inCgroup)
    }
  }
}

/** The api task's memory (MiB): `api_memory`'s default in deploy/variables.tf. */
function apiTaskMemoryMib (): number {
  const tf = readFileSync(fileURLToPath(new URL('../../../deploy/variables.tf', import.meta.url)), 'utf8')
  const m = /variable\s+"api_memory"\s*\{[^}]*?default\s*=\s*(\d+)/.exec(tf)
  if (m === null) throw new Error('deploy/variables.tf: no default for api_memory')
  return Number(m[1])
}

/**
 * The floor (tools/bench/floor.ts) on the service's Node.js, answering each path with what the service
 * has just answered for it: status, headers but the per-connection ones, body bytes (identity).
 */
async function startFloor (base: string, paths: string[], options: SpawnOptions): Promise<{ child: Child, port: number }> {
  const answers: Record<string, CapturedAnswer> = {}
  const perConnection = new Set(['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding'])
  await mapLimit(paths, 8, async path => {
    const res = await fetch(base + path, { headers: { 'accept-encoding': 'identity' } })
    const body = Buffer.from(await res.arrayBuffer())
    if (res.status !== 200 || res.headers.get('content-encoding') !== null) throw new Error(`floor: GET ${path} answered ${res.status} ${res.headers.get('content-encoding') ?? ''}`)
    const headers: Record<string, string> = {}
    res.headers.forEach((value, name) => { if (!perConnection.has(name)) headers[name] = value })
    answers[path] = { code: res.status, headers, body: body.toString('base64') }
  })
  const child = spawnNode('floor', join(distBench, 'floor.js'), [], childEnv({}), options)
  child.send({ type: 'answers', answers })
  const { port } = await child.message<{ port: number }>('ready', 30_000)
  return { child, port }
}

// ---------------------------------------------------------------------------- ingest

/** BatchWriteItem, 25 items a call, `concurrency` calls in flight: items per second. */
async function writeStraight (dynamo: Dynamo, tableName: string, items: Array<Record<string, unknown>>, concurrency: number): Promise<number> {
  const chunks: Array<Array<Record<string, unknown>>> = []
  for (let i = 0; i < items.length; i += 25) chunks.push(items.slice(i, i + 25))
  const started = performance.now()
  await mapLimit(chunks, concurrency, async chunk => {
    let requests = chunk.map(Item => ({ PutRequest: { Item } }))
    for (let attempt = 1; requests.length > 0; attempt++) {
      if (attempt > 10) throw new Error('ceiling: BatchWriteItem kept leaving items unprocessed')
      const out = await dynamo.doc.send(new BatchWriteCommand({ RequestItems: { [tableName]: requests } }))
      requests = (out.UnprocessedItems?.[tableName] ?? []) as typeof requests
    }
  })
  return items.length / ((performance.now() - started) / 1000)
}

/** The ingest ceiling; the table of its full run is kept, under `keep`, when given. */
async function ingestCeiling (dynamo: Dynamo, dynalite: Child, items: Array<Record<string, unknown>>, devices: string[], keep?: string): Promise<Record<string, unknown>> {
  // Tune the concurrency on a sample, then write every reading at the best one into a fresh table.
  const sample = items.slice(0, Math.min(settings.ceilingSample, items.length))
  const trials: Array<{ concurrency: number, msgs_per_s: number }> = []
  for (const concurrency of CEILING_CONCURRENCY) {
    const tableName = `bench_ceiling_${runId}_${concurrency}`
    await createTable(dynamo.client, tableName)
    const rate = await writeStraight(dynamo, tableName, sample, concurrency)
    trials.push({ concurrency, msgs_per_s: Math.round(rate) })
    log(`ingest ceiling: ${sample.length} readings, concurrency ${concurrency}: ${Math.round(rate)} msgs/s`)
    await dropTable(dynamo, tableName)
  }
  const best = trials.reduce((a, b) => b.msgs_per_s > a.msgs_per_s ? b : a)
  const tableName = keep ?? `bench_ceiling_${runId}_full`
  await createTable(dynamo.client, tableName)
  const meter = new CpuMeter({ dynalite: dynalite.pid })
  const rate = await writeStraight(dynamo, tableName, items, best.concurrency)
  const cpu = meter.read()
  const perMsg = perUnit(cpu, rate, ['dynalite', 'runner'])
  const count = await countReadings(dynamo.doc, tableName, devices)
  if (count !== items.length) throw new Error(`ingest ceiling: ${count} readings in the table, expected ${items.length}`)
  if (keep === undefined) await dropTable(dynamo, tableName)
  log(`ingest ceiling: all ${items.length} readings at concurrency ${best.concurrency}: ${Math.round(rate)} msgs/s, cpu % ${JSON.stringify(cpu)}`)
  return { ceiling_msgs_per_s: Math.round(rate), ceiling_concurrency: best.concurrency, ceiling_trials: trials, ceiling_sample: sample.length, ceiling_cpu_percent: cpu, ceiling_cpu_ms_per_msg: perMsg }
}

async function ingestPhase (dynamo: Dynamo, dynalite: Child, data: Fleet, readings: Reading[], broker: Broker, keepCeilingTable?: string): Promise<Record<string, unknown>> {
  const prefix = `bench-${runId}`
  const topics = [...new Set(data.devices.map(d => topicOf(prefix, d)))]
  await createTopics(broker.brokers, topics, TOPIC_PARTITIONS)
  const produced = await preload(broker.brokers, prefix, data.raws)
  log(`ingest: preloaded ${data.raws.length} messages into ${topics.length} topics x ${TOPIC_PARTITIONS} partitions in ${round(produced.ms / 1000, 1)} s`)

  // The ceiling runs while the broker idles, right before the Kafka run.
  const ceiling = await ingestCeiling(dynamo, dynalite, readings.map(itemOf), data.devices, keepCeilingTable)

  const tableName = `bench_kafka_${runId}`
  await createTable(dynamo.client, tableName)
  const target = data.raws.length
  const { child: server, readyAt } = await startServer('ingest server', {
    DYNAMODB_ENDPOINT: dynamo.endpoint,
    DYNAMODB_TABLE: tableName,
    KAFKA_BROKERS: broker.brokers,
    KAFKA_TOPICS: topics.join(','),
    KAFKA_GROUP_ID: `bench-${runId}`,
    KAFKA_DLQ_TOPIC: `${prefix}.dlq`
  })
  try {
    const rss = new RssSampler(server.pid)
    const meter = new CpuMeter({ server: server.pid, dynalite: dynalite.pid, broker: broker.pid })
    server.send({ type: 'watch', target })
    const done = server.message<{ stored: number, deadLettered: number, batches: number, retries: number, at: number }>('stored', 30 * 60_000)
    // progress, and a stall is a broken harness, not a slow figure
    let last = -1
    let lastChange = Date.now()
    let firstStoredAt: number | undefined
    const progress = { finished: false }
    done.then(() => { progress.finished = true }, () => { progress.finished = true })
    while (!progress.finished) {
      await Promise.race([done.catch(() => {}), sleep(1000)])
      if (progress.finished) break
      server.send({ type: 'counters' })
      const c = await server.message<{ stored: number, at: number }>('counters', 10_000)
      if (c.stored > 0 && firstStoredAt === undefined) firstStoredAt = c.at
      if (c.stored !== last) { last = c.stored; lastChange = Date.now() }
      log(`ingest: ${c.stored} / ${target} stored`)
      if (Date.now() - lastChange > 60_000) throw new Error(`ingest stalled at ${c.stored} of ${target} readings for 60 s`)
    }
    const end = await done
    const cpu = meter.read()
    const rssMb = rss.stop() / 2 ** 20
    const elapsedMs = end.at - readyAt
    if (end.deadLettered > 0) throw new Error(`ingest: ${end.deadLettered} readings were dead-lettered, expected none`)
    const count = await countReadings(dynamo.doc, tableName, data.devices)
    if (count !== target || end.stored !== target) {
      throw new Error(`ingest: the table holds ${count} readings and the consumer counted ${end.stored}; ${target} were produced`)
    }
    const rate = target / (elapsedMs / 1000)
    log(`ingest: ${target} readings from Kafka into the table in ${round(elapsedMs / 1000, 1)} s: ${Math.round(rate)} msgs/s (table count ${count})`)
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
      server_rss_mb: round(rssMb, 1),
      cpu_percent: cpu,
      cpu_ms_per_msg: perUnit(cpu, rate, ['server', 'dynalite', 'broker'])
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

async function cleanup (): Promise<void> {
  await stopAll()
  for (const c of cgroupDirs) c.remove()
  await broker?.stop().catch(err => { log(`could not stop the broker: ${(err as Error).message}`) })
  removeTempDirs()
}

async function main (): Promise<Record<string, unknown>> {
  const startedAt = performance.now()
  const context = {
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
    kafka_devices: settings.kafkaDevices,
    parts: [...only],
    log_level: 'warn',
    app_env: appEnv,
    dynamodb: 'dynalite (in memory, own process)',
    git_commit: git('rev-parse', 'HEAD'),
    git_dirty: git('status', '--porcelain', '--untracked-files=no') !== '',
    date: new Date().toISOString()
  }
  log(`${context.mode} run on ${context.cores} cores (${context.cpu_model}), node ${context.node}, load average ${context.loadavg_at_start.join(' ')}`)

  // The service's Node.js (start-up and HTTP parts)
  const serviceNode = only.has('startup') || only.has('http') ? resolveServiceNode(nodeChoice, dockerfile, log) : undefined
  if (serviceNode !== undefined) {
    log(`service on Node.js ${serviceNode.version}: ${serviceNode.source}${serviceNode.source.startsWith('image') ? `, ${serviceNode.path}` : ''}`)
    const { path: _, ...named } = serviceNode // no machine path in a report that may be pasted
    Object.assign(context, { service_node: named })
  }

  // 1. start-up, first, while nothing else runs
  const startupRuns: number[] = []
  const startupNode = only.has('startup') ? serviceNode?.path : undefined
  const runs = startupNode !== undefined ? settings.startupRuns : 0
  for (let i = 0; i < runs; i++) {
    startupRuns.push(await startupOnce(startupNode!))
    log(`startup: ready in ${Math.round(startupRuns.at(-1)!)} ms`)
  }

  const dynalite = spawnNode('dynalite', join(distBench, 'dynalite.js'), [], childEnv({}))
  const { endpoint } = await dynalite.message<{ endpoint: string }>('ready', 30_000)
  // The runner's own client: setup and the ingest ceiling, whose calls at concurrency 32 can take
  // dynalite over the service's 5 s per request; a ceiling measures throughput, so it waits them out.
  const dynamo = await createDynamo({ mode: 'endpoint', endpoint, dataDir: '', requestTimeoutMs: 60_000 })
  try {
    const { toReading } = await validator()

    // 2. ingest: the ceiling, then the Kafka run, back to back (on a shared machine the noise
    //    changes by the minute). The ceiling writes the very readings the Kafka run carries; in
    //    full mode they are also the HTTP data set, so the ceiling's table is kept for the HTTP figures.
    let kafkaData: Fleet | undefined = fleet(settings.kafkaMessages, settings.kafkaDevices)
    let kafkaReadings: Reading[] | undefined = kafkaData.raws.map(toReading)
    const shared = only.has('ingest') && only.has('http') &&
      settings.readings === settings.kafkaMessages && settings.devices === settings.kafkaDevices
    const httpTable = `bench_http_${runId}`
    const report: Record<string, unknown> = {}
    if (only.has('ingest')) {
      broker = await startKafka()
      log(`kafka: broker ${broker.brokers} up in ${round(broker.startupMs / 1000, 1)} s`)
      report.ingest = await ingestPhase(dynamo, dynalite, kafkaData, kafkaReadings, broker, shared ? httpTable : undefined)
      await broker.stop()
    }

    // 3. HTTP
    if (only.has('http')) {
      const devices = await (async () => {
        const httpData = shared ? kafkaData : fleet(settings.readings, settings.devices, Date.now() - 1000, 7)
        await prefill(dynamo, httpTable, httpData, shared ? kafkaReadings : httpData.raws.map(toReading), shared)
        return httpData.devices
      })()
      // From here the runner holds device names only: with the 100,000 readings (twice) alive,
      // each of its full GCs marked ~200 MB on background threads for seconds, inside measured
      // windows (up to 19 % of a core in the first round's history loads).
      kafkaData = undefined
      kafkaReadings = undefined
      const { http, memory } = await httpPhase(dynamo, dynalite, httpTable, devices, serviceNode!)
      report.http = http
      report.memory = memory
    }
    if (only.has('startup')) {
      report.startup = { ready_ms: Math.round(median(startupRuns)), runs_ms: startupRuns.map(x => Math.round(x)), node: serviceNode!.version, first_run_compiles_everything: true }
    }
    return { ...report, context: { ...context, bench_seconds: round((performance.now() - startedAt) / 1000, 1) } }
  } finally {
    await dynamo.close()
    await dynalite.stop()
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping`)
    cleanup().finally(() => { process.exit(130) }).catch(() => {})
  })
}
process.once('exit', () => {
  killAllNow()
  removeTempDirs()
  for (const c of cgroupDirs) c.remove()
})

try {
  const report = await main()
  const rows = verdicts(report)
  if (asJson) {
    process.stdout.write(JSON.stringify({ ...report, verdicts: rows }) + '\n')
  } else {
    const ingest = report.ingest as { ceiling_concurrency: number } | undefined
    const notes: Record<string, string> = ingest !== undefined ? { 'ingest.ceiling_msgs_per_s': `(concurrency ${ingest.ceiling_concurrency})` } : {}
    process.stdout.write(`\n${table(rows, notes)}\n`)
    if (quick) process.stdout.write('\nquick mode: small data and 2 s loads; the verdicts mean nothing here.\n')
  }
  process.exitCode = 0
} catch (err) {
  log(`FAILED: ${(err as Error).stack ?? String(err)}`)
  await cleanup()
  process.exitCode = 1
}
// Everything is stopped by now; a client library's stray handle must not keep CI waiting.
setTimeout(() => { process.exit() }, 5000).unref()

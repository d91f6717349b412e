import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon, { type AutocannonResult } from 'autocannon'

// The load generator, in a process of its own (never the server's): wrk (C, epoll; a Lua script
// hands out the paths in turn) when it is on the PATH, else autocannon's API (each connection walks
// the paths from its own offset). Either way the requests in flight are for different devices.
// Usage: node build/tools/bench/load.js '<json LoadSpec>'; over IPC: "measuring", then "result".

export type LoadTool = 'wrk' | 'autocannon'

export interface LoadSpec {
  tool: LoadTool
  url: string
  paths: string[]
  /** sent with every request */
  headers?: Record<string, string>
  connections: number
  durationS: number
  warmupS: number
}

export interface LoadResult {
  tool: LoadTool
  /** 2xx answers a second */
  rps: number
  requests: number
  duration_s: number
  /** wrk: to the microsecond; autocannon: whole milliseconds */
  latency_ms: { mean: number, p50: number, p90: number, p99: number, max: number }
  non2xx: number
  errors: number
  timeouts: number
  bytes_per_s: number
}

async function autocannonRun (spec: LoadSpec, durationS: number): Promise<LoadResult> {
  let connection = 0
  const n = spec.paths.length
  const r = await new Promise<AutocannonResult>((resolve, reject) => {
    autocannon({
      url: spec.url,
      connections: spec.connections,
      duration: durationS,
      pipelining: 1,
      timeout: 10,
      headers: spec.headers,
      requests: [{ method: 'GET', path: spec.paths[0]! }],
      setupClient (client) {
        const offset = Math.floor(connection++ * n / spec.connections)
        client.setRequests(Array.from({ length: n }, (_, i) => ({ method: 'GET', path: spec.paths[(offset + i) % n]!, headers: spec.headers })))
      }
    }, (err, result) => { if (err !== null) reject(err); else resolve(result) })
  })
  const { mean, p50, p90, p99, max } = r.latency
  return {
    tool: 'autocannon',
    rps: Math.round(r['2xx'] / r.duration),
    requests: r['2xx'] + r.non2xx,
    duration_s: r.duration,
    latency_ms: { mean, p50, p90, p99, max },
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    bytes_per_s: Math.round(r.throughput.average)
  }
}

/** The paths as a Lua table, taken in turn by whichever connection sends next; done() prints one line of JSON (µs). */
function wrkScript (paths: string[], headers: Record<string, string> = {}): string {
  const headerTable = Object.entries(headers).map(([k, v]) => `[${JSON.stringify(k)}] = ${JSON.stringify(v)}`).join(', ')
  return `local paths = {
${paths.map(p => `  ${JSON.stringify(p)},`).join('\n')}
}
local headers = { ${headerTable} }
local reqs = {}
local k = 0
function init(args)
  for i = 1, #paths do reqs[i] = wrk.format("GET", paths[i], headers) end
end
function request()
  k = k % #reqs + 1
  return reqs[k]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK-RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"socket_errors":%d,"timeout":%d,"status":%d,' ..
    '"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect + e.read + e.write, e.timeout, e.status,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
`
}

async function wrkRun (spec: LoadSpec, script: string, durationS: number): Promise<LoadResult> {
  // one thread: the server has one event loop, and the machine two cores
  const proc = spawn('wrk', ['-t1', `-c${spec.connections}`, `-d${durationS}s`, '--timeout', '10s', '-s', script, spec.url], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  proc.stdout.on('data', (d: Buffer) => { out += d.toString() })
  proc.stderr.on('data', (d: Buffer) => { out += d.toString() })
  const code = await new Promise<number | null>((resolve, reject) => {
    proc.once('error', reject)
    proc.once('close', resolve)
  })
  const line = out.split('\n').find(l => l.startsWith('WRK-RESULT '))
  if (code !== 0 || line === undefined) throw new Error(`wrk exited ${String(code)} without a result:\n${out.slice(-2000)}`)
  const w = JSON.parse(line.slice('WRK-RESULT '.length)) as Record<string, number>
  const seconds = w.duration_us! / 1e6
  const ms = (us: number | undefined): number => Math.round(us!) / 1000
  // wrk's `status` errors are answers with a status of 400 or more; the bench asks for no 3xx
  return {
    tool: 'wrk',
    rps: Math.round((w.requests! - w.status!) / seconds),
    requests: w.requests!,
    duration_s: Math.round(seconds * 100) / 100,
    latency_ms: { mean: ms(w.mean), p50: ms(w.p50), p90: ms(w.p90), p99: ms(w.p99), max: ms(w.max) },
    non2xx: w.status!,
    errors: w.socket_errors!,
    timeouts: w.timeout!,
    bytes_per_s: Math.round(w.bytes! / seconds)
  }
}

const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec
let dir: string | undefined
let run = async (durationS: number): Promise<LoadResult> => await autocannonRun(spec, durationS)
if (spec.tool === 'wrk') {
  dir = await mkdtemp(join(tmpdir(), 'sensors-bench-wrk-'))
  const script = join(dir, 'paths.lua')
  await writeFile(script, wrkScript(spec.paths, spec.headers))
  run = async durationS => await wrkRun(spec, script, durationS)
}
let result: LoadResult
try {
  if (spec.warmupS > 0) await run(spec.warmupS)
  process.send?.({ type: 'measuring' })
  result = await run(spec.durationS)
} finally {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
}
process.send?.({ type: 'result', result }, () => { process.exit(0) })

import autocannon, { type AutocannonResult } from 'autocannon'

// The load generator, in its own process (never the server's): autocannon's API, because the
// requests are spread over many paths. Each connection walks the same list of paths, starting at
// its own offset, so at any moment the connections ask for different devices.
// Usage: node dist/bench/load.js '<json LoadSpec>'; talks over IPC: "measuring", then "result".

export interface LoadSpec {
  url: string
  paths: string[]
  connections: number
  durationS: number
  warmupS: number
}

export interface LoadResult {
  rps: number
  requests: number
  duration_s: number
  latency_ms: { mean: number, p50: number, p90: number, p99: number, max: number }
  non2xx: number
  errors: number
  timeouts: number
  bytes_per_s: number
}

async function run (spec: LoadSpec, durationS: number): Promise<AutocannonResult> {
  let connection = 0
  const n = spec.paths.length
  return await new Promise((resolve, reject) => {
    autocannon({
      url: spec.url,
      connections: spec.connections,
      duration: durationS,
      pipelining: 1,
      timeout: 10,
      requests: [{ method: 'GET', path: spec.paths[0]! }],
      setupClient (client) {
        const offset = Math.floor(connection++ * n / spec.connections)
        client.setRequests(Array.from({ length: n }, (_, i) => ({ method: 'GET', path: spec.paths[(offset + i) % n]! })))
      }
    }, (err, result) => { if (err !== null) reject(err); else resolve(result) })
  })
}

const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec
if (spec.warmupS > 0) await run(spec, spec.warmupS)
process.send?.({ type: 'measuring', at: Date.now() })
const r = await run(spec, spec.durationS)
// only 2xx answers count as served (autocannon also records latencies of 2xx answers only)
const result: LoadResult = {
  rps: Math.round(r['2xx'] / r.duration),
  requests: r['2xx'] + r.non2xx,
  duration_s: r.duration,
  latency_ms: { mean: r.latency.mean, p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max },
  non2xx: r.non2xx,
  errors: r.errors,
  timeouts: r.timeouts,
  bytes_per_s: Math.round(r.throughput.average)
}
process.send?.({ type: 'result', result }, () => { process.exit(0) })

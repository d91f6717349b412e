import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Agent, request } from 'node:http'
import { ConfigSchema } from '../../config.js'
import { createDynamo, type Dynamo } from '../../storage/client.js'
import { createTable } from '../../storage/table.js'
import { ReadingsRepository } from '../../storage/readings-repository.js'
import { fleet, validator } from './data.js'
import { log, spawnNode, type Child } from './procs.js'

// GET /fleet (issue 16): page latency of /fleet?limit=1000 on a ROLE=api process over a table of
// 10,000 device statuses written through the repository's own write path (as ingest writes them).
// Runnable alone: `node build/tools/bench/fleet.js [devices]` prints the result as JSON.

const here = fileURLToPath(new URL('.', import.meta.url))

export interface BenchTable {
  dynalite: Child
  dynamo: Dynamo
  endpoint: string
  table: string
  repository: ReadingsRepository
  stop: () => Promise<void>
}

/** dynalite in a process of its own, a fresh table, and `devices` statuses written by `ReadingsRepository.put`. */
export async function fleetTable (devices: number): Promise<BenchTable> {
  const dynalite = spawnNode('dynalite', join(here, 'dynalite.js'), [], benchEnv({}))
  const { endpoint } = await dynalite.message<{ endpoint: string }>('ready', 30_000)
  const dynamo = await createDynamo({ mode: 'endpoint', endpoint, dataDir: '' })
  const table = `bench_fleet_${Date.now()}`
  await createTable(dynamo.client, table)
  const repository = new ReadingsRepository({ doc: dynamo.doc, table })
  const toReading = await validator()
  const { raws } = fleet(devices, devices)
  const started = performance.now()
  for (let i = 0; i < raws.length; i += 500) await repository.put(raws.slice(i, i + 500).map(toReading))
  log(`fleet: ${devices} statuses written in ${Math.round(performance.now() - started)} ms`)
  return {
    dynalite,
    dynamo,
    endpoint,
    table,
    repository,
    stop: async () => {
      await dynamo.close()
      await dynalite.stop()
    }
  }
}

/** The bench's child environment: none of the caller's service settings. */
export function benchEnv (extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const key of Object.keys(ConfigSchema.properties)) delete env[key]
  // RATE_LIMIT_PER_MINUTE=0: the bench's load comes from one address, far over the default limit
  return { ...env, LOG_LEVEL: 'warn', LOG_REQUESTS: 'false', COLLECTOR: 'off', HOST: '127.0.0.1', PORT: '0', RATE_LIMIT_PER_MINUTE: '0', ...extra }
}

/** The real app (tools/bench/server.ts) with these settings; resolves once it listens. */
export async function startApi (name: string, env: Record<string, string>): Promise<{ child: Child, port: number }> {
  const child = spawnNode(name, join(here, 'server.js'), [], benchEnv(env))
  const { port } = await child.message<{ port: number }>('ready', 60_000)
  return { child, port }
}

export function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!
}

/** One GET over a keep-alive agent: its time to the last byte (ms) and status. */
async function timedGet (agent: Agent, port: number, path: string): Promise<{ ms: number, status: number, body: Buffer }> {
  const started = performance.now()
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => { chunks.push(c) })
      res.on('end', () => { resolve({ ms: performance.now() - started, status: res.statusCode ?? 0, body: Buffer.concat(chunks) }) })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/**
 * Writes `devices` statuses (default 10,000), starts the app with ROLE=api against that table and
 * measures `/fleet?limit=1000` (default sort, risk) over one keep-alive connection: `requests`
 * sequential requests after a warm-up, p50 of their time to the last byte.
 */
export async function benchFleet (options: { devices?: number, requests?: number } = {}): Promise<{ page_p50_ms: number, devices: number }> {
  const devices = options.devices ?? 10_000
  const requests = options.requests ?? 300
  const table = await fleetTable(devices)
  let api: { child: Child, port: number } | undefined
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  try {
    api = await startApi('fleet api', { ROLE: 'api', DYNAMODB_ENDPOINT: table.endpoint, DYNAMODB_TABLE: table.table })
    const path = '/fleet?limit=1000'
    for (let i = 0; i < 30; i++) {
      const warm = await timedGet(agent, api.port, path)
      if (warm.status !== 200) throw new Error(`/fleet answered ${warm.status}`)
    }
    const times: number[] = []
    for (let i = 0; i < requests; i++) times.push((await timedGet(agent, api.port, path)).ms)
    times.sort((a, b) => a - b)
    const readStarted = performance.now()
    const read = await table.repository.fleetStatuses()
    log(`fleet: one read of the fleet index (16 Queries, ${read.length} statuses) from this process: ${Math.round(performance.now() - readStarted)} ms against dynalite`)
    const last = await timedGet(agent, api.port, path)
    const page = JSON.parse(last.body.toString('utf8')) as { devices: unknown[], counts: { total: number } }
    if (page.counts.total !== devices || page.devices.length !== Math.min(1000, devices)) throw new Error(`/fleet counted ${page.counts.total} devices, paged ${page.devices.length}`)
    log(`fleet: /fleet?limit=1000 (${last.body.length} bytes) p50 ${percentile(times, 0.5).toFixed(2)} ms, p99 ${percentile(times, 0.99).toFixed(2)} ms over ${requests} requests`)
    return { page_p50_ms: Math.round(percentile(times, 0.5) * 100) / 100, devices }
  } finally {
    agent.destroy()
    await api?.child.stop()
    await table.stop()
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const devices = process.argv[2] !== undefined ? Number(process.argv[2]) : undefined
  process.stdout.write(JSON.stringify(await benchFleet(devices !== undefined ? { devices } : {})) + '\n')
}

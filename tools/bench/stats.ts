// The stats bench (issue 16): a month of one device's history as rollups, then the p50 of
// `GET /devices/{device}/stats?interval=1h` over it (720 buckets). Not part of run.ts yet; runs alone:
//
//   npm run build:tools && node build/tools/bench/stats.js [--json]
//
// Data: 30 days of one PC at one reading every 5 s (518,400 readings), validated and predicted by
// the service's own code (data.ts validator), folded by the same rollup code ingest runs
// (storage/rollups.ts applyReadings) in batches of 10,000 readings, in memory: the table gets only
// the final items (55,590, one BatchWriteItem per 25), as ingest would have left them, without the
// ~104 BatchGetItem round trips of replaying ingest batch by batch. Then the device's status (one
// put() of its newest reading: the route 404s a device without one). Then the api server
// (server.ts, ROLE=api, its own process) answers sequential requests over one keep-alive connection.

import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { randomUUID } from 'node:crypto'
import { Agent, request } from 'node:http'
import { BatchWriteCommand } from '@aws-sdk/lib-dynamodb'
import { createDynamo, type Dynamo } from '../../storage/client.js'
import { createTable } from '../../storage/table.js'
import { ReadingsRepository } from '../../storage/readings-repository.js'
import { applyReadings, rollupItem, type RollupBucket } from '../../storage/rollups.js'
import type { Reading } from '../../schemas/readings.js'
import { ConfigSchema } from '../../config.js'
import { validator } from './data.js'
import { log, spawnNode, stopAll } from './procs.js'

const here = fileURLToPath(new URL('.', import.meta.url))

export interface StatsBenchOptions {
  /** a DynamoDB endpoint to use (default: a dynalite of its own, in memory, in its own process) */
  endpoint?: string
  /** days of history (default 30) */
  days?: number
  /** seconds between readings (default 5) */
  everyS?: number
  /** measured requests (default 500, after 50 unmeasured) */
  requests?: number
}

export interface StatsBenchResult {
  month_p50_ms: number
  buckets: number
  p90_ms: number
  p99_ms: number
  readings: number
  rollup_items: number
  build_ms: number
  write_ms: number
  body_bytes: number
}

const DEVICE = 'bench-stats-0'
const BATCH = 10_000

function quantile (sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

async function writeItems (dynamo: Dynamo, table: string, items: Array<Record<string, unknown>>): Promise<void> {
  const calls: Array<Array<Record<string, unknown>>> = []
  for (let i = 0; i < items.length; i += 25) calls.push(items.slice(i, i + 25))
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < calls.length) {
      let requests = calls[next++]!.map(Item => ({ PutRequest: { Item } }))
      for (let attempt = 1; requests.length > 0; attempt++) {
        if (attempt > 10) throw new Error('stats bench: BatchWriteItem kept leaving items unprocessed')
        const out = await dynamo.doc.send(new BatchWriteCommand({ RequestItems: { [table]: requests } }))
        requests = (out.UnprocessedItems?.[table] ?? []) as typeof requests
      }
    }
  }
  await Promise.all(Array.from({ length: 16 }, worker))
}

function get (agent: Agent, port: number, path: string): Promise<{ status: number, bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, res => {
      let bytes = 0
      res.on('data', (c: Buffer) => { bytes += c.length })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, bytes }) })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

export async function statsBench (options: StatsBenchOptions = {}): Promise<StatsBenchResult> {
  const days = options.days ?? 30
  const everyMs = (options.everyS ?? 5) * 1000
  const measured = options.requests ?? 500
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const key of Object.keys(ConfigSchema.properties)) delete env[key]
  const dynalite = options.endpoint === undefined ? spawnNode('dynalite', join(here, 'dynalite.js'), [], env) : undefined
  const endpoint = options.endpoint ?? (await dynalite!.message<{ endpoint: string }>('ready', 30_000)).endpoint
  const dynamo = await createDynamo({ mode: 'endpoint', endpoint, dataDir: '', requestTimeoutMs: 60_000 })
  const table = `bench_stats_${randomUUID().slice(0, 8)}`
  let server: ReturnType<typeof spawnNode> | undefined
  try {
    await createTable(dynamo.client, table)
    const toReading = await validator()
    // whole days ending at the last midnight (UTC): the range is exactly days x 24 buckets of 1h
    const end = Math.floor(Date.now() / 86_400_000) * 86_400_000
    const start = end - days * 86_400_000
    const count = (end - start) / everyMs
    const buckets = new Map<string, RollupBucket>()
    let last: Reading | undefined
    const built = performance.now()
    for (let i = 0; i < count; i += BATCH) {
      const batch: Reading[] = []
      for (let k = i; k < Math.min(count, i + BATCH); k++) {
        const load = (k * 37) % 100
        batch.push(last = toReading({
          uuid: randomUUID(),
          device: DEVICE,
          loading_datetime: new Date(start + k * everyMs).toISOString(),
          ClockCPUCoreOne: 2000 + (k * 13) % 2500,
          TemperatureCPUPackage: 35 + load * 0.5,
          LoadCPUTotal: load,
          PowerCPUPackage: 5 + load * 0.8,
          TemperatureGPUCore: 40 + (k % 40),
          LoadGPUCore: (k * 7) % 100
        }))
      }
      applyReadings(batch, buckets)
    }
    const items = [...buckets.values()].map(b => rollupItem(DEVICE, b, 400 * 86_400))
    const buildMs = performance.now() - built
    log(`stats: ${count} readings folded into ${items.length} rollup items in ${Math.round(buildMs)} ms`)
    const written = performance.now()
    await writeItems(dynamo, table, items)
    const writeMs = performance.now() - written
    log(`stats: ${items.length} items written in ${Math.round(writeMs)} ms`)
    await new ReadingsRepository({ doc: dynamo.doc, table }).put([last!])

    server = spawnNode('stats server', join(here, 'server.js'), [], {
      ...env, LOG_LEVEL: 'warn', COLLECTOR: 'off', HOST: '127.0.0.1', PORT: '0', RATE_LIMIT_PER_MINUTE: '0', ROLE: 'api', DYNAMODB_ENDPOINT: endpoint, DYNAMODB_TABLE: table
    })
    const { port } = await server.message<{ port: number }>('ready', 60_000)
    const path = `/devices/${DEVICE}/stats?from=${new Date(start).toISOString()}&to=${new Date(end - 1).toISOString()}&interval=1h`
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    const check = await get(agent, port, path)
    if (check.status !== 200) throw new Error(`stats bench: GET ${path} answered ${check.status}`)
    const body = await (await fetch(`http://127.0.0.1:${port}${path}`)).json() as { buckets: Array<{ count: number }> }
    const total = body.buckets.reduce((n, b) => n + b.count, 0)
    if (body.buckets.length !== days * 24 || total !== count) throw new Error(`stats bench: ${body.buckets.length} buckets holding ${total} readings, expected ${days * 24} and ${count}`)
    for (let i = 0; i < 50; i++) await get(agent, port, path)
    const times: number[] = []
    for (let i = 0; i < measured; i++) {
      const t0 = performance.now()
      const res = await get(agent, port, path)
      times.push(performance.now() - t0)
      if (res.status !== 200) throw new Error(`stats bench: ${res.status}`)
    }
    agent.destroy()
    times.sort((a, b) => a - b)
    const round = (x: number): number => Math.round(x * 100) / 100
    return {
      month_p50_ms: round(quantile(times, 0.5)),
      buckets: body.buckets.length,
      p90_ms: round(quantile(times, 0.9)),
      p99_ms: round(quantile(times, 0.99)),
      readings: count,
      rollup_items: items.length,
      build_ms: Math.round(buildMs),
      write_ms: Math.round(writeMs),
      body_bytes: check.bytes
    }
  } finally {
    await server?.stop()
    await dynamo.close()
    await dynalite?.stop()
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const result = await statsBench()
    process.stdout.write(JSON.stringify(result, null, process.argv.includes('--json') ? 0 : 2) + '\n')
  } catch (err) {
    log(`FAILED: ${(err as Error).stack ?? String(err)}`)
    await stopAll()
    process.exitCode = 1
  }
  setTimeout(() => { process.exit() }, 5000).unref()
}

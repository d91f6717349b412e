import { request, type ClientRequest } from 'node:http'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import rdkafka from 'node-rdkafka'
import { benchEnv, fleetTable, percentile, startApi } from './fleet.js'
import { createTopics, startKafka, type Broker } from './kafka.js'
import { flavourOf, PC_SENSORS, PI_SENSORS, validator } from './data.js'
import { log, RssSampler, spawnNode, type Child } from './procs.js'

const here = fileURLToPath(new URL('.', import.meta.url))

// Status events (issue 16): `subscribers` SSE clients of /fleet/events on one ROLE=api process,
// readings published by another path (Kafka -> a ROLE=ingest process, as in production; or the
// repository from this process), and the time from publication to the event at each subscriber.
// Runnable alone: `node build/tools/bench/sse.js [subscribers] [kafka|repository]` prints JSON.

export interface SseBenchOptions {
  subscribers?: number
  /** devices with a status before the run (the fleet the view reads every TTL) */
  devices?: number
  /** readings published, `perRound` every `roundMs` */
  rounds?: number
  perRound?: number
  roundMs?: number
  /** `kafka`: produced to a topic a ROLE=ingest process consumes; `repository`: ReadingsRepository.put from here */
  via?: 'kafka' | 'repository'
}

export interface SseBenchResult { delivery_p50_ms: number, delivery_p99_ms: number, subscribers: number, rss_mb: number }

interface Subscriber { req: ClientRequest, received: number }

function subscribe (port: number, onUuid: (uuid: string) => void): Promise<Subscriber> {
  return new Promise((resolve, reject) => {
    const sub: Subscriber = { req: undefined as unknown as ClientRequest, received: 0 }
    sub.req = request({ host: '127.0.0.1', port, path: '/fleet/events', agent: false, headers: { accept: 'text/event-stream' } }, res => {
      if (res.statusCode !== 200) { reject(new Error(`/fleet/events answered ${res.statusCode}`)); return }
      res.setEncoding('utf8')
      let buffer = ''
      res.on('data', (chunk: string) => {
        buffer += chunk
        let end: number
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const frame = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const uuid = /"uuid":"([^"]+)"/.exec(frame)?.[1]
          if (uuid !== undefined) { sub.received++; onUuid(uuid) }
        }
      })
      resolve(sub)
    })
    sub.req.on('error', reject)
    sub.req.end()
  })
}

/**
 * Opens `subscribers` (default 1,000) streams of /fleet/events on a ROLE=api process (default TTL),
 * publishes `rounds` × `perRound` readings (default 20 × 5, every 250 ms) and measures the time
 * from each publication to its event at every subscriber (p50, p99 over all deliveries), and the
 * API process's peak RSS.
 */
export async function benchSse (options: SseBenchOptions = {}): Promise<SseBenchResult> {
  const subscribers = options.subscribers ?? 1000
  const devices = options.devices ?? 1000
  const rounds = options.rounds ?? 20
  const perRound = options.perRound ?? 5
  const roundMs = options.roundMs ?? 250
  const via = options.via ?? 'kafka'
  const table = await fleetTable(devices)
  const toReading = await validator()
  let broker: Broker | undefined
  let ingest: Child | undefined
  let api: { child: Child, port: number } | undefined
  let producer: rdkafka.Producer | undefined
  const subs: Subscriber[] = []
  try {
    const topic = `bench-sse-${Date.now()}`
    if (via === 'kafka') {
      broker = await startKafka()
      await createTopics(broker.brokers, [topic], 3)
      ingest = await startIngest({
        DYNAMODB_ENDPOINT: table.endpoint, DYNAMODB_TABLE: table.table, KAFKA_BROKERS: broker.brokers, KAFKA_TOPICS: topic, KAFKA_GROUP_ID: topic
      })
      producer = new rdkafka.Producer({ 'bootstrap.servers': broker.brokers, 'linger.ms': 1, dr_cb: false })
      await new Promise<void>((resolve, reject) => { producer!.connect({ timeout: 15_000 }, err => { if (err != null) reject(err); else resolve() }) })
      producer.setPollInterval(20)
    }
    // The fleet written before the run must not turn stale during it: that is a burst of `devices`
    // events to every subscriber (1,000 × 1,000 frames), not the delivery of readings measured here.
    api = await startApi('sse api', { ROLE: 'api', DYNAMODB_ENDPOINT: table.endpoint, DYNAMODB_TABLE: table.table, STALE_AFTER_SECONDS: '3600' })
    const rss = new RssSampler(api.child.pid)

    const publishedAt = new Map<string, number>()
    const latencies: number[] = []
    const onUuid = (uuid: string): void => {
      const at = publishedAt.get(uuid)
      if (at !== undefined) latencies.push(performance.now() - at)
    }
    for (let i = 0; i < subscribers; i += 100) {
      subs.push(...await Promise.all(Array.from({ length: Math.min(100, subscribers - i) }, async () => await subscribe(api!.port, onUuid))))
    }
    log(`sse: ${subs.length} subscribers open`)
    await sleep(3000) // the view's baseline read, and the ingest consumer's partitions assigned

    const base = Date.now()
    for (let r = 0; r < rounds; r++) {
      const raws = Array.from({ length: perRound }, (_, k) => {
        const device = `bench-${String((r * perRound + k) % devices).padStart(4, '0')}`
        return { ...(flavourOf(device) === 'raspberry' ? PI_SENSORS : PC_SENSORS), uuid: randomUUID(), device, loading_datetime: new Date().toISOString() }
      })
      const now = performance.now()
      for (const raw of raws) publishedAt.set(raw.uuid, now)
      if (producer !== undefined) for (const raw of raws) producer.produce(topic, null, Buffer.from(JSON.stringify(raw)), raw.device, Date.now())
      else await table.repository.put(raws.map(toReading))
      await sleep(Math.max(0, base + (r + 1) * roundMs - Date.now()))
    }
    const expected = rounds * perRound * subscribers
    const until = Date.now() + 20_000
    while (latencies.length < expected && Date.now() < until) await sleep(50)
    const rssMb = rss.stop()
    if (latencies.length < expected) log(`sse: only ${latencies.length} of ${expected} deliveries within 20 s of the last publication`)
    latencies.sort((a, b) => a - b)
    const result = {
      delivery_p50_ms: Math.round(percentile(latencies, 0.5)),
      delivery_p99_ms: Math.round(percentile(latencies, 0.99)),
      subscribers: subs.length,
      rss_mb: rssMb
    }
    log(`sse (${via}): ${latencies.length} deliveries, p50 ${result.delivery_p50_ms} ms, p99 ${result.delivery_p99_ms} ms, max ${Math.round(latencies[latencies.length - 1] ?? NaN)} ms; api rss ${rssMb} MB`)
    return result
  } finally {
    for (const sub of subs) sub.req.destroy()
    if (producer !== undefined) await new Promise<void>(resolve => { producer!.disconnect(5000, () => { resolve() }) })
    await api?.child.stop()
    await ingest?.stop()
    await broker?.stop()
    await table.stop()
  }
}

/** `node build/server.js` with ROLE=ingest (the bench server needs the read routes); resolves once /health answers 200. */
async function startIngest (env: Record<string, string>): Promise<Child> {
  const { freePorts } = await import(new URL('../../../tools/kafka-broker.mjs', import.meta.url).href) as { freePorts: (n: number) => Promise<number[]> }
  const [port] = await freePorts(1)
  const child = spawnNode('sse ingest', join(here, '..', '..', 'server.js'), [], benchEnv({ ...env, ROLE: 'ingest', PORT: String(port) }))
  const until = Date.now() + 60_000
  while (!await fetch(`http://127.0.0.1:${port!}/health`).then(r => r.status === 200, () => false)) {
    if (Date.now() > until) throw new Error('the ingest process did not become healthy within 60 s')
    await sleep(250)
  }
  return child
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const subscribers = process.argv[2] !== undefined ? Number(process.argv[2]) : undefined
  const via = process.argv[3] === 'repository' ? 'repository' : 'kafka'
  process.stdout.write(JSON.stringify(await benchSse({ ...(subscribers !== undefined ? { subscribers } : {}), via })) + '\n')
}

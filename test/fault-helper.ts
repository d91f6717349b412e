// The fault suite's harness (test/fault-*.test.ts): a paced stream of readings through the real
// broker, the service process, and the figures every scenario asserts, counted through the HTTP API.
import { setTimeout as sleep } from 'node:timers/promises'
import type rdkafka from 'node-rdkafka'
import type { Test } from 'tap'
import { spawnServer, uniqueTable, type ServerProcess } from './helper.js'
import { freePort, produce, readings, unique } from './kafka-helper.js'

interface Teardown { teardown: (fn: () => unknown) => void }

/** readings per scenario: small, so CI stays fast */
export const N = 2500
/** how long a restarted service may take to store a new reading (issue 14, item 6) */
// Mid-stream, the new reading waits behind the backlog the restart left (about 1,000 readings):
// 6.4 s measured after either signal. The issue's idle-restart limits (SIGTERM 5 s, SIGKILL 15 s)
// are asserted by kafka-restart.test.ts; here both get the SIGKILL bound.
export const RESUME_LIMIT_MS = { SIGTERM: 15_000, SIGKILL: 15_000 }

export interface Service { server: ServerProcess, base: string }

/** The service's environment for one scenario: its own topic, group, table and device. */
export function scenario (prefix: string, dynamoEndpoint: string, brokers: string) {
  const topic = unique(`fault-${prefix}`)
  const device = unique(prefix)
  const env = {
    DYNAMODB_ENDPOINT: dynamoEndpoint,
    DYNAMODB_TABLE: uniqueTable(),
    KAFKA_BROKERS: brokers,
    KAFKA_TOPICS: topic,
    KAFKA_GROUP_ID: unique('fault-group'),
    KAFKA_BATCH_SIZE: '100',
    COLLECTOR: 'off',
    // every answer from the table as it is now
    STATUS_CACHE_TTL_MS: '0',
    HISTORY_CACHE_TTL_MS: '0'
  }
  return { topic, device, env }
}

/** Starts `node dist/server.js` on a free port; resolves when /health answers 200. */
export async function startService (t: Teardown, env: Record<string, string>, timeoutMs = 60_000): Promise<Service> {
  const port = await freePort()
  const server = spawnServer(t, { ...env, PORT: String(port), HOST: '127.0.0.1' })
  const base = `http://127.0.0.1:${port}`
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (server.child.exitCode !== null) throw new Error(`the service exited at start: ${server.output()}`)
    if (await fetch(`${base}/health`).then(r => r.status === 200, () => false)) return { server, base }
    await sleep(50)
  }
  throw new Error(`the service was not healthy within ${timeoutMs} ms: ${server.output()}`)
}

export interface Publisher {
  /** uuids handed to the producer so far */
  published: string[]
  /** resolves when every reading is acknowledged by the broker */
  done: Promise<void>
}

/**
 * Publishes `n` readings of `device`, 50 every 100 ms (about 500 a second, spread over the topic's
 * partitions), while the test injects its fault; librdkafka keeps what it cannot deliver yet.
 */
export function publishPaced (p: rdkafka.HighLevelProducer, topic: string, device: string, n = N): Publisher {
  const data = readings(device, n, Date.now() - 2 * n * 1000)
  const published: string[] = []
  const done = (async () => {
    const acks: Array<Promise<void>> = []
    for (let i = 0; i < data.length; i += 50) {
      for (const r of data.slice(i, i + 50)) {
        published.push(r.uuid as string)
        acks.push(produce(p, topic, r, r.uuid as string))
      }
      await sleep(100)
    }
    await Promise.all(acks)
  })()
  return { published, done }
}

/** Waits until `count` readings have been handed to the producer. */
export async function publishedAtLeast (publisher: Publisher, count: number): Promise<void> {
  while (publisher.published.length < count) await sleep(20)
}

/**
 * One reading stored first (the topic exists and the service consumes it), then the paced stream;
 * resolves once 40 % of it is published and some of it is served: the moment to inject a fault.
 * `expected` holds every uuid published so far (the first reading's too).
 */
export async function midStream (p: rdkafka.HighLevelProducer, topic: string, device: string, base: string) {
  const first = await resumeTime(p, topic, device, base, Date.now())
  if (!Number.isFinite(first.ms)) throw new Error('the service stored no reading of the stream within 60 s')
  const stream = publishPaced(p, topic, device)
  await publishedAtLeast(stream, N * 0.4)
  const until = Date.now() + 30_000
  let served = 0
  while (served <= 100 && Date.now() < until) {
    served = (await readingsOverHttp(base, device).catch(() => [])).length
    if (served <= 100) await sleep(50)
  }
  return { stream, served, expected: () => [first.uuid, ...stream.published] }
}

/**
 * Publishes one reading newer than the stream and measures the time from `since` until the device's
 * status shows it (so: until the service has stored it). Infinity when it is not seen within `timeoutMs`.
 */
export async function resumeTime (
  p: rdkafka.HighLevelProducer, topic: string, device: string, base: string, since: number, timeoutMs = 60_000
): Promise<{ ms: number, uuid: string }> {
  const [probe] = readings(device, 1, Date.now())
  const uuid = probe!.uuid as string
  await produce(p, topic, probe!, uuid)
  while (Date.now() - since < timeoutMs) {
    const seen = await fetch(`${base}/devices/${device}/status`)
      .then(async r => r.status === 200 && (await r.json() as { uuid?: string }).uuid === uuid, () => false)
    if (seen) return { ms: Date.now() - since, uuid }
    await sleep(50)
  }
  return { ms: Infinity, uuid }
}

/** Every reading of a device as the API pages it (Link: rel="next"), as their uuids in order. */
export async function readingsOverHttp (base: string, device: string): Promise<string[]> {
  const uuids: string[] = []
  let path: string | undefined = `/devices/${device}?limit=1000`
  while (path !== undefined) {
    const res: Response = await fetch(base + path)
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`)
    for (const item of await res.json() as Array<{ uuid: string }>) uuids.push(item.uuid)
    path = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1]
  }
  return uuids
}

export interface Figures { readings: number, stored: number, lost: number, duplicated: number, unexpected: number }

export function figures (expected: string[], served: string[]): Figures {
  const distinct = new Set(served)
  const want = new Set(expected)
  return {
    readings: want.size,
    stored: served.length,
    lost: [...want].filter(u => !distinct.has(u)).length,
    duplicated: served.length - distinct.size,
    unexpected: [...distinct].filter(u => !want.has(u)).length
  }
}

/** Waits until the API serves at least every expected reading (or the timeout), then counts. */
export async function settle (base: string, device: string, expected: string[], timeoutMs = 90_000): Promise<Figures> {
  const until = Date.now() + timeoutMs
  let last = figures(expected, [])
  while (Date.now() < until) {
    last = figures(expected, await readingsOverHttp(base, device).catch(() => []))
    if (last.lost === 0) break
    await sleep(500)
  }
  // a redelivery arriving late would show as a duplicate: look once more after a pause
  await sleep(1000)
  return figures(expected, await readingsOverHttp(base, device))
}

export function describe (name: string, f: Figures, resume: Record<string, number>): string {
  const times = Object.entries(resume).map(([k, ms]) => `${k} ${Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : 'never'}`).join(', ')
  return `fault ${name}: ${f.readings} readings, ${f.stored} served, lost ${f.lost}, duplicated ${f.duplicated}, unexpected ${f.unexpected}; resume: ${times}`
}

/** The fault suite's verdict on a run: its figures printed, and 0 lost, 0 duplicated, nothing unexpected. */
export function exactlyOnce (t: Test, name: string, f: Figures, resume: Record<string, number>): void {
  t.comment(describe(name, f, resume))
  t.equal(f.lost, 0, 'no reading lost')
  t.equal(f.duplicated, 0, 'no reading duplicated')
  t.equal(f.unexpected, 0, 'nothing served that was not published')
}

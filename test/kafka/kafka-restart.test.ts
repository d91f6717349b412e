import t from 'tap'
import { dynalite, spawnServer, uniqueTable, type ServerProcess } from '../helper.js'
import { brokers, freePort, noBroker, produce, producer, readings, unique, waitUntil } from '../kafka-helper.js'

// After a restart ingestion resumes at once: the old consumer leaves its group on SIGTERM, and a
// consumer that died without leaving (SIGKILL) is dropped after KAFKA_SESSION_TIMEOUT_MS. Both
// generations share one dynalite (the table outlives the process) and one consumer group.

/** Waits until the process answers /health with 200 (its consumer connected); returns the time it did. */
async function ready (server: ServerProcess, port: number): Promise<number> {
  const ok = await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/health`)).status === 200, 60_000, 50)
  if (!ok) throw new Error(`not ready: ${server.output().slice(-1500)}`)
  return Date.now()
}

/** ms from `since` until the device's status names `uuid` (or Infinity after `limitMs`). */
async function visibleAfter (port: number, device: string, uuid: string, since: number, limitMs: number): Promise<number> {
  const ok = await waitUntil(async () => {
    const res = await fetch(`http://127.0.0.1:${port}/devices/${device}/status`)
    return res.status === 200 && (await res.json() as { uuid?: string }).uuid === uuid
  }, limitMs, 50)
  return ok ? Date.now() - since : Infinity
}

for (const [signal, limitMs] of [['SIGTERM', 5000], ['SIGKILL', 15_000]] as const) {
  t.test(`after ${signal} a restarted service stores a new reading within ${limitMs / 1000} s of being ready`, { skip: noBroker }, async t => {
    const db = await dynalite(t)
    const topic = unique('restart')
    const device = unique('rs')
    const env = {
      DYNAMODB_ENDPOINT: db.endpoint,
      DYNAMODB_TABLE: uniqueTable(),
      KAFKA_BROKERS: brokers!,
      KAFKA_TOPICS: topic,
      KAFKA_GROUP_ID: unique('group'),
      COLLECTOR: 'off',
      STATUS_CACHE_TTL_MS: '0'
    }
    const p = await producer(t)
    const [before, after] = readings(device, 2)
    let port = await freePort()
    const first = spawnServer(t, { ...env, PORT: String(port) })
    await ready(first, port)
    await produce(p, topic, before!, device)
    t.ok(await visibleAfter(port, device, before!.uuid as string, Date.now(), 30_000) < Infinity, 'the first generation ingests')

    first.child.kill(signal)
    await first.exited
    port = await freePort()
    const second = spawnServer(t, { ...env, PORT: String(port) })
    const readyAt = await ready(second, port)
    await produce(p, topic, after!, device)
    const ms = await visibleAfter(port, device, after!.uuid as string, readyAt, limitMs + 15_000)
    t.comment(`${signal}: new reading visible ${ms} ms after the restarted process was ready`)
    t.ok(ms <= limitMs, `visible within ${limitMs} ms (${ms} ms) ${ms > limitMs ? second.output().slice(-1500) : ''}`)
    second.child.kill('SIGTERM')
    t.equal(await second.exited, 0)
  })
}

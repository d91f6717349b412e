import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { QueryCommand } from '@aws-sdk/lib-dynamodb'
import { dynaliteProcess, dynamoClient, pcReading, spawnServer, tempDir, uniqueTable, type ServerProcess } from '../helper.js'
import { brokers, freePort, noBroker, produce, producer, unique, waitUntil } from '../kafka-helper.js'
import { receiver, type Receiver } from './receivers.js'
import { OUTBOX_SHARDS } from '../../alerts/store.js'

// Issue 18's exactly-once, with the real thing: two service processes sharing a table (a separate
// dynalite process) and a Kafka consumer group; real HTTP receivers.

interface Task { server: ServerProcess, port: number }

interface Setup { a: Task, b: Task, topic: string, table: string, endpoint: string }

async function tasks (t: Parameters<typeof tempDir>[0], hookUrl: string, slackUrl: string): Promise<Setup> {
  const db = await dynaliteProcess(t)
  const table = uniqueTable()
  const topic = unique('alerts')
  const file = join(await tempDir(t), 'alerts.yaml')
  await writeFile(file, `
channels:
  - {name: ops, type: webhook, url: "${hookUrl}"}
  - {name: team, type: slack, url: "${slackUrl}"}
rules:
  - {name: stressed, when: stressed, devices: ["pc-x*"], channels: [ops, team]}
delivery: {backoff_seconds: 0.3, retry_for_seconds: 120, timeout_seconds: 2}
`)
  const env = {
    DYNAMODB_ENDPOINT: db.endpoint,
    DYNAMODB_TABLE: table,
    HOST: '127.0.0.1',
    ROLE: 'ingest',
    COLLECTOR: 'off',
    LOG_LEVEL: 'info',
    LOG_REQUESTS: 'false',
    KAFKA_BROKERS: brokers!,
    KAFKA_TOPICS: topic,
    KAFKA_GROUP_ID: unique('alerts'),
    ALERTS_FILE: file,
    ALERTS_TICK_SECONDS: '0.2'
  }
  const start = async (): Promise<Task> => {
    const port = await freePort()
    return { server: spawnServer(t, { ...env, PORT: String(port) }), port }
  }
  const up = async (task: Task): Promise<void> => {
    const deadline = Date.now() + 90_000
    while (!await fetch(`http://127.0.0.1:${task.port}/health`).then(r => r.status === 200, () => false)) {
      if (Date.now() > deadline) throw new Error(`not up: ${task.server.output()}`)
      await sleep(250)
    }
  }
  // One after the other: the first creates the table (two at once race to create it).
  const a = await start()
  await up(a)
  const b = await start()
  await up(b)
  return { a, b, topic, table, endpoint: db.endpoint }
}

/** Each reading under three keys: the topic's partitions (and so both tasks) likely see it more than once. */
async function send (p: Awaited<ReturnType<typeof producer>>, topic: string, reading: Record<string, unknown>): Promise<void> {
  for (const key of ['k1', 'k2', 'k3']) await produce(p, topic, reading, key)
}

const states = (r: Receiver): string[] => r.received.map(x => {
  const body = JSON.parse(x.body) as { state?: string, text?: string }
  return body.state ?? (body.text?.startsWith('FIRING') === true ? 'firing' : 'resolved')
})

t.test('two tasks, one consumer group: one firing and one resolved notification per channel', { skip: noBroker }, async t => {
  const hook = await receiver(t)
  const slack = await receiver(t)
  const { a, b, topic } = await tasks(t, hook.url, slack.url)
  const p = await producer(t)
  const base = Date.now() - 30_000
  for (let i = 0; i < 3; i++) await send(p, topic, pcReading({ device: 'pc-x1', ThrottleEventsCPU: 4, loading_datetime: new Date(base + i * 1000).toISOString() }))
  t.ok(await waitUntil(async () => hook.received.length >= 1 && slack.received.length >= 1, 60_000) || (t.comment(a.server.output() + b.server.output()), false), 'fired')
  for (let i = 3; i < 6; i++) await send(p, topic, pcReading({ device: 'pc-x1', loading_datetime: new Date(base + i * 1000).toISOString() }))
  t.ok(await waitUntil(async () => hook.received.length >= 2 && slack.received.length >= 2, 60_000) || (t.comment(a.server.output() + b.server.output()), false), 'resolved')
  await sleep(2000)
  t.same(states(hook), ['firing', 'resolved'], 'the webhook: exactly one of each')
  t.same(states(slack), ['firing', 'resolved'], 'slack: exactly one of each')
  const ids = hook.received.map(r => r.headers['idempotency-key'])
  t.equal(new Set(ids).size, 2)
  const recorded = (a.server.output() + b.server.output()).match(/alert transition recorded/g)?.length ?? 0
  t.ok(recorded >= 1 && recorded <= 2, `the transitions recorded once each (${recorded} lines)`)
})

t.test('the task that recorded a transition dies before delivering: the other task delivers it', { skip: noBroker }, async t => {
  const hookPort = await freePort()
  const slack = await receiver(t)
  const { a, b, topic, table, endpoint } = await tasks(t, `http://127.0.0.1:${hookPort}/hook`, slack.url)
  const p = await producer(t)
  await produce(p, topic, pcReading({ device: 'pc-x2', ThrottleEventsCPU: 4, loading_datetime: new Date(Date.now() - 5000).toISOString() }), 'pc-x2')
  // The webhook's receiver is down: its entry stays in the outbox, retried; slack gets its own at once.
  t.ok(await waitUntil(async () => slack.received.length === 1, 60_000), 'the other channel delivered meanwhile')
  const recorder = /alert transition recorded/.test(a.server.output()) ? a : b
  const survivor = recorder === a ? b : a
  // either task may have claimed the webhook's entry meanwhile: it is retried, not lost
  t.ok(await waitUntil(async () => /notification failed; retrying/.test(a.server.output() + b.server.output()), 10_000), 'the webhook was tried and is retried')
  const dynamo = await dynamoClient(t, endpoint)
  const pending = async (): Promise<number> => {
    let n = 0
    for (let s = 0; s < OUTBOX_SHARDS; s++) {
      const out = await dynamo.doc.send(new QueryCommand({ TableName: table, KeyConditionExpression: 'device = :s', ExpressionAttributeValues: { ':s': `outbox#${s}` } }))
      n += out.Items?.length ?? 0
    }
    return n
  }
  t.equal(await pending(), 1, 'one entry pending in the outbox')
  recorder.server.child.kill('SIGKILL')
  await recorder.server.exited
  const hook = await receiver(t, [200], hookPort)
  t.ok(await waitUntil(async () => hook.received.length >= 1, 30_000) || (t.comment(survivor.server.output()), false), 'the survivor delivered it')
  await sleep(1500)
  t.equal(hook.received.length, 1, 'once')
  t.match(JSON.parse(hook.received[0]!.body), { device: 'pc-x2', state: 'firing', rule: 'stressed' })
  t.equal(await pending(), 0, 'the outbox is empty')
  t.equal(slack.received.length, 1)
})

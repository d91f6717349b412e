import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { PutCommand } from '@aws-sdk/lib-dynamodb'
import { build, dynalite, pcReading, tempDir, uniqueTable } from '../helper.js'
import { waitUntil } from '../kafka-helper.js'
import { receiver } from './receivers.js'
import { STALE_LEASE_PK } from '../../alerts/store.js'

async function setup (t: Parameters<typeof tempDir>[0], url: string): Promise<Record<string, string>> {
  const file = join(await tempDir(t), 'alerts.yaml')
  await writeFile(file, `
channels: [{name: ops, type: webhook, url: "${url}"}]
rules:
  - {name: silent, when: stale, devices: ["pc*"], channels: [ops]}
`)
  const db = await dynalite(t)
  return { ALERTS_FILE: file, ALERTS_TICK_SECONDS: '0.2', STALE_AFTER_SECONDS: '1', DYNAMODB_ENDPOINT: db.endpoint, DYNAMODB_TABLE: uniqueTable() }
}

t.test('a silent device fires without any new reading, once, by one of two tasks; its next reading resolves it', async t => {
  const hook = await receiver(t)
  const env = await setup(t, hook.url)
  const a = await build(t, { env })
  const b = await build(t, { env })
  await a.ingest.ingest([pcReading({ device: 'pc1', loading_datetime: new Date().toISOString() })])
  await a.ingest.ingest([pcReading({ device: 'other', loading_datetime: new Date().toISOString() })])
  t.ok(await waitUntil(async () => hook.received.length === 1, 5000), 'fired within the window plus a few ticks')
  const fired = JSON.parse(hook.received[0]!.body) as Record<string, any>
  t.match(fired, { rule: 'silent', device: 'pc1', state: 'firing', status: { stale: true, msg: 'The device is not reporting' } })
  await sleep(1000)
  if (!t.equal(hook.received.length, 1, 'once, whichever task checks (devices not matching are left alone)')) t.comment(hook.received.map(r => r.body).join('\n'))
  await b.ingest.ingest([pcReading({ device: 'pc1', loading_datetime: new Date().toISOString() })])
  t.ok(await waitUntil(async () => hook.received.length === 2, 5000))
  t.match(JSON.parse(hook.received[1]!.body), { device: 'pc1', state: 'resolved', since: fired.since })
  const list = (await a.inject('/alerts?rule=silent&device=pc1')).json() as { alerts: Array<{ state: string }> }
  t.same(list.alerts.map(x => x.state), ['resolved'])
  // before the table goes: their timers would still call it
  await Promise.all([a.close(), b.close()])
})

t.test('a lease held by a task that died is taken over once it expires', async t => {
  const hook = await receiver(t)
  const env = await setup(t, hook.url)
  const a = await build(t, { env })
  await a.dynamo.doc.send(new PutCommand({
    TableName: env.DYNAMODB_TABLE,
    Item: { device: STALE_LEASE_PK, sk: 'lease', holder: 'a-dead-task', lease_until: Date.now() + 3000 }
  }))
  await a.ingest.ingest([pcReading({ device: 'pc2', loading_datetime: new Date().toISOString() })])
  await sleep(2000)
  t.equal(hook.received.length, 0, 'nobody checks while the dead task\'s lease runs')
  t.ok(await waitUntil(async () => hook.received.length === 1, 5000), 'then this task takes the lease and fires')
  await a.close()
})

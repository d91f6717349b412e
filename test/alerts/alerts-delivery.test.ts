import t from 'tap'
import { createHmac } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { build, dynalite, pcReading, tempDir, uniqueTable } from '../helper.js'
import { waitUntil } from '../kafka-helper.js'
import { receiver } from './receivers.js'
import type { Predictor } from '../../ingest/service.js'

// Stressed exactly when the CPU package is above 90 °C: the readings decide, not a model.
const predictor: Predictor = {
  predict: (_kind, r) => {
    const hot = (r.TemperatureCPUPackage as number) > 90
    return { prediction: hot ? 1 : 0, probability: hot ? 0.93 : 0.04, source: 'model', reasons: [{ field: 'TemperatureCPUPackage', value: r.TemperatureCPUPackage as number, effect: '+2.1' }] }
  }
}

async function alertsFile (t: Parameters<typeof tempDir>[0], text: string): Promise<string> {
  const file = join(await tempDir(t), 'alerts.yaml')
  await writeFile(file, text)
  return file
}

const BASE = Date.now() - 60_000
const time = (offsetMs: number): string => new Date(BASE + offsetMs).toISOString()

t.test('every channel type gets one firing and one resolved notification, in its own format', async t => {
  const hook = await receiver(t)
  const bot = await receiver(t)
  const ntfy = await receiver(t)
  const slack = await receiver(t)
  const file = await alertsFile(t, `
channels:
  - {name: ops, type: webhook, url: "${hook.url}/hook", secret: "\${HOOK_SECRET}"}
  - {name: chat, type: telegram, bot_token: "123:abc", chat_id: "-100123", api_url: "${bot.url}"}
  - {name: push, type: ntfy, url: "${ntfy.url}/sensors", tags: [computer]}
  - {name: team, type: slack, url: "${slack.url}/services/T/B/X"}
rules:
  - {name: stressed, when: stressed, channels: [ops, chat, push, team]}
`)
  const app = await build(t, { predictor, env: { ALERTS_FILE: file, HOOK_SECRET: 'shh', PUBLIC_URL: 'https://sensors.example.org', ALERTS_TICK_SECONDS: '0.2' } })
  await app.ingest.ingest([pcReading({ TemperatureCPUPackage: 95, loading_datetime: time(0) })])
  await app.ingest.ingest([pcReading({ TemperatureCPUPackage: 96, loading_datetime: time(1000) })])
  await app.ingest.ingest([pcReading({ TemperatureCPUPackage: 50, loading_datetime: time(2000) })])
  const all = [hook, bot, ntfy, slack]
  t.ok(await waitUntil(async () => all.every(r => r.received.length >= 2), 10_000), 'two notifications each')
  await new Promise(resolve => setTimeout(resolve, 600))
  t.same(all.map(r => r.received.length), [2, 2, 2, 2], 'exactly two each')

  const [fired, resolved] = hook.received.map(r => JSON.parse(r.body) as Record<string, any>)
  t.match(fired, { rule: 'stressed', device: 'pc1', state: 'firing', since: time(0), at: time(0), status: { device: 'pc1', stressed: true, probability: 0.93 } })
  t.match(resolved, { rule: 'stressed', device: 'pc1', state: 'resolved', since: time(0), at: time(2000), status: { stressed: false } })
  t.not(fired!.id, resolved!.id)
  for (const r of hook.received) {
    t.equal(r.url, '/hook')
    t.equal(r.headers['idempotency-key'], (JSON.parse(r.body) as { id: string }).id, 'Idempotency-Key is the body\'s id')
    t.equal(r.headers['x-signature-256'], `sha256=${createHmac('sha256', 'shh').update(r.body).digest('hex')}`, 'signed with the secret')
  }

  const tg = bot.received.map(r => ({ url: r.url, body: JSON.parse(r.body) as { chat_id: string, text: string } }))
  t.equal(tg[0]!.url, '/bot123:abc/sendMessage')
  t.equal(tg[0]!.body.chat_id, '-100123')
  t.match(tg[0]!.body.text, /FIRING: stressed on pc1/)
  t.match(tg[0]!.body.text, /probability 0\.93/)
  t.match(tg[0]!.body.text, /top reason TemperatureCPUPackage = 95/)
  t.match(tg[0]!.body.text, /https:\/\/sensors\.example\.org\/ui\/devices\/pc1/)
  t.match(tg[1]!.body.text, /RESOLVED: stressed on pc1/)

  t.equal(ntfy.received[0]!.url, '/sensors')
  t.match(ntfy.received[0]!.headers, { title: 'Firing: stressed on pc1', priority: '4', tags: 'warning,computer' })
  t.match(ntfy.received[0]!.body, /FIRING: stressed on pc1/)
  t.match(ntfy.received[1]!.headers, { title: 'Resolved: stressed on pc1', tags: 'white_check_mark,computer' })

  t.match(JSON.parse(slack.received[0]!.body), { text: /FIRING: stressed on pc1/ })
  t.equal(slack.received[0]!.headers['content-type'], 'application/json')
  t.same(app.alerting?.metrics.ops, { sent: 2, failed: 0, retried: 0 })

  const res = await app.inject({ url: '/alerts' })
  t.equal(res.statusCode, 200)
  const body = res.json() as { alerts: Array<Record<string, unknown>> }
  t.equal(body.alerts.length, 1)
  t.match(body.alerts[0], { rule: 'stressed', device: 'pc1', state: 'resolved', since: time(0), resolved_at: time(2000), last_status: { device: 'pc1' } })
})

t.test('a receiver that fails twice is retried with the same Idempotency-Key; one that always fails does not hold another back', async t => {
  const flaky = await receiver(t, [500, 503, 200])
  const broken = await receiver(t, [500])
  const good = await receiver(t)
  const file = await alertsFile(t, `
channels:
  - {name: flaky, type: webhook, url: "${flaky.url}"}
  - {name: broken, type: webhook, url: "${broken.url}"}
  - {name: good, type: slack, url: "${good.url}"}
rules:
  - {name: stressed, when: stressed, channels: [flaky, broken, good]}
delivery: {backoff_seconds: 0.1, retry_for_seconds: 3}
`)
  const app = await build(t, { predictor, env: { ALERTS_FILE: file, ALERTS_TICK_SECONDS: '0.1' } })
  await app.ingest.ingest([pcReading({ TemperatureCPUPackage: 95, loading_datetime: time(0) })])
  t.ok(await waitUntil(async () => good.received.length === 1, 5000), 'the good channel delivered')
  t.ok(await waitUntil(async () => flaky.received.length === 3, 5000), 'the flaky one after two retries')
  const keys = new Set(flaky.received.map(r => r.headers['idempotency-key']))
  t.equal(keys.size, 1, 'one Idempotency-Key across the attempts')
  t.same(new Set(flaky.received.map(r => (JSON.parse(r.body) as { id: string }).id)), keys, 'and the same id in each body')
  t.ok(await waitUntil(async () => app.alerting!.metrics.broken!.failed === 1, 8000), 'the broken one is given up after retry_for_seconds')
  t.ok(broken.received.length >= 3, `retried with backoff (${broken.received.length} attempts)`)
  t.same(app.alerting?.metrics.flaky, { sent: 1, failed: 0, retried: 2 })
  t.equal(good.received.length, 1)
  // the same counts in Prometheus text at /metrics
  const text = (await app.inject('/metrics')).body
  t.match(text, /sensors_alert_notifications_total\{channel="flaky",result="sent"\} 1\n/)
  t.match(text, /sensors_alert_notifications_total\{channel="flaky",result="retried"\} 2\n/)
  t.match(text, /sensors_alert_notifications_total\{channel="broken",result="failed"\} 1\n/)
  t.match(text, /sensors_alert_notifications_total\{channel="good",result="sent"\} 1\n/)
})

t.test('hysteresis and for_seconds through the service, and no alerts without a file', async t => {
  const hook = await receiver(t)
  const file = await alertsFile(t, `
channels: [{name: ops, type: webhook, url: "${hook.url}"}]
rules:
  - {name: hot, when: field, field: TemperatureCPUPackage, above: 90, clear_below: 80, for_seconds: 2, devices: ["pc*"], channels: [ops]}
`)
  const app = await build(t, { predictor, env: { ALERTS_FILE: file, ALERTS_TICK_SECONDS: '0.1' } })
  const temps = [95, 95, 95, 85, 82, 79, 85]
  for (const [i, v] of temps.entries()) await app.ingest.ingest([pcReading({ TemperatureCPUPackage: v, loading_datetime: time(i * 1000) })])
  await app.ingest.ingest([pcReading({ device: 'raspberry-ish', TemperatureCPUPackage: 99, loading_datetime: time(0) })])
  t.ok(await waitUntil(async () => hook.received.length >= 2, 5000))
  await new Promise(resolve => setTimeout(resolve, 500))
  const got = hook.received.map(r => JSON.parse(r.body) as { state: string, at: string, device: string })
  t.same(got.map(n => [n.state, n.at]), [['firing', time(2000)], ['resolved', time(5000)]], 'fires after 2 s above 90, resolves below 80 only')
  // Redelivered readings (same uuids): nothing new
  const off = await build(t, { predictor })
  t.equal(off.alerting, null, 'alerting is off without ALERTS_FILE')
  const res = await off.inject({ url: '/alerts' })
  t.same(res.json(), { alerts: [] })
})

t.test('two tasks handling the same readings at once record one episode and send one notification per channel', async t => {
  const hook = await receiver(t)
  const slack = await receiver(t)
  const file = await alertsFile(t, `
channels:
  - {name: ops, type: webhook, url: "${hook.url}"}
  - {name: team, type: slack, url: "${slack.url}"}
rules:
  - {name: stressed, when: stressed, channels: [ops, team]}
`)
  const db = await dynalite(t)
  const env = { ALERTS_FILE: file, ALERTS_TICK_SECONDS: '0.1', DYNAMODB_ENDPOINT: db.endpoint, DYNAMODB_TABLE: uniqueTable() }
  const a = await build(t, { predictor, env })
  const b = await build(t, { predictor, env })
  for (let round = 0; round < 3; round++) {
    const hot = pcReading({ device: `pc-race${round}`, TemperatureCPUPackage: 95, loading_datetime: time(round * 10_000) })
    const cool = pcReading({ device: `pc-race${round}`, TemperatureCPUPackage: 50, loading_datetime: time(round * 10_000 + 1000) })
    await Promise.all([a.ingest.ingest([hot]), b.ingest.ingest([hot])])
    await Promise.all([a.ingest.ingest([cool]), b.ingest.ingest([cool])])
  }
  t.ok(await waitUntil(async () => hook.received.length >= 6 && slack.received.length >= 6, 10_000))
  await new Promise(resolve => setTimeout(resolve, 1000))
  t.equal(hook.received.length, 6, 'one firing and one resolved for each of three devices')
  t.equal(slack.received.length, 6)
  const ids = hook.received.map(r => r.headers['idempotency-key'])
  t.equal(new Set(ids).size, 6, 'no repeat')
  const list = (await a.inject('/alerts?state=resolved')).json() as { alerts: unknown[] }
  t.equal(list.alerts.length, 3, 'three episodes')
})

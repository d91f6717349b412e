import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { dynaliteProcess, uniqueTable } from '../helper.js'
import { waitUntil } from '../kafka-helper.js'
import { startService } from '../fault-helper.js'

// Issue 14 items 7 and 13: a table outage under polling is logged once when it starts and once
// when it ends (not once per failed request), and /health names each component's state with a
// fixed reason, never an address or an error message.

interface LogLine { level: number, msg: string, [key: string]: unknown }

function lines (output: string): LogLine[] {
  return output.split('\n').flatMap(line => {
    try {
      const parsed = JSON.parse(line) as LogLine
      return typeof parsed.level === 'number' ? [parsed] : []
    } catch {
      return []
    }
  })
}

async function poll (base: string, paths: string[], n: number): Promise<Map<number, number>> {
  const codes = new Map<number, number>()
  let next = 0
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < n) {
      const path = paths[next++ % paths.length]!
      const res = await fetch(base + path)
      await res.arrayBuffer()
      codes.set(res.status, (codes.get(res.status) ?? 0) + 1)
    }
  }))
  return codes
}

const INTERNALS = /127\.0\.0\.1|localhost|ECONN|EPIPE|:\d{4,5}\b|Error|at /

t.test('a table outage under polling: logged once as it starts and once as it ends; /health says why in fixed words', async t => {
  const db = await dynaliteProcess(t)
  const service = await startService(t, {
    DYNAMODB_ENDPOINT: db.endpoint,
    DYNAMODB_TABLE: uniqueTable(),
    COLLECTOR: 'off',
    LOG_LEVEL: 'info',
    // the helper keeps the output's last 20 KB: no request lines
    LOG_REQUESTS: 'off',
    STATUS_CACHE_TTL_MS: '0',
    HISTORY_CACHE_TTL_MS: '0'
  })
  const healthy = await fetch(`${service.base}/health`).then(async r => await r.json()) as { components: Record<string, unknown> }
  t.same(healthy.components.dynamodb, { status: 'up' })
  t.same(healthy.components.kafka, { status: 'disabled' })

  await db.kill('SIGKILL')
  const codes = await poll(service.base, ['/devices/pc-outage/status', '/devices/pc-outage', '/devices/?limit=5'], 600)
  t.equal(codes.get(503), 600, `every request during the outage is a 503 (${JSON.stringify([...codes])})`)

  const down = await fetch(`${service.base}/health`)
  const text = await down.text()
  t.equal(down.status, 503)
  t.same(JSON.parse(text).components.dynamodb, { status: 'down', reason: 'unreachable' }, 'a refused connection reads "unreachable"')
  t.notMatch(text, INTERNALS, `no address or error text in /health: ${text}`)

  await db.start()
  t.ok(await waitUntil(async () => (await fetch(`${service.base}/health`)).status === 200, 20_000), 'healthy again once the table is back')
  t.equal((await fetch(`${service.base}/devices/pc-outage/status`)).status, 404, 'requests reach the table again')

  const log = lines(service.server.output())
  const started = log.filter(l => l.msg.startsWith('DynamoDB outage started'))
  const ended = log.filter(l => l.msg === 'DynamoDB outage ended')
  const loud = log.filter(l => l.level >= 40)
  t.equal(started.length, 1, 'the start of the outage is logged once')
  t.equal(started[0]?.level, 50, 'at error')
  t.equal(ended.length, 1, 'its end is logged once')
  // concurrent status polls share one batched read: fewer table calls than requests
  t.ok(Number(ended[0]?.failed) >= 50, `the end line counts the failed calls (${String(ended[0]?.failed)})`)
  t.ok(loud.length <= 3, `at most the start and a few "continues" lines at warn or above, not one a request: ${loud.length} (${loud.map(l => l.msg).join(' | ')})`)
  t.notOk(log.some(l => l.msg === 'request failed'), 'no "request failed" line for a 503')

  // A table that accepts connections and never answers (SIGSTOP): /health still answers, in time.
  db.freeze()
  t.teardown(() => { db.thaw() })
  const started2 = Date.now()
  const frozen = await fetch(`${service.base}/health`)
  const frozenText = await frozen.text()
  t.equal(frozen.status, 503, 'a frozen table reads down')
  t.ok(Date.now() - started2 < 5000, `/health answered within 5 s (${Date.now() - started2} ms)`)
  t.match(JSON.parse(frozenText).components.dynamodb, { status: 'down', reason: /^(timeout|unreachable)$/ })
  t.notMatch(frozenText, INTERNALS, `no address or error text in /health: ${frozenText}`)
  db.thaw()
  t.ok(await waitUntil(async () => (await fetch(`${service.base}/health`)).status === 200, 20_000), 'healthy again once it answers')
  await sleep(100)

  service.server.child.kill('SIGTERM')
  t.equal(await service.server.exited, 0, 'exits 0 on SIGTERM')
})

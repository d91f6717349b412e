import t from 'tap'
import { build, dynalite, dynamoProxy } from '../helper.js'
import { AlertStore } from '../../alerts/store.js'
import type { Status } from '../../schemas/readings.js'

const status = (device: string): Status => ({
  msg: 'The device is stressed', device, kind: 'pc', stressed: true, probability: 0.9, loading_datetime: '2026-12-01T10:00:00.000Z', uuid: '0f8e5c2a-3b7d-4c1e-9a52-6d4b8e1f2a3c', age_seconds: 1, stale: false
})

t.test('GET /alerts: newest first, filtered by state, device and rule, paged by cursor', async t => {
  const db = await dynalite(t)
  const proxy = await dynamoProxy(t, db.endpoint)
  const app = await build(t, { env: { DYNAMODB_ENDPOINT: proxy.endpoint, DYNAMODB_TIMEOUT_MS: '500' } })
  const store = new AlertStore(app.dynamo.doc, app.config.DYNAMODB_TABLE)
  for (let i = 0; i < 7; i++) {
    const device = i % 2 === 0 ? 'pc1' : 'pc2'
    const since = new Date(Date.parse('2026-12-01T10:00:00.000Z') + i * 60_000).toISOString()
    const id = String(i).repeat(32)
    await store.recordEpisode({ id, rule: i < 5 ? 'stressed' : 'hot', device, state: 'firing', since, last_status: status(device) }, id)
    if (i < 2) await store.recordEpisode({ id, rule: 'stressed', device, state: 'resolved', since, resolved_at: '2026-12-01T11:00:00.000Z', last_status: status(device) }, id)
  }
  const all = (await app.inject('/alerts')).json() as { alerts: Array<{ id: string, state: string, device: string, rule: string, since: string }> }
  t.equal(all.alerts.length, 7)
  t.same(all.alerts.map(a => a.id[0]), ['6', '5', '4', '3', '2', '1', '0'], 'newest first')
  t.match(all.alerts[6], { state: 'resolved', resolved_at: '2026-12-01T11:00:00.000Z', last_status: { device: 'pc1' } })

  const firing = (await app.inject('/alerts?state=firing')).json() as typeof all
  t.same(firing.alerts.map(a => a.id[0]), ['6', '5', '4', '3', '2'])
  const pc1 = (await app.inject('/alerts?device=pc1&rule=stressed')).json() as typeof all
  t.same(pc1.alerts.map(a => a.id[0]), ['4', '2', '0'])
  const pc2 = (await app.inject('/alerts?device=pc2')).json() as typeof all
  t.same(pc2.alerts.map(a => a.id[0]), ['5', '3', '1'], 'a device alone')
  const hot = (await app.inject('/alerts?rule=hot')).json() as typeof all
  t.same(hot.alerts.map(a => a.id[0]), ['6', '5'], 'a rule alone')

  const seen: string[] = []
  let cursor: string | undefined
  do {
    const res = await app.inject(`/alerts?limit=2${cursor !== undefined ? `&cursor=${cursor}` : ''}`)
    t.equal(res.statusCode, 200)
    const page = res.json() as { alerts: Array<{ id: string }>, next_cursor?: string }
    seen.push(...page.alerts.map(a => a.id[0]!))
    cursor = page.next_cursor
  } while (cursor !== undefined)
  t.same(seen, ['6', '5', '4', '3', '2', '1', '0'], 'the pages join up')

  for (const q of ['state=open', 'device=no%20such', 'limit=0', 'limit=1001', 'cursor=bogus', 'rule=' + 'x'.repeat(80)]) {
    const res = await app.inject(`/alerts?${q}`)
    t.equal(res.statusCode, 400, `${q}: 400`)
    t.match(res.json(), { statusCode: 400, error: 'Bad Request' })
  }

  const doc = (await app.inject('/docs/json')).json() as { paths: Record<string, { get: { tags: string[], responses: Record<string, unknown> } }> }
  t.same(doc.paths['/alerts']?.get.tags, ['alerts'], 'in the OpenAPI document')
  t.ok(doc.paths['/alerts']?.get.responses['503'])

  proxy.fail = { status: 400, type: 'ProvisionedThroughputExceededException' }
  const down = await app.inject('/alerts')
  t.equal(down.statusCode, 503, 'the table down: 503')
  t.equal(down.json().message, 'Storage is unavailable, try again shortly')
})

import t from 'tap'
import { build, pcReading } from '../helper.js'
import { brokers, noBroker, unique } from '../kafka-helper.js'

// Issue 15 item 3: each role builds its own plugin set (app.ts ROLES), not a filtered whole.
// What a role serves is asked over its HTTP interface; what it does not build is looked for on the
// instance (a decorator it never made) and in /health's components.

const READ_SIDE = ['statusCache', 'historyCache', 'fleetView', 'eventStreams']
const WRITE_SIDE = ['ingest', 'predictor', 'kafkaConsumer']

async function serves (app: Awaited<ReturnType<typeof build>>, url: string): Promise<number> {
  return (await app.inject(url)).statusCode
}

t.test('ROLE=api builds the read side only: no consumer, no collector, no ingest', async t => {
  const app = await build(t, { env: { ROLE: 'api', KAFKA_BROKERS: brokers ?? '127.0.0.1:9', COLLECTOR: 'on' } })
  for (const name of READ_SIDE) t.ok(app.hasDecorator(name), `builds ${name}`)
  for (const name of WRITE_SIDE) t.notOk(app.hasDecorator(name), `does not build ${name}`)
  t.equal(await serves(app, '/devices/pc1/status'), 404, 'serves statuses (none stored yet)')
  t.equal(await serves(app, '/devices/'), 200, 'serves readings')
  t.equal(await serves(app, '/fleet'), 200, 'serves the fleet')
  t.equal(await serves(app, '/devices/pc1/events'), 404, 'serves device events (no status yet)')
  t.equal(await serves(app, '/docs/json'), 200, 'serves the OpenAPI document')
  const health = (await app.inject('/health')).json() as { components: Record<string, unknown> }
  t.same(Object.keys(health.components).sort(), ['dynamodb'], 'health names only what it built')
})

t.test('ROLE=ingest builds the write side and /health only: no caches, no read routes', { skip: noBroker }, async t => {
  const topic = unique('roles')
  const app = await build(t, { env: { ROLE: 'ingest', KAFKA_BROKERS: brokers!, KAFKA_TOPICS: topic, KAFKA_GROUP_ID: unique('roles') } })
  for (const name of READ_SIDE) t.notOk(app.hasDecorator(name), `does not build ${name}`)
  for (const name of WRITE_SIDE) t.ok(app.hasDecorator(name), `builds ${name}`)
  t.ok(app.kafkaConsumer !== null, 'with a consumer')
  for (const url of ['/devices/pc1/status', '/devices/', '/devices/pc1', '/fleet', '/fleet/events', '/devices/pc1/events', '/docs/json', '/docs', '/']) {
    t.equal(await serves(app, url), 404, `${url} is not served`)
  }
  const health = await app.inject('/health')
  t.same(Object.keys(health.json().components).sort(), ['collector', 'dynamodb', 'kafka'])
  // It still ingests: what it stores is in the table for the API tasks to read.
  const result = await app.ingest.ingest([pcReading({ device: 'pc-ingest-role' })])
  t.equal(result.stored, 1, 'stores readings')
})

t.test('ROLE=all builds both, and a reading it stores is its status at once', async t => {
  const app = await build(t, { env: { ROLE: 'all', STATUS_CACHE_TTL_MS: '60000', HISTORY_CACHE_TTL_MS: '60000' } })
  for (const name of [...READ_SIDE, ...WRITE_SIDE]) t.ok(app.hasDecorator(name), `builds ${name}`)
  t.equal(await serves(app, '/devices/pc-all/status'), 404)
  t.same((await app.inject('/devices/pc-all')).json(), [], 'no readings yet')
  await app.ingest.ingest([pcReading({ device: 'pc-all' })])
  t.equal(await serves(app, '/devices/pc-all/status'), 200, 'the cached 404 gave way to the stored reading (live read model)')
  t.equal((await app.inject('/devices/pc-all')).json().length, 1, 'and the cached first page too')
  t.same((await app.inject('/fleet')).json().devices.map((d: { device: string }) => d.device), ['pc-all'], 'and the fleet')
  await app.ingest.ingest([pcReading({ device: 'pc-all-2' })])
  t.equal((await app.inject('/fleet')).json().counts.total, 2, 'the fleet view moved with it (TTL 60 s)')
  t.equal(await serves(app, '/docs/json'), 200)
})

import t from 'tap'
import { build } from '../helper.js'

t.test('every documented route is registered (a silent autoload miss fails here)', async t => {
  const app = await build(t)
  for (const [method, url] of [
    ['GET', '/'], ['GET', '/docs'], ['GET', '/docs/json'], ['GET', '/health'],
    ['GET', '/devices/'], ['GET', '/devices/:device'], ['GET', '/devices/:device/status'],
    // routes/devices/export.ts, beside the folder's index.ts
    ['GET', '/devices/:device/export'], ['GET', '/devices/:device/events'],
    // routes/devices/stats.ts
    ['GET', '/devices/:device/stats'],
    // routes/fleet/: index.ts and events.ts
    ['GET', '/fleet'], ['GET', '/fleet/events']
  ] as const) {
    t.ok(app.hasRoute({ method, url }), `${method} ${url}`)
  }
})

t.test('GET / is the dashboard for browsers and an index of the API for other clients, both 200; the docs answer 200', async t => {
  const app = await build(t)
  const res = await app.inject('/')
  t.equal(res.statusCode, 200)
  t.match(res.json(), { docs: '/docs', openapi: '/docs/json', fleet: '/fleet' })
  const html = await app.inject({ url: '/', headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } })
  t.equal(html.statusCode, 200)
  t.match(html.headers['content-type'], /text\/html/)
  t.match(html.body, /<table class="fleet">/)
  for (const asset of ['/ui/assets/fleet.js', '/ui/assets/style.css', '/ui/vendor/uplot/uPlot.iife.min.js']) {
    t.equal((await app.inject(asset)).statusCode, 200, `${asset} is served by the service itself`)
  }
  t.equal((await app.inject('/ui/devices/pc1')).statusCode, 200, 'a device page is a real URL')
  t.equal((await app.inject('/ui/devices/bad%20id!')).statusCode, 400, 'a bad device id is a 400')
  const docs = await app.inject('/docs')
  t.ok([200, 302].includes(docs.statusCode))
  const page = await app.inject(docs.statusCode === 302 ? String(docs.headers.location) : '/docs')
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
})

t.test('the OpenAPI document is generated from the route schemas, with the device models as components', async t => {
  const app = await build(t)
  const res = await app.inject('/docs/json')
  t.equal(res.statusCode, 200)
  const doc = res.json()
  t.match(doc.openapi, /^3\./)
  for (const name of ['PcReading', 'RaspberryReading', 'Reading', 'Status', 'Error', 'ThrottledFlags', 'Health']) {
    t.ok(doc.components.schemas[name], `component ${name}`)
  }
  t.match(doc.components.schemas.PcReading.properties.TemperatureCPUPackage.description, /°C/)
  t.match(doc.components.schemas.PcReading.properties.PowerCPUPackage.description, /W/)
  for (const path of ['/devices', '/devices/{device}', '/devices/{device}/status', '/health']) {
    const op = doc.paths[path]?.get
    t.ok(op, `path ${path}`)
    t.ok(op.tags.length > 0, `${path} has tags`)
    t.ok(op.responses['200'], `${path} documents 200`)
  }
  t.ok(doc.paths['/devices/{device}/status'].get.responses['404'], 'status documents 404')
  t.ok(doc.paths['/devices/{device}'].get.responses['400'], 'device list documents 400')
  t.notOk(doc.paths['/'], 'the redirect is not documented')
})

t.test('unknown routes are JSON 404s', async t => {
  const app = await build(t)
  const res = await app.inject('/nope')
  t.equal(res.statusCode, 404)
  t.same(Object.keys(res.json()).sort(), ['error', 'message', 'statusCode'])
})

t.test('the ingest role serves only /health', async t => {
  const app = await build(t, { env: { ROLE: 'ingest', COLLECTOR: 'on' }, sensorReader: { kind: 'pc', device: 'x', read: async () => { throw new Error('no sensors in this test') } } })
  t.equal((await app.inject('/health')).statusCode, 200)
  t.equal((await app.inject('/devices/')).statusCode, 404)
})

t.test('the api role runs neither the Kafka consumer nor the collector, even with brokers configured', async t => {
  const app = await build(t, { env: { ROLE: 'api', KAFKA_BROKERS: '127.0.0.1:1', COLLECTOR: 'on' } })
  const health = await app.inject('/health')
  t.equal(health.statusCode, 200)
  t.same(Object.keys(health.json().components), ['dynamodb'], 'neither is built, so /health does not name them')
  t.notOk(app.hasDecorator('kafkaConsumer'))
  t.equal((await app.inject('/devices/')).statusCode, 200)
})

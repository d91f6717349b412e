import t from 'tap'
import { request, type IncomingMessage } from 'node:http'
import { connect } from 'node:net'
import { once } from 'node:events'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { build, dynaliteProcess, pcReading, spawnServer, uniqueTable } from '../helper.js'
import { brokers, freePort, noBroker, produce, producer, unique } from '../kafka-helper.js'
import type { Reading } from '../../schemas/readings.js'

// GET /fleet/events and GET /devices/{device}/events (issue 16): server-sent events fed by the
// fleet view, over real HTTP.

interface SseEvent { id?: string, event?: string, data?: string }
interface Subscriber {
  res: IncomingMessage
  events: SseEvent[]
  comments: string[]
  ended: Promise<void>
  close: () => void
}

/** A subscriber that reads the stream as it comes, parsing events and comment lines. */
async function subscribe (port: number, path: string, headers: Record<string, string> = {}): Promise<Subscriber> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { accept: 'text/event-stream', ...headers } }, res => {
      const events: SseEvent[] = []
      const comments: string[] = []
      let buffer = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buffer += chunk
        let end: number
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const event: SseEvent = {}
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim())
            else {
              const colon = line.indexOf(':')
              const field = line.slice(0, colon) as keyof SseEvent
              event[field] = line.slice(colon + 1).replace(/^ /, '')
            }
          }
          if (Object.keys(event).length > 0) events.push(event)
        }
      })
      const ended = new Promise<void>(resolve => { res.on('close', resolve); res.on('end', resolve) })
      resolve({ res, events, comments, ended, close: () => { req.destroy() } })
    })
    req.on('error', reject)
    req.end()
  })
}

async function until (what: string, check: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

async function listening (app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as { port: number }).port
}

const statusOf = (e: SseEvent): any => JSON.parse(e.data!)

t.test('/fleet/events: an event with an id for each newer reading, the status as /status serves it; root hooks\' headers', async t => {
  const app = await build(t, { env: { STATUS_CACHE_TTL_MS: '100' } })
  await app.ingest.ingest([pcReading({ device: 'pc-old' })])
  const port = await listening(app)
  const sub = await subscribe(port, '/fleet/events', { 'x-request-id': 'sse-test-1' })
  t.equal(sub.res.statusCode, 200)
  t.equal(sub.res.headers['content-type'], 'text/event-stream; charset=utf-8')
  t.equal(sub.res.headers['cache-control'], 'no-cache, no-transform')
  t.equal(sub.res.headers['x-request-id'], 'sse-test-1', 'the header the root onRequest hook set')
  await sleep(300) // the baseline read: devices known before are no event
  t.equal(sub.events.length, 0, 'no event for what has not changed')

  const reading = pcReading({ device: 'pc1' })
  await app.ingest.ingest([reading])
  await until('the event', () => sub.events.length >= 1)
  const [event] = sub.events
  t.equal(event!.event, 'status')
  t.match(event!.id, /^\d+$/, 'an id')
  const status = statusOf(event!)
  const served = (await app.inject('/devices/pc1/status')).json()
  t.same({ ...status, age_seconds: 0 }, { ...served, age_seconds: 0 }, 'data is the status JSON')
  t.equal(status.uuid, reading.uuid)

  await app.ingest.ingest([pcReading({ device: 'pc1' }), pcReading({ device: 'pc2' })])
  await until('two more events', () => sub.events.length >= 3)
  await sleep(300) // the next reads of the index find nothing new: no repeated event
  t.equal(sub.events.length, 3, 'each change once')
  const ids = sub.events.map(e => Number(e.id))
  t.ok(ids[0]! < ids[1]! && ids[1]! < ids[2]!, 'ids grow')
  t.same(sub.events.slice(1).map(e => statusOf(e).device).sort(), ['pc1', 'pc2'])
  sub.close()
  await until('the subscriber gone', () => app.fleetView.subscribers === 0 && app.eventStreams.size === 0)
})

t.test('/devices/{device}/events: that device\'s events only; 404 for a device without status; 400 for a bad id', async t => {
  const app = await build(t, { env: { STATUS_CACHE_TTL_MS: '100' } })
  await app.ingest.ingest([pcReading({ device: 'pc1' })])
  const port = await listening(app)
  const missing = await app.inject('/devices/nobody/events')
  t.equal(missing.statusCode, 404)
  t.same(missing.json(), { statusCode: 404, error: 'Not Found', message: 'No readings for device "nobody"' })
  t.equal((await app.inject('/devices/bad%20id/events')).statusCode, 400)
  const sub = await subscribe(port, '/devices/pc1/events')
  t.equal(sub.res.statusCode, 200)
  await sleep(200)
  await app.ingest.ingest([pcReading({ device: 'pc2' }), pcReading({ device: 'pc1', LoadCPUTotal: 99 })])
  await until('the event', () => sub.events.length >= 1)
  await sleep(200)
  t.same(sub.events.map(e => statusOf(e).device), ['pc1'], 'only pc1')
  sub.close()
})

t.test('a heartbeat comment every SSE_HEARTBEAT_SECONDS; a device turning stale is an event', async t => {
  const app = await build(t, { env: { STATUS_CACHE_TTL_MS: '100', SSE_HEARTBEAT_SECONDS: '0.2', STALE_AFTER_SECONDS: '1' } })
  const port = await listening(app)
  const sub = await subscribe(port, '/fleet/events')
  await until('two heartbeats', () => sub.comments.filter(c => c === 'heartbeat').length >= 2, 3000)
  await sleep(150)
  await app.ingest.ingest([pcReading({ device: 'pc1' })])
  await until('the reading', () => sub.events.length >= 1)
  t.equal(statusOf(sub.events[0]!).stale, false)
  await until('the turn to stale', () => sub.events.length >= 2, 5000)
  const stale = statusOf(sub.events[1]!)
  t.equal(stale.stale, true)
  t.equal(stale.msg, 'The device is not reporting')
  t.equal(stale.device, 'pc1')
  sub.close()
})

t.test('a client that does not read is dropped once SSE_BUFFER_KB is unsent; one that reads stays', async t => {
  const app = await build(t, { env: { STATUS_CACHE_TTL_MS: '60000', SSE_BUFFER_KB: '16' } })
  const port = await listening(app)
  const reader = await subscribe(port, '/fleet/events')
  // a client that sends its request and never reads a byte
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.pause()
  socket.write('GET /fleet/events HTTP/1.1\r\nHost: x\r\n\r\n')
  await until('both streams open', () => app.eventStreams.size === 2)
  const closed = once(socket, 'close')
  let n = 0
  const base = Date.now() - 1000
  while (app.eventStreams.size === 2 && n < 400_000) {
    // readings as this process stores them (live read model): an event each
    const batch: Reading[] = Array.from({ length: 500 }, () => ({
      uuid: randomUUID(), device: `d${n % 1000}`, kind: 'pc', loading_datetime: new Date(base + n++).toISOString(), prediction: 0, probability: 0.25
    } as unknown as Reading))
    app.fleetView.observe(batch)
    await sleep(1)
  }
  t.equal(app.eventStreams.size, 1, `the silent client dropped after ${n} events`)
  t.equal(app.eventStreams.droppedCount, 1)
  socket.resume()
  await closed
  await until('the reader has every event', () => reader.events.length === n, 30_000)
  t.equal(reader.events.length, n, 'the reading client got every event')
  reader.close()
})

t.test('the table down: the stream stays open with heartbeats and resumes when the table answers (ROLE=api)', async t => {
  const db = await dynaliteProcess(t)
  const table = uniqueTable()
  const env = { DYNAMODB_ENDPOINT: db.endpoint, DYNAMODB_TABLE: table, STATUS_CACHE_TTL_MS: '100', DYNAMODB_TIMEOUT_MS: '500', SSE_HEARTBEAT_SECONDS: '0.2' }
  const writer = await build(t, { env })
  const api = await build(t, { env: { ...env, ROLE: 'api' } })
  await writer.ingest.ingest([pcReading({ device: 'pc1' })])
  const port = await listening(api)
  const sub = await subscribe(port, '/fleet/events')
  await sleep(300)
  await writer.ingest.ingest([pcReading({ device: 'pc1' })])
  await until('the first event', () => sub.events.length === 1)
  await db.kill()
  const beats = sub.comments.length
  await sleep(1500)
  t.ok(sub.comments.length >= beats + 4, 'heartbeats go on while the table is down')
  t.equal(sub.res.destroyed, false, 'the stream is open')
  await db.start()
  const reading = pcReading({ device: 'pc2' })
  await writer.ingest.ingest([reading])
  await until('the event after the outage', () => sub.events.some(e => statusOf(e).uuid === reading.uuid))
  t.pass('events resume')
  sub.close()
})

t.test('closing the server ends the streams: shutdown is not held up', async t => {
  const app = await build(t, { env: { STATUS_CACHE_TTL_MS: '100' } })
  await app.ingest.ingest([pcReading({ device: 'pc1' })])
  const port = await listening(app)
  const subs = await Promise.all([subscribe(port, '/fleet/events'), subscribe(port, '/devices/pc1/events')])
  await until('both open', () => app.eventStreams.size === 2)
  const started = Date.now()
  await app.close()
  t.ok(Date.now() - started < 2000, `closed in ${Date.now() - started} ms`)
  await Promise.all(subs.map(s => s.ended))
  t.equal(app.fleetView.subscribers, 0)
})

t.test('two processes: a reading ingested through Kafka by ROLE=ingest is an event at a ROLE=api subscriber', { skip: noBroker }, async t => {
  const db = await dynaliteProcess(t)
  const table = uniqueTable()
  const topic = unique('fleet-events')
  const common = { DYNAMODB_ENDPOINT: db.endpoint, DYNAMODB_TABLE: table, HOST: '127.0.0.1' }
  const [ingestPort, apiPort] = [await freePort(), await freePort()]
  const ingest = spawnServer(t, { ...common, ROLE: 'ingest', PORT: String(ingestPort), KAFKA_BROKERS: brokers!, KAFKA_TOPICS: topic, KAFKA_GROUP_ID: unique('fleet-events'), COLLECTOR: 'off' })
  const api = spawnServer(t, { ...common, ROLE: 'api', PORT: String(apiPort), STATUS_CACHE_TTL_MS: '200' })
  const up = async (port: number, path: string): Promise<boolean> => await fetch(`http://127.0.0.1:${port}${path}`).then(r => r.status === 200, () => false)
  const deadline = Date.now() + 60_000
  while (!(await up(ingestPort, '/health')) || !(await up(apiPort, '/fleet'))) {
    if (Date.now() > deadline) throw new Error(`not up: ${ingest.output()} ${api.output()}`)
    await sleep(200)
  }
  t.equal((await fetch(`http://127.0.0.1:${ingestPort}/fleet`)).status, 404, 'the ingest process serves no fleet')
  const sub = await subscribe(apiPort, '/fleet/events')
  t.equal(sub.res.statusCode, 200)
  await sleep(500)
  const p = await producer(t)
  const reading = pcReading({ device: 'pc-kafka' })
  await produce(p, topic, reading, 'pc-kafka')
  await until('the event at the api process', () => sub.events.some(e => statusOf(e).uuid === reading.uuid), 45_000)
  const status = statusOf(sub.events.find(e => statusOf(e).uuid === reading.uuid)!)
  t.equal(status.device, 'pc-kafka')
  t.equal(status.stale, false)
  const fleet = await (await fetch(`http://127.0.0.1:${apiPort}/fleet`)).json() as { counts: { total: number } }
  t.equal(fleet.counts.total, 1)
  sub.close()
})

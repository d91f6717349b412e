import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { gunzipSync } from 'node:zlib'
import { GetCommand } from '@aws-sdk/lib-dynamodb'
import { build, dynalite, dynamoClient, dynamoProxy, overHttp, pcReading, uniqueTable } from '../helper.js'

// Two API tasks on one table: `writer` stores readings, `poller` answers pollers through a proxy
// that counts (and can break) its DynamoDB calls. The poller never stores anything, so all it
// knows comes from the table, as on an ECS service whose ingest runs in other tasks. Pollers and
// clients ask over real HTTP: a URL's first request reads the table, its next ones are answered
// from memory, and every property here must hold for both.
async function pair (t: Parameters<typeof build>[0], ttlMs: number) {
  const db = await dynalite(t)
  const table = uniqueTable()
  const writer = await build(t, { env: { DYNAMODB_ENDPOINT: db.endpoint, DYNAMODB_TABLE: table } })
  const proxy = await dynamoProxy(t, db.endpoint)
  const pollerApp = await build(t, {
    env: { DYNAMODB_ENDPOINT: proxy.endpoint, DYNAMODB_TABLE: table, STATUS_CACHE_TTL_MS: String(ttlMs), HISTORY_CACHE_TTL_MS: String(ttlMs) }
  })
  const poller = await overHttp(t, pollerApp)
  proxy.calls = {}
  // `pollerApp.inject`: requests that reach the router in one turn of the event loop (over HTTP,
  // requests sent at once arrive over a few turns, so a few batched reads)
  return { db, table, writer, poller, pollerApp, proxy }
}

const calls = (proxy: { calls: Record<string, number> }, op: string): number => proxy.calls[op] ?? 0

t.test('N concurrent pollers of one device cost one table read', async t => {
  const { writer, poller, proxy } = await pair(t, 60_000)
  const reading = pcReading()
  await writer.ingest.ingest([reading])
  const answers = await Promise.all(Array.from({ length: 100 }, () => poller.inject('/devices/pc1/status')))
  t.ok(answers.every(a => a.statusCode === 200 && a.json().uuid === reading.uuid), '100 answers, all right')
  t.equal(calls(proxy, 'BatchGetItem'), 1, 'one batched read')
  t.equal(calls(proxy, 'GetItem'), 0, 'no single reads')
})

t.test('pollers of many devices cost one batched read per TTL, and see new readings within two TTLs', async t => {
  const ttl = 300
  const { writer, poller, pollerApp, proxy } = await pair(t, ttl)
  const devices = Array.from({ length: 40 }, (_, i) => `dev${i}`)
  await writer.ingest.ingest(devices.map(device => pcReading({ device }, 1)))
  const cold = await Promise.all(devices.map(d => pollerApp.inject(`/devices/${d}/status`)))
  t.ok(cold.every(a => a.statusCode === 200))
  t.equal(calls(proxy, 'BatchGetItem'), 1, 'the first requests of 40 devices at once: one read')
  proxy.calls = {}
  let requests = 0
  let wrong = 0
  const started = Date.now()
  const deadline = started + 5 * ttl
  // Each worker polls its own five devices in turn: every device is asked for several times a TTL
  // (in use) however slow the machine, not 8 at a time along the whole list.
  await Promise.all(Array.from({ length: 8 }, async (_, worker) => {
    for (let i = 0; Date.now() < deadline; i++) {
      const res = await poller.inject(`/devices/${devices[(worker + 8 * i) % devices.length]!}/status`)
      requests++
      if (res.statusCode !== 200) wrong++
    }
  }))
  const elapsed = Date.now() - started
  const batches = calls(proxy, 'BatchGetItem')
  t.equal(wrong, 0, `${requests} answers, all 200`)
  t.equal(calls(proxy, 'GetItem'), 0, 'no single reads')
  // Entries in use are refreshed together, once a TTL (plus the read's own time).
  t.ok(batches <= Math.ceil(elapsed / ttl) + 2, `${batches} BatchGetItem calls in ${elapsed} ms for 40 devices`)
  t.ok(requests > 20 * batches, `${requests} requests, ${batches} table calls`)

  const newer = pcReading({ device: 'dev7' })
  await writer.ingest.ingest([newer])
  const seenBy = Date.now() + 2 * ttl + 100
  let uuid
  while (Date.now() < seenBy) {
    uuid = (await poller.inject('/devices/dev7/status')).json().uuid
    if (uuid === newer.uuid) break
    await sleep(20)
  }
  t.equal(uuid, newer.uuid, 'another task\'s reading shows within two TTLs')
})

t.test('history pollers of many devices cost one batched revalidation per TTL, and no query while nothing changes', async t => {
  const ttl = 300
  const { writer, poller, proxy } = await pair(t, ttl)
  const devices = Array.from({ length: 40 }, (_, i) => `hist${i}`)
  await writer.ingest.ingest(devices.flatMap(device => [pcReading({ device }, 2), pcReading({ device }, 1)]))
  // First pages read in four groups over a TTL: the groups' pages and statuses have their own ages.
  for (let g = 0; g < 4; g++) {
    const cold = await Promise.all(devices.slice(g * 10, g * 10 + 10).map(d => poller.inject(`/devices/${d}?limit=10`)))
    t.ok(cold.every(a => a.statusCode === 200 && a.json().length === 2))
    await sleep(ttl / 4)
  }
  t.equal(calls(proxy, 'Query'), 40, 'one query per device for the first pages')
  let requests = 0
  let wrong = 0
  async function poll (ms: number): Promise<void> {
    const deadline = Date.now() + ms
    // each worker its own five devices in turn, as in the status test above
    await Promise.all(Array.from({ length: 8 }, async (_, worker) => {
      for (let i = 0; Date.now() < deadline; i++) {
        const res = await poller.inject(`/devices/${devices[(worker + 8 * i) % devices.length]!}?limit=10`)
        requests++
        if (res.statusCode !== 200) wrong++
        if (i % 7 === 0) await sleep(1)
      }
    }))
  }
  // Two TTLs to fall in step, then the steady state.
  await poll(2 * ttl)
  proxy.calls = {}
  const started = Date.now()
  await poll(5 * ttl)
  const elapsed = Date.now() - started
  const batches = calls(proxy, 'BatchGetItem')
  t.equal(wrong, 0, `${requests} answers, all 200`)
  t.equal(calls(proxy, 'Query'), 0, 'nothing changed: no query')
  // Pages in use are revalidated together with the statuses in one batched read, which starts once
  // an entry in use is past half its TTL: at most one read per half TTL (plus the read's own time)
  // on a slow machine, against 40 a TTL if each device were read alone.
  t.ok(batches <= Math.ceil(elapsed / (ttl / 2)) + 2, `${batches} BatchGetItem calls in ${elapsed} ms for 40 histories`)
  t.ok(batches >= 2, 'revalidated')
})

t.test('an unchanged history is revalidated without a query; newer and late readings show within two TTLs', async t => {
  const ttl = 200
  const { writer, poller, proxy } = await pair(t, ttl)
  const old = Array.from({ length: 5 }, (_, i) => pcReading({}, 10 - i)) // 10 … 6 minutes ago
  await writer.ingest.ingest(old)
  const first = await poller.inject('/devices/pc1?limit=3')
  t.equal(first.statusCode, 200)
  t.same(first.json().map((r: { uuid: string }) => r.uuid), old.slice(2).reverse().map(r => r.uuid))
  t.match(first.headers.link, /cursor=/, 'the cached page keeps its Link header')
  t.equal(calls(proxy, 'Query'), 1)

  const until = Date.now() + 5 * ttl
  while (Date.now() < until) {
    const res = await poller.inject('/devices/pc1?limit=3')
    t.equal(res.body, first.body)
    await sleep(10)
  }
  t.equal(calls(proxy, 'Query'), 1, 'five TTLs of polling an unchanged history: still one query')
  t.ok(calls(proxy, 'BatchGetItem') >= 3, 'revalidated by status reads')

  async function waitFor (uuid: string): Promise<boolean> {
    const by = Date.now() + 2 * ttl + 150
    while (Date.now() < by) {
      const items = (await poller.inject('/devices/pc1?limit=3')).json() as Array<{ uuid: string }>
      if (items.some(r => r.uuid === uuid)) return true
      await sleep(10)
    }
    return false
  }
  // Late: older than the status (which does not move), newer than the page's oldest item.
  const late = pcReading({ loading_datetime: new Date(Date.parse(String(old[3]!.loading_datetime)) - 1000).toISOString() })
  await writer.ingest.ingest([late])
  t.equal((await writer.inject('/devices/pc1/status')).json().uuid, old[4]!.uuid, 'the status stays on the newest reading')
  t.ok(await waitFor(late.uuid as string), 'a late reading inside the page shows within two TTLs')
  const newest = pcReading()
  await writer.ingest.ingest([newest])
  t.ok(await waitFor(newest.uuid as string), 'a newer reading shows within two TTLs')
})

t.test('a late reading changes the status item\'s revision, never its reading', async t => {
  const { db, table, writer } = await pair(t, 1000)
  const client = await dynamoClient(t, db.endpoint)
  const status = async () => (await client.doc.send(new GetCommand({ TableName: table, Key: { device: 'pc1', sk: 'status' } }))).Item!
  const newest = pcReading({}, 1)
  await writer.ingest.ingest([newest])
  const before = await status()
  t.type(before.rev, 'string')
  await writer.ingest.ingest([pcReading({}, 2)])
  const after = await status()
  t.equal(after.uuid, newest.uuid)
  t.equal(after.latest_sk, before.latest_sk)
  t.not(after.rev, before.rev, 'revision moved')
  // redelivered: a duplicate (one reading per uuid), nothing changed, so the revision stays
  await writer.ingest.ingest([newest])
  t.equal((await status()).rev, after.rev, 'an identical redelivery leaves the revision as it is')
})

t.test('history first pages carry an ETag: 304 until a reading of the device is stored', async t => {
  const { writer, poller } = await pair(t, 100)
  await writer.ingest.ingest([pcReading({}, 2)])
  const first = await poller.inject('/devices/pc1')
  const etag = first.headers.etag as string
  t.match(etag, /^W\/".+"$/)
  t.equal(first.headers['cache-control'], 'no-cache')
  t.match(first.headers['content-type'], /^application\/json/)
  const again = await poller.inject({ url: '/devices/pc1', headers: { 'if-none-match': etag } })
  t.equal(again.statusCode, 304)
  t.equal(again.body, '')
  await writer.ingest.ingest([pcReading({}, 1)])
  await sleep(350)
  await poller.inject('/devices/pc1') // between one and two TTLs: answered, revalidated behind
  await sleep(50)
  const changed = await poller.inject({ url: '/devices/pc1', headers: { 'if-none-match': etag } })
  t.equal(changed.statusCode, 200)
  t.equal(changed.json().length, 2)
  t.not(changed.headers.etag, etag)
  const paged = await poller.inject('/devices/pc1?limit=1')
  const cursor = /cursor=([^>&]+)/.exec(paged.headers.link as string)![1]!
  const next = await poller.inject(`/devices/pc1?limit=1&cursor=${cursor}`)
  t.equal(next.statusCode, 200)
  t.equal(next.headers.etag, undefined, 'pages behind a cursor are read once, without an ETag')
})

t.test('If-None-Match is matched as RFC 9110 says: lists, `*`, weak comparison; on both device routes', async t => {
  const app = await build(t, { env: { HISTORY_CACHE_TTL_MS: '60000', STATUS_CACHE_TTL_MS: '60000' } })
  const client = await overHttp(t, app)
  await app.ingest.ingest([pcReading({}, 2), pcReading({}, 1)])
  for (const url of ['/devices/pc1', '/devices/pc1/status']) {
    const etag = (await client.inject(url)).headers.etag as string
    t.match(etag, /^W\/"[^"]+"$/, `${url}: a weak tag`)
    const strong = etag.slice(2)
    const cases: Array<[string, number]> = [
      [etag, 304],
      [`W/"other", ${etag}`, 304],
      [`${etag},W/"other"`, 304],
      [strong, 304], // weak comparison: the same opaque tag
      ['*', 304],
      ['W/"other"', 200],
      [`W/"other", "${strong.slice(1, -1)}x"`, 200],
      ['', 200]
    ]
    // twice each: the URL's first request reads the table, the next is answered from memory
    for (let round = 0; round < 2; round++) {
      for (const [header, code] of cases) {
        const res = await client.inject({ url, headers: { 'if-none-match': header } })
        t.equal(res.statusCode, code, `${url} If-None-Match: ${header} → ${code}`)
        t.equal(res.rawPayload.length === 0, code === 304)
      }
    }
  }
})

t.test('history first pages are sent gzip-coded to clients that accept it, and as before to the others', async t => {
  const db = await dynalite(t)
  const app = await build(t, { env: { DYNAMODB_ENDPOINT: db.endpoint } })
  const client = await overHttp(t, app)
  await app.ingest.ingest(Array.from({ length: 30 }, (_, i) => pcReading({}, i + 1)))
  const url = '/devices/pc1?limit=20'
  const plain = await client.inject(url)
  t.equal(plain.statusCode, 200)
  t.equal(plain.json().length, 20)
  t.equal(plain.headers['content-encoding'], undefined, 'no Accept-Encoding: identity, as before')
  t.equal(plain.headers.vary, 'accept-encoding')
  for (const accept of ['gzip', 'gzip, deflate, br', 'br;q=1.0, gzip;q=0.8', '*', 'x-gzip', 'GZIP;Q=0.5', 'deflate;q=0, gzip']) {
    const res = await client.inject({ url, headers: { 'accept-encoding': accept } })
    t.equal(res.statusCode, 200)
    t.equal(res.headers['content-encoding'], 'gzip', `"${accept}": gzip`)
    t.equal(gunzipSync(res.rawPayload).toString(), plain.body, `"${accept}": the same JSON`)
    t.ok(res.rawPayload.length * 3 < plain.rawPayload.length, `"${accept}": ${res.rawPayload.length} bytes instead of ${plain.rawPayload.length}`)
    t.equal(Number(res.headers['content-length']), res.rawPayload.length)
    t.equal(res.headers.etag, plain.headers.etag, 'the same (weak) ETag')
    t.equal(res.headers.vary, 'accept-encoding')
    t.equal(res.headers.link, plain.headers.link)
  }
  for (const accept of ['gzip;q=0', 'br, deflate', 'identity', '*;q=0', 'gzip;q=0, *', 'gzip;q=abc', '']) {
    const res = await client.inject({ url, headers: { 'accept-encoding': accept } })
    t.equal(res.headers['content-encoding'], undefined, `"${accept}": identity`)
    t.equal(res.body, plain.body)
  }
  const notModified = await client.inject({ url, headers: { 'accept-encoding': 'gzip', 'if-none-match': plain.headers.etag as string } })
  t.equal(notModified.statusCode, 304, 'If-None-Match still answers 304')
  t.equal(notModified.rawPayload.length, 0)
  const small = await client.inject({ url: '/devices/pc1?limit=1', headers: { 'accept-encoding': 'gzip' } })
  t.equal(small.headers['content-encoding'], undefined, 'a page under 1 KB is sent as it is')
  t.equal(small.json().length, 1)
  const next = /<([^>]+)>/.exec(plain.headers.link as string)![1]!
  const behindCursor = await client.inject({ url: next, headers: { 'accept-encoding': 'gzip' } })
  t.equal(behindCursor.headers['content-encoding'], undefined, 'pages behind a cursor are not cached, nor compressed')
  t.equal(behindCursor.json().length, 10)
})

t.test('status reads DynamoDB leaves unprocessed (throttling) are asked for again', async t => {
  const { writer, pollerApp, proxy } = await pair(t, 60_000)
  const devices = ['a1', 'a2', 'a3']
  await writer.ingest.ingest(devices.map(device => pcReading({ device })))
  let throttled = 0
  proxy.rewrite = (operation, body, request) => {
    if (operation !== 'BatchGetItem' || throttled++ > 0) return body
    // The first answer: every key unprocessed, as DynamoDB does when the table throttles (it
    // hands back the request's KeysAndAttributes, projection included).
    const [table, keys] = Object.entries(request.RequestItems as Record<string, unknown>)[0]!
    return { Responses: { [table]: [] }, UnprocessedKeys: { [table]: keys } }
  }
  const answers = await Promise.all(devices.map(d => pollerApp.inject(`/devices/${d}/status`)))
  t.same(answers.map(a => a.statusCode), [200, 200, 200])
  t.same(answers.map(a => a.json().device), devices)
  t.equal(calls(proxy, 'BatchGetItem'), 2, 'the unprocessed keys were read again')
})

t.test('DynamoDB down: cached answers for up to two TTLs, then 503s; back when it is', async t => {
  const ttl = 300
  const { writer, poller, proxy } = await pair(t, ttl)
  await writer.ingest.ingest([pcReading()])
  t.equal((await poller.inject('/devices/pc1/status')).statusCode, 200)
  t.equal((await poller.inject('/devices/pc1')).statusCode, 200)
  const down = Date.now()
  proxy.fail = { status: 400, type: 'ProvisionedThroughputExceededException' }
  await sleep(ttl + 20)
  t.equal((await poller.inject('/devices/pc1/status')).statusCode, 200, 'past one TTL: still answered from memory')
  t.equal((await poller.inject('/devices/pc1')).statusCode, 200)
  await sleep(Math.max(0, down + 2 * ttl + 50 - Date.now()))
  for (const url of ['/devices/pc1/status', '/devices/pc1']) {
    const res = await poller.inject(url)
    t.equal(res.statusCode, 503, `${url} past two TTLs`)
    t.equal(res.json().message, 'Storage is unavailable, try again shortly')
  }
  proxy.fail = undefined
  t.equal((await poller.inject('/devices/pc1/status')).statusCode, 200, 'recovered')
  t.equal((await poller.inject('/devices/pc1')).statusCode, 200)
})

t.test('cached pages keep to HISTORY_CACHE_MB: past it the page read longest ago goes', async t => {
  for (const [mb, queries] of [['32', 2], ['0.008', 3]] as const) {
    const db = await dynalite(t)
    const proxy = await dynamoProxy(t, db.endpoint)
    const app = await build(t, { env: { DYNAMODB_ENDPOINT: proxy.endpoint, HISTORY_CACHE_MB: mb, HISTORY_CACHE_TTL_MS: '60000', STATUS_CACHE_TTL_MS: '60000' } })
    const client = await overHttp(t, app)
    // Two devices, each page ~5 KB: an 8 KB budget holds one of them.
    await app.ingest.ingest(['a1', 'a2'].flatMap(device => Array.from({ length: 20 }, (_, i) => pcReading({ device }, i + 1))))
    app.historyCache.invalidate(['a1', 'a2']) // this process's own writes drop pages anyway; start clean
    proxy.calls = {}
    for (const device of ['a1', 'a2', 'a1']) t.equal((await client.inject(`/devices/${device}?limit=20`)).json().length, 20)
    t.equal(calls(proxy, 'Query'), queries, `HISTORY_CACHE_MB=${mb}: ${queries} queries for a1, a2, a1`)
    t.ok(app.historyCache.size.bytes <= Number(mb) * 1024 * 1024, `${app.historyCache.size.bytes} bytes kept`)
  }
})

t.test('a cached page\'s Link is made of its own query, not of the first client\'s URL', async t => {
  const app = await build(t, { env: { HISTORY_CACHE_TTL_MS: '60000', STATUS_CACHE_TTL_MS: '60000' } })
  const client = await overHttp(t, app)
  const readings = Array.from({ length: 5 }, (_, i) => pcReading({}, i + 1))
  await app.ingest.ingest(readings)
  app.historyCache.invalidate(['pc1'])
  // the first client's URL fills the cache; its extra parameter is none of the next client's business
  const first = await client.inject('/devices/pc1?limit=2&from=2000-01-01&session=first-clients-secret')
  t.equal(first.statusCode, 200)
  const second = await client.inject('/devices/pc1?from=2000-01-01T00:00:00Z&limit=2')
  t.equal(second.headers.etag, first.headers.etag, 'the same cached page')
  for (const res of [first, second]) {
    const link = String(res.headers.link)
    t.notMatch(link, /secret|session/, 'no parameter of the first client in the Link')
    t.match(link, /^<\/devices\/pc1\?limit=2&from=2000-01-01T00%3A00%3A00\.000Z&cursor=[^>]+>; rel="next"$/)
  }
  // following it pages on
  const next = await client.inject(/<([^>]+)>/.exec(String(second.headers.link))![1]!)
  t.equal(next.statusCode, 200)
  t.same(next.json().map((r: { uuid: string }) => r.uuid), readings.slice(2, 4).map(r => r.uuid))
})

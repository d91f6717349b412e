import t from 'tap'
import { build, dynalite, dynamoProxy, pcReading, uniqueTable } from '../helper.js'

// A DynamoDB that accepts requests and never answers them (a network black hole, a stuck proxy):
// every request is abandoned after DYNAMODB_TIMEOUT_MS and retried by the SDK (3 attempts), then
// the caller sees "storage unavailable". Before, the SDK only logged a warning and waited on.

const TIMEOUT_MS = 300

/** The answer, or a failure of the test when there is none within `ms` (a request that hangs). */
async function within<T> (ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what}: no answer within ${ms} ms`)) }, ms) })
    ])
  } finally {
    clearTimeout(timer)
  }
}

t.test('DynamoDB hangs: API answers 503 after the timeouts, /health says so, writes fail cleanly; all back when it answers', async t => {
  const db = await dynalite(t)
  const proxy = await dynamoProxy(t, db.endpoint)
  const app = await build(t, {
    env: {
      DYNAMODB_ENDPOINT: proxy.endpoint,
      DYNAMODB_TABLE: uniqueTable(),
      DYNAMODB_TIMEOUT_MS: String(TIMEOUT_MS),
      // no cache: every request goes to the table
      STATUS_CACHE_TTL_MS: '0',
      HISTORY_CACHE_TTL_MS: '0'
    }
  })
  const stored = pcReading()
  await app.ingest.ingest([stored])

  proxy.hang = true
  proxy.calls = {}
  // A write retries longer than a read (8 attempts with backoff, each of 3 timed-out requests):
  // started now, it fails while the reads below are tried.
  const late = pcReading()
  const write = within(40_000, 'ingest', app.ingest.ingest([late]))
  write.catch(() => {})
  for (const url of ['/devices/pc1/status', '/devices/pc1', '/devices/']) {
    const started = Date.now()
    const res = await within(10_000, url, app.inject(url))
    const elapsed = Date.now() - started
    t.equal(res.statusCode, 503, `${url}: 503`)
    t.equal(res.json().message, 'Storage is unavailable, try again shortly')
    t.ok(elapsed >= 3 * TIMEOUT_MS, `${url}: answered after three abandoned attempts (${elapsed} ms)`)
  }
  t.ok((proxy.calls.BatchGetItem ?? 0) >= 3, `the status read was tried 3 times (${proxy.calls.BatchGetItem ?? 0})`)
  t.ok((proxy.calls.Query ?? 0) >= 6, `each listing was tried 3 times (${proxy.calls.Query ?? 0})`)

  const health = await within(10_000, '/health', app.inject('/health'))
  t.equal(health.statusCode, 503, '/health: 503 while DynamoDB does not answer')

  await t.rejects(write, { name: 'StorageUnavailableError' }, 'a write fails as storage unavailable (a consumed batch is then retried, not committed)')

  proxy.hang = false
  t.equal((await app.inject('/health')).statusCode, 200, 'healthy again')
  await app.ingest.ingest([late])
  const status = await app.inject('/devices/pc1/status')
  t.equal(status.statusCode, 200)
  t.equal(status.json().uuid, late.uuid, 'the retried write is there')
  const history = (await app.inject('/devices/pc1')).json() as Array<{ uuid: string }>
  t.same(history.map(r => r.uuid), [late.uuid, stored.uuid], 'both readings, each once')
})

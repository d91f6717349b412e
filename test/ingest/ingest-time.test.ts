import t from 'tap'
import type rdkafka from 'node-rdkafka'
import { build, pcReading, spawnServer, tempDir } from '../helper.js'
import { brokers, consumeAll, noBroker, produce, producer, unique, waitUntil } from '../kafka-helper.js'

function kafkaEnv (topic: string, extra: Record<string, string> = {}): Record<string, string> {
  return { KAFKA_BROKERS: brokers!, KAFKA_TOPICS: topic, KAFKA_GROUP_ID: unique('group'), KAFKA_DLQ_TOPIC: unique('dlq'), STATUS_CACHE_TTL_MS: '0', ...extra }
}

function header (m: rdkafka.Message | undefined, name: string): string | undefined {
  for (const h of m?.headers ?? []) if (name in h) return String(h[name])
  return undefined
}

/** `ms` from now as a time without a zone: ISO 8601 without `Z`, or the original `YYYY-MM-DD@HH:MM:SS`. */
function zoneless (ms: number, legacy = false): string {
  const iso = new Date(Date.now() + ms).toISOString()
  return legacy ? `${iso.slice(0, 10)}@${iso.slice(11, 19)}` : iso.slice(0, 23)
}

const HOUR = 3_600_000

t.test('a reading from the future is dead-lettered with its time and the limit; the status keeps following real readings', { skip: noBroker }, async t => {
  const topic = unique('pc')
  const env = kafkaEnv(topic)
  const app = await build(t, { env })
  const p = await producer(t)
  const device = unique('kd-future')
  const first = pcReading({ device }, 1)
  await produce(p, topic, first, device)
  t.ok(await waitUntil(async () => (await app.inject(`/devices/${device}/status`)).json().uuid === first.uuid, 20_000), 'first reading is the status')

  const ahead = [
    pcReading({ device, loading_datetime: zoneless(13 * HOUR) }),
    pcReading({ device, loading_datetime: zoneless(13 * HOUR, true) }),
    pcReading({ device, loading_datetime: new Date(Date.now() + 10 * 60_000).toISOString() }),
    pcReading({ device, loading_datetime: zonedAhead(6 * 60_000) })
  ]
  for (const [i, r] of ahead.entries()) await produce(p, topic, r, `future-${i}`)
  const real = pcReading({ device })
  await produce(p, topic, real, device)
  t.ok(await waitUntil(async () => (await app.inject(`/devices/${device}/status`)).json().uuid === real.uuid, 20_000), 'a real reading after them moves the status')
  const later = pcReading({ device, loading_datetime: new Date(Date.now() + 1000).toISOString() })
  await produce(p, topic, later, device)
  t.ok(await waitUntil(async () => (await app.inject(`/devices/${device}/status`)).json().uuid === later.uuid, 20_000), 'and the next one too')

  const dlq = await consumeAll(env.KAFKA_DLQ_TOPIC!, ahead.length, 30_000)
  t.equal(dlq.length, ahead.length, 'every reading from the future is in the DLQ')
  for (const m of dlq) {
    const reason = header(m, 'dlq.reason') ?? ''
    const sent = JSON.parse(String(m.value)) as { uuid: string }
    const original = ahead.find(r => r.uuid === sent.uuid)
    t.ok(original, 'the original message is dead-lettered')
    t.match(reason, /^loading_datetime is in the future: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z is more than 300 s ahead of the service's clock \(MAX_CLOCK_SKEW_SECONDS\)$/)
  }
  const stored = (await app.inject(`/devices/${device}`)).json().map((r: { uuid: string }) => r.uuid)
  t.same(stored, [later.uuid, real.uuid, first.uuid], 'only the real readings are stored')
})

/** `ms` from now, written with a +05:30 offset. */
function zonedAhead (ms: number): string {
  const local = new Date(Date.now() + ms + 5.5 * HOUR).toISOString().slice(0, 23)
  return `${local}+05:30`
}

t.test('MAX_CLOCK_SKEW_SECONDS bounds how far ahead a reading may be, zoned or not', async t => {
  const loose = await build(t, { env: { MAX_CLOCK_SKEW_SECONDS: '3600' } })
  const within = [
    pcReading({ loading_datetime: zoneless(30 * 60_000) }),
    pcReading({ loading_datetime: zonedAhead(30 * 60_000) }),
    pcReading({ loading_datetime: zoneless(2 * 60_000, true) })
  ]
  const beyond = [pcReading({ loading_datetime: zoneless(61 * 60_000) }), pcReading({ loading_datetime: zonedAhead(61 * 60_000) })]
  const result = await loose.ingest.ingest([...within, ...beyond])
  t.equal(result.stored, 3, 'within an hour: stored')
  t.same(result.rejected.map(r => r.index), [3, 4])
  for (const r of result.rejected) t.match(r.reasons.join(), /more than 3600 s ahead/)

  const strict = await build(t, { env: { MAX_CLOCK_SKEW_SECONDS: '0' } })
  const res = await strict.ingest.ingest([pcReading({ loading_datetime: new Date(Date.now() + 5000).toISOString() }), pcReading({}, 1)])
  t.equal(res.stored, 1)
  t.match(res.rejected[0]?.reasons.join(), /more than 0 s ahead/)
})

t.test('LEGACY_TIMEZONE reads times without a zone in that zone, DST included; zoned times and query bounds are unchanged', { skip: noBroker }, async t => {
  const topic = unique('pc')
  const app = await build(t, { env: kafkaEnv(topic, { LEGACY_TIMEZONE: 'Europe/Berlin' }) })
  const p = await producer(t)
  const device = unique('berlin')
  const sent = [
    ['2026-07-01@12:00:00', '2026-07-01T10:00:00.000Z'], // CEST, +02:00
    ['2026-01-15@12:00:00', '2026-01-15T11:00:00.000Z'], // CET, +01:00
    ['2026-07-02T12:00:00.250', '2026-07-02T10:00:00.250Z'], // zoneless ISO 8601
    ['2026-03-29@02:30:00', '2026-03-29T01:30:00.000Z'], // skipped by the spring change: read as CET (= 03:30 CEST)
    ['2026-10-25@02:30:00', '2026-10-25T00:30:00.000Z'], // occurs twice in autumn: the earlier (CEST)
    ['2026-07-03T12:00:00Z', '2026-07-03T12:00:00.000Z'], // zoned: as written
    ['2026-07-04T12:00:00-04:00', '2026-07-04T16:00:00.000Z']
  ]
  const byTime = new Map<string, string>()
  for (const [text, expected] of sent) {
    const r = pcReading({ device, loading_datetime: text })
    byTime.set(expected!, r.uuid as string)
    await produce(p, topic, r, device)
  }
  t.ok(await waitUntil(async () => (await app.inject(`/devices/${device}`)).json().length === sent.length, 20_000), 'all stored')
  const stored = (await app.inject(`/devices/${device}`)).json() as Array<{ uuid: string, loading_datetime: string }>
  t.same(new Map(stored.map(r => [r.loading_datetime, r.uuid])), byTime, 'each time read as its zone says')

  // Query bounds without a zone are UTC, whatever LEGACY_TIMEZONE says.
  const bounded = (await app.inject(`/devices/${device}?from=2026-07-01T10:00:00&to=2026-07-01T10:00:00`)).json()
  t.same(bounded.map((r: { uuid: string }) => r.uuid), [byTime.get('2026-07-01T10:00:00.000Z')])
})

t.test('a time that its zone moves out of the years 1970-9999 UTC is rejected', async t => {
  const app = await build(t, { env: { LEGACY_TIMEZONE: 'America/New_York' } })
  const result = await app.ingest.ingest([
    pcReading({ loading_datetime: '1970-01-01T00:30:00+01:00' }),
    pcReading({ loading_datetime: '9999-12-31@22:00:00' }),
    pcReading({ loading_datetime: '9999-12-31T23:30:00-01:00' }),
    pcReading({ loading_datetime: '1970-01-01@06:00:00' })
  ])
  t.equal(result.stored, 1, 'only the time that stays within the range')
  t.same(result.rejected.map(r => r.index), [0, 1, 2])
  for (const r of result.rejected) t.match(r.reasons.join(), /loading_datetime must be ISO 8601/)
})

t.test('a bad LEGACY_TIMEZONE or MAX_CLOCK_SKEW_SECONDS stops start-up with one line naming it', async t => {
  for (const [key, value] of [['LEGACY_TIMEZONE', 'Mars/Olympus_Mons'], ['LEGACY_TIMEZONE', 'CEST+2'], ['MAX_CLOCK_SKEW_SECONDS', '-5'], ['MAX_CLOCK_SKEW_SECONDS', 'soon']] as const) {
    const { output, exited } = spawnServer(t, { [key]: value, DATA_DIR: await tempDir(t), COLLECTOR: 'off' })
    t.equal(await exited, 1, `${key}=${value} exits 1`)
    const text = output().trim()
    t.equal(text.split('\n').length, 1, `${key}=${value}: one line (${text})`)
    t.match(text, new RegExp(`^Invalid configuration: ${key} `))
    if (key === 'LEGACY_TIMEZONE') t.match(text, `(got "${value}")`)
  }
})

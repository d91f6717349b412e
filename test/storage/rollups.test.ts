import t from 'tap'
import { randomUUID } from 'node:crypto'
import type { AttributeValue } from '@aws-sdk/client-dynamodb'
import {
  INTERVAL_MS, MAX_BUCKET_UUIDS, affectedSks, applyReadings, bucketCount, bucketOf, bucketStart, defaultInterval, rollupItem, rollupSk,
  servedBucket, type RollupBucket
} from '../../storage/rollups.js'
import { INTERVALS, ROLLUP_FIELDS, ROLLUP_FIELDS_BY_KIND } from '../../schemas/stats.js'
import { READING_SK_RANGE, STATUS_SK, claimSk } from '../../storage/table.js'
import type { Reading } from '../../schemas/readings.js'

// The pure rollup math (storage/rollups.ts): buckets, the hierarchy, idempotence, the item codec.

function reading (time: string, temperature: number, prediction: 0 | 1 = 0, extra: Record<string, unknown> = {}): Reading {
  return {
    uuid: randomUUID(),
    device: 'pc1',
    kind: 'pc',
    loading_datetime: new Date(time).toISOString(),
    TemperatureCPUPackage: temperature,
    LoadCPUTotal: 10,
    prediction,
    probability: prediction === 1 ? 0.9 : 0.1,
    ...extra
  } as unknown as Reading
}

/** What DynamoDB sends back for a document-client item (the few types rollup items use). */
function wire (item: Record<string, unknown>): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {}
  for (const [k, v] of Object.entries(item)) {
    out[k] = typeof v === 'number' ? { N: String(v) } : typeof v === 'string' ? { S: v } : { B: v as Uint8Array }
  }
  return out
}

/** Buckets as the table would hold them after writing `changed` over `table` (by sort key). */
function persist (table: Map<string, Record<string, AttributeValue>>, changed: RollupBucket[]): void {
  for (const b of changed) table.set(rollupSk(b.interval, b.start), wire(rollupItem('pc1', b, 86_400)))
}
function load (table: Map<string, Record<string, AttributeValue>>, sks: string[]): Map<string, RollupBucket> {
  const out = new Map<string, RollupBucket>()
  for (const sk of sks) {
    const item = table.get(sk)
    if (item !== undefined) out.set(sk, bucketOf(item)!)
  }
  return out
}
/** One ingest update against `table`: read the affected buckets, apply, write the changed ones. */
function update (table: Map<string, Record<string, AttributeValue>>, readings: Reading[]): RollupBucket[] {
  const changed = applyReadings(readings, load(table, affectedSks(readings)))
  persist(table, changed)
  return changed
}
const served = (table: Map<string, Record<string, AttributeValue>>, interval: string): unknown[] =>
  [...table.entries()].filter(([sk]) => sk.startsWith(`r#${interval}#`)).sort().map(([, item]) => servedBucket(item))

t.test('buckets start on UTC multiples of the interval; counts over a range; the default interval', async t => {
  const ms = Date.parse('2024-05-02T13:47:31.250Z')
  t.same(INTERVALS.map(i => new Date(bucketStart(ms, i)).toISOString()), [
    '2024-05-02T13:47:00.000Z', '2024-05-02T13:45:00.000Z', '2024-05-02T13:45:00.000Z', '2024-05-02T13:00:00.000Z',
    '2024-05-02T12:00:00.000Z', '2024-05-02T00:00:00.000Z'
  ])
  t.equal(rollupSk('1h', bucketStart(ms, '1h')), 'r#1h#2024-05-02T13:00:00.000Z')
  t.equal(bucketCount(0, 60_000 * 300 - 1, '1m'), 300)
  t.equal(bucketCount(30_000, 60_000 * 300, '1m'), 301, 'the buckets the range touches')
  t.equal(defaultInterval(0, 60_000 * 300 - 1), '1m')
  t.equal(defaultInterval(0, 60_000 * 300), '5m')
  t.equal(defaultInterval(0, 400 * 86_400_000), '1d', 'none fits: the coarsest')
  for (let i = 1; i < INTERVALS.length; i++) t.equal(INTERVAL_MS[INTERVALS[i]!] % INTERVAL_MS[INTERVALS[i - 1]!], 0, `${INTERVALS[i]} is whole ${INTERVALS[i - 1]}s`)
})

t.test('rollup keys sort outside every reading key range, before the status and the claims', async t => {
  for (const interval of INTERVALS) {
    for (const time of [0, Date.parse('9999-12-31T23:59:00Z')]) {
      const sk = rollupSk(interval, bucketStart(time, interval))
      t.ok(sk > READING_SK_RANGE.hi || sk < READING_SK_RANGE.lo, `${sk} outside the readings' range`)
      t.ok(sk < STATUS_SK && sk < claimSk(randomUUID()), `${sk} before the status and the claims`)
    }
  }
})

t.test('the fields: every numeric field of the Reading schema, per kind', async t => {
  t.same(ROLLUP_FIELDS_BY_KIND.pc, [
    'ClockCPUCoreOne', 'TemperatureCPUPackage', 'LoadCPUTotal', 'PowerCPUPackage', 'TemperatureGPUCore', 'LoadGPUCore',
    'ThrottleEventsCPU', 'ClockCPUMax', 'TemperatureCPUCritical', 'PowerGPU', 'ClockGPUCore', 'probability'
  ])
  t.ok(ROLLUP_FIELDS_BY_KIND.raspberry.includes('voltage_core_v') && !ROLLUP_FIELDS_BY_KIND.raspberry.includes('throttled'))
  t.notOk(ROLLUP_FIELDS.includes('prediction'), 'prediction is counted as stressed')
  t.notOk(ROLLUP_FIELDS.includes('threshold'), 'the model\'s threshold is a setting, not a measurement: not rolled up')
})

t.test('values by hand across levels; redelivery counts once; a parent left behind is repaired', async t => {
  const table = new Map<string, Record<string, AttributeValue>>()
  const a = [reading('2024-05-02T10:00:10Z', 50, 1), reading('2024-05-02T10:00:20Z', 70), reading('2024-05-02T10:06:00Z', 30)]
  update(table, a)
  t.same(served(table, '1m'), [
    { start: '2024-05-02T10:00:00.000Z', count: 2, stressed: 1, fields: { TemperatureCPUPackage: { min: 50, max: 70, avg: 60 }, LoadCPUTotal: { min: 10, max: 10, avg: 10 }, probability: { min: 0.1, max: 0.9, avg: 0.5 } } },
    { start: '2024-05-02T10:06:00.000Z', count: 1, stressed: 0, fields: { TemperatureCPUPackage: { min: 30, max: 30, avg: 30 }, LoadCPUTotal: { min: 10, max: 10, avg: 10 }, probability: { min: 0.1, max: 0.1, avg: 0.1 } } }
  ])
  t.same((served(table, '5m') as any[]).map(b => [b.start, b.count]), [['2024-05-02T10:00:00.000Z', 2], ['2024-05-02T10:05:00.000Z', 1]])
  t.same((served(table, '1h') as any[]).map(b => [b.start, b.count, b.stressed, b.fields.TemperatureCPUPackage]), [['2024-05-02T10:00:00.000Z', 3, 1, { min: 30, max: 70, avg: 50 }]])
  t.same(served(table, '1d').length, 1)

  const snapshot = JSON.stringify([...table])
  t.same(update(table, a), [], 'the same readings again: nothing changes, nothing to write')
  t.same(update(table, [a[1]!, a[0]!]), [])
  t.equal(JSON.stringify([...table]), snapshot)

  // a crash: the 1m write of an update landed, its parents' did not
  const before = new Map(table)
  const b = reading('2024-05-02T10:00:30Z', 90)
  const changed = applyReadings([b], load(table, affectedSks([b])))
  t.same(changed.map(c => c.interval), ['1m', '5m', '15m', '1h', '6h', '1d'], 'one bucket of each level')
  persist(table, changed.filter(c => c.interval === '1m'))
  t.equal((servedBucket(table.get('r#1h#2024-05-02T10:00:00.000Z')!) as any).count, 3, 'the parents lag')
  const repair = update(table, [b])
  t.same(repair.map(c => c.interval), ['5m', '15m', '1h', '6h', '1d'], 'the redelivery rewrites the parents only')
  const whole = new Map(before)
  update(whole, [b])
  t.equal(JSON.stringify([...table].sort()), JSON.stringify([...whole].sort()), 'as if there had been no crash')
})

t.test('a late reading and its own buckets; another kind of field; the uuid cap', async t => {
  const table = new Map<string, Record<string, AttributeValue>>()
  update(table, [reading('2024-05-02T10:00:10Z', 50)])
  const item = JSON.stringify(table.get('r#1h#2024-05-02T10:00:00.000Z'))
  update(table, [reading('2024-04-20T03:00:00Z', 40, 0, { TemperatureGPUCore: 61 })])
  t.equal(JSON.stringify(table.get('r#1h#2024-05-02T10:00:00.000Z')), item, 'the recent buckets untouched')
  t.same((served(table, '1d') as any[]).map(b => b.start), ['2024-04-20T00:00:00.000Z', '2024-05-02T00:00:00.000Z'])
  t.same((served(table, '1d') as any[])[0].fields.TemperatureGPUCore, { min: 61, max: 61, avg: 61 })
  t.notOk('TemperatureGPUCore' in (served(table, '1d') as any[])[1].fields, 'a field no reading carries is absent')

  const many = Array.from({ length: MAX_BUCKET_UUIDS + 3 }, (_, i) => reading(new Date(Date.parse('2024-05-03T00:00:00Z') + i % 60_000).toISOString(), 1))
  const [minute] = applyReadings(many, new Map())
  t.equal(minute!.summary.count, MAX_BUCKET_UUIDS, 'a 1m bucket keeps at most MAX_BUCKET_UUIDS uuids')
})

t.test('the item codec: retention from the bucket end; what is not ours decodes as nothing', async t => {
  const [minute, five] = applyReadings([reading('2024-05-02T10:00:10Z', 50)], new Map())
  const m = rollupItem('pc1', minute!, 100)
  t.equal(m.expires_at, Date.parse('2024-05-02T10:01:00Z') / 1000 + 100)
  t.equal(rollupItem('pc1', five!, 100).expires_at, Date.parse('2024-05-02T10:05:00Z') / 1000 + 100)
  t.equal(rollupItem('pc1', five!, undefined).expires_at, undefined)
  t.equal(m.feed, undefined, 'no feed: never in the all-readings index')
  t.equal((m.u as Buffer).length, 16, 'a uuid in 16 bytes')
  t.same(bucketOf(wire(m)), minute)
  t.equal(bucketOf({ ...wire(m), sk: { S: 'r#2m#2024-05-02T10:00:00.000Z' } }), undefined)
  t.equal(bucketOf({ ...wire(m), f: { S: '{"x":[1,2]}' } }), undefined)
  t.equal(bucketOf({ ...wire(m), f: { S: 'not json' } }), undefined)
  t.equal(servedBucket({ ...wire(m), count: { N: '0' } }), undefined, 'an empty bucket is not served')
})

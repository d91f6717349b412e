import type { AttributeValue } from '@aws-sdk/client-dynamodb'
import type { Reading } from '../schemas/readings.js'
import type { DeviceKind } from '../schemas/devices.js'
import { DEFAULT_MAX_BUCKETS, INTERVALS, ROLLUP_FIELDS, type Interval, type StatsBucket } from '../schemas/stats.js'
import { TTL_ATTRIBUTE } from './table.js'

// History rollups (docs/adr/0006-history-rollups.md): the pure part. Per device, one item per
// bucket of each interval, `sk = r#<interval>#<bucket start ISO>`. A 1m bucket holds the uuids it
// counted (the deduplication authority) and its summary; every coarser bucket holds its children's
// summaries and an aggregate recomputed from them, so rewriting a parent from its current children
// is idempotent, and a batch delivered again repairs whatever a crash left half-written.

export const INTERVAL_MS: Record<Interval, number> = {
  '1m': 60_000, '5m': 300_000, '15m': 900_000, '1h': 3_600_000, '6h': 21_600_000, '1d': 86_400_000
}

/** `r#`: after every reading key (digits) and before "status" and the `uuid#` claims. */
export const ROLLUP_SK_PREFIX = 'r#'

/** Most uuids one 1m bucket keeps (16 bytes each, 80 KB): readings past it in that minute are not counted. */
export const MAX_BUCKET_UUIDS = 5000

export interface FieldStats { n: number, min: number, max: number, sum: number }
export interface Summary { count: number, stressed: number, fields: Record<string, FieldStats> }

export interface RollupBucket {
  interval: Interval
  /** epoch ms, a multiple of the interval */
  start: number
  kind: DeviceKind
  summary: Summary
  /** 1m buckets: the uuids counted (lower-case, no dashes) */
  uuids?: Set<string>
  /** coarser buckets: the children's summaries by position (0 = the first child) */
  children?: Map<number, Summary>
}

export function bucketStart (ms: number, interval: Interval): number {
  const len = INTERVAL_MS[interval]
  return Math.floor(ms / len) * len
}

export function rollupSk (interval: Interval, startMs: number): string {
  return `${ROLLUP_SK_PREFIX}${interval}#${new Date(startMs).toISOString()}`
}

/** Buckets of `interval` that the inclusive range touches. */
export function bucketCount (fromMs: number, toMs: number, interval: Interval): number {
  const len = INTERVAL_MS[interval]
  return Math.floor(toMs / len) - Math.floor(fromMs / len) + 1
}

/** The finest interval giving at most `max` buckets over the range; the coarsest when none does. */
export function defaultInterval (fromMs: number, toMs: number, max = DEFAULT_MAX_BUCKETS): Interval {
  return INTERVALS.find(i => bucketCount(fromMs, toMs, i) <= max) ?? INTERVALS[INTERVALS.length - 1]!
}

const emptySummary = (): Summary => ({ count: 0, stressed: 0, fields: {} })

function cloneSummary (s: Summary): Summary {
  const fields: Record<string, FieldStats> = {}
  for (const [name, f] of Object.entries(s.fields)) fields[name] = { ...f }
  return { count: s.count, stressed: s.stressed, fields }
}

export function sameSummary (a: Summary | undefined, b: Summary): boolean {
  if (a === undefined || a.count !== b.count || a.stressed !== b.stressed) return false
  const names = Object.keys(b.fields)
  if (Object.keys(a.fields).length !== names.length) return false
  for (const name of names) {
    const x = a.fields[name]
    const y = b.fields[name]!
    if (x === undefined || x.n !== y.n || x.min !== y.min || x.max !== y.max || x.sum !== y.sum) return false
  }
  return true
}

/** One reading into a summary. */
export function addReading (s: Summary, reading: Reading): void {
  s.count++
  if (reading.prediction === 1) s.stressed++
  const record = reading as unknown as Record<string, unknown>
  for (const name of ROLLUP_FIELDS) {
    const v = record[name]
    if (typeof v !== 'number') continue
    const f = s.fields[name]
    if (f === undefined) s.fields[name] = { n: 1, min: v, max: v, sum: v }
    else {
      f.n++
      if (v < f.min) f.min = v
      if (v > f.max) f.max = v
      f.sum += v
    }
  }
}

/** Summaries combined, in the order given (the children's positions: the same children, the same sums). */
export function combine (parts: Iterable<Summary>): Summary {
  const out = emptySummary()
  for (const p of parts) {
    out.count += p.count
    out.stressed += p.stressed
    for (const [name, f] of Object.entries(p.fields)) {
      const o = out.fields[name]
      if (o === undefined) out.fields[name] = { ...f }
      else {
        o.n += f.n
        if (f.min < o.min) o.min = f.min
        if (f.max > o.max) o.max = f.max
        o.sum += f.sum
      }
    }
  }
  return out
}

const PARENT: Partial<Record<Interval, Interval>> = { '1m': '5m', '5m': '15m', '15m': '1h', '1h': '6h', '6h': '1d' }

/** The sort keys of every bucket (all intervals) these readings fall in. */
export function affectedSks (readings: readonly Reading[]): string[] {
  const sks = new Set<string>()
  const minutes = new Set<number>()
  for (const r of readings) minutes.add(bucketStart(Date.parse(r.loading_datetime), '1m'))
  for (const minute of minutes) for (const interval of INTERVALS) sks.add(rollupSk(interval, bucketStart(minute, interval)))
  return [...sks]
}

const compactUuid = (uuid: string): string => uuid.replace(/-/g, '').toLowerCase()

/**
 * Folds one device's readings into its buckets (`buckets`, by sort key: what the table holds, and
 * updated in place) and returns the buckets that changed, to be written. A uuid its 1m bucket has
 * counted is skipped (a redelivery); every parent of a bucket the readings fall in is compared with
 * its children as they are now and rewritten when it differs (a crash between writes).
 */
export function applyReadings (readings: readonly Reading[], buckets: Map<string, RollupBucket>): RollupBucket[] {
  const dirty = new Set<RollupBucket>()
  let level = new Set<RollupBucket>()
  const get = (interval: Interval, start: number, kind: DeviceKind): RollupBucket => {
    const sk = rollupSk(interval, start)
    let bucket = buckets.get(sk)
    if (bucket === undefined) {
      bucket = { interval, start, kind, summary: emptySummary(), ...(interval === '1m' ? { uuids: new Set<string>() } : { children: new Map<number, Summary>() }) }
      buckets.set(sk, bucket)
    }
    return bucket
  }
  for (const reading of readings) {
    const bucket = get('1m', bucketStart(Date.parse(reading.loading_datetime), '1m'), reading.kind)
    level.add(bucket)
    const uuids = bucket.uuids!
    const id = compactUuid(reading.uuid)
    if (uuids.has(id) || uuids.size >= MAX_BUCKET_UUIDS) continue
    uuids.add(id)
    addReading(bucket.summary, reading)
    if (bucket.kind !== reading.kind) bucket.kind = reading.kind
    dirty.add(bucket)
  }
  for (let interval: Interval = '1m', parent = PARENT[interval]; parent !== undefined; interval = parent, parent = PARENT[interval]) {
    const next = new Set<RollupBucket>()
    const childLen = INTERVAL_MS[interval]
    for (const child of level) {
      const p = get(parent, bucketStart(child.start, parent), child.kind)
      next.add(p)
      const position = (child.start - p.start) / childLen
      const children = p.children!
      if (sameSummary(children.get(position), child.summary) && p.kind === child.kind && p.summary.count > 0) continue
      children.set(position, cloneSummary(child.summary))
      p.summary = combine([...children.entries()].sort((a, b) => a[0] - b[0]).map(e => e[1]))
      p.kind = child.kind
      dirty.add(p)
    }
    level = next
  }
  return [...dirty]
}

// ---------------------------------------------------------------------------- table items

type Stats = [n: number, min: number, max: number, sum: number]

// Summaries are stored as JSON text (one S attribute), not as DynamoDB maps of lists of numbers:
// a 1h bucket's fields and children are then 2 attributes instead of ~150 typed values, which
// DynamoDB, the SDK and this code each parse faster (the stats route reads 720 of them for a month).
function encodeFields (fields: Record<string, FieldStats>): string {
  const out: Record<string, Stats> = {}
  for (const [name, f] of Object.entries(fields)) out[name] = [f.n, f.min, f.max, f.sum]
  return JSON.stringify(out)
}

/**
 * A bucket as a document-client item: `count`, `stressed`, `f` (JSON: field -> [n, min, max, sum]),
 * and `u` (the 1m uuids, 16 bytes each) or `ch` (JSON: position -> [count, stressed, fields]); no
 * `feed`, so the all-readings index never holds it; `expires_at` = bucket end + retention.
 */
export function rollupItem (device: string, bucket: RollupBucket, retentionSeconds: number | undefined): Record<string, unknown> {
  const item: Record<string, unknown> = {
    device,
    sk: rollupSk(bucket.interval, bucket.start),
    kind: bucket.kind,
    count: bucket.summary.count,
    stressed: bucket.summary.stressed,
    f: encodeFields(bucket.summary.fields)
  }
  if (bucket.uuids !== undefined) item.u = Buffer.from([...bucket.uuids].join(''), 'hex')
  if (bucket.children !== undefined) {
    const ch: Record<string, unknown> = {}
    for (const [position, s] of bucket.children) ch[String(position)] = [s.count, s.stressed, JSON.parse(encodeFields(s.fields))]
    item.ch = JSON.stringify(ch)
  }
  if (retentionSeconds !== undefined) item[TTL_ATTRIBUTE] = Math.floor((bucket.start + INTERVAL_MS[bucket.interval]) / 1000) + retentionSeconds
  return item
}

function num (v: AttributeValue | undefined): number | undefined {
  if (v?.N === undefined) return undefined
  const n = Number(v.N)
  return Number.isFinite(n) ? n : undefined
}

const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x)

function parseFields (value: unknown): Record<string, FieldStats> | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined
  const out: Record<string, FieldStats> = {}
  for (const [name, list] of Object.entries(value)) {
    if (!Array.isArray(list) || list.length !== 4 || !list.every(finite)) return undefined
    const [n, min, max, sum] = list as Stats
    out[name] = { n, min, max, sum }
  }
  return out
}

function parseJson (text: string | undefined): unknown {
  if (text === undefined) return undefined
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function decodeSummary (count: AttributeValue | undefined, stressed: AttributeValue | undefined, f: AttributeValue | undefined): Summary | undefined {
  const c = num(count)
  const s = num(stressed)
  const fields = parseFields(parseJson(f?.S))
  return c === undefined || s === undefined || fields === undefined ? undefined : { count: c, stressed: s, fields }
}

const SK_RE = /^r#(1m|5m|15m|1h|6h|1d)#(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)$/

/** A rollup item as DynamoDB sends it (with `u` or `ch`), decoded; undefined when it is not one this service wrote. */
export function bucketOf (item: Record<string, AttributeValue>): RollupBucket | undefined {
  const m = SK_RE.exec(item.sk?.S ?? '')
  const kind = item.kind?.S
  if (m === null || (kind !== 'pc' && kind !== 'raspberry')) return undefined
  const interval = m[1] as Interval
  const start = Date.parse(m[2]!)
  const summary = decodeSummary(item.count, item.stressed, item.f)
  if (summary === undefined) return undefined
  const bucket: RollupBucket = { interval, start, kind, summary }
  if (interval === '1m') {
    const bytes = item.u?.B
    const hex = bytes === undefined ? '' : Buffer.from(bytes).toString('hex')
    bucket.uuids = new Set()
    for (let i = 0; i + 32 <= hex.length; i += 32) bucket.uuids.add(hex.slice(i, i + 32))
  } else {
    bucket.children = new Map()
    const ch = parseJson(item.ch?.S)
    if (ch === null || typeof ch !== 'object' || Array.isArray(ch)) return bucket
    for (const [position, v] of Object.entries(ch)) {
      if (!Array.isArray(v) || v.length !== 3 || !finite(v[0]) || !finite(v[1])) continue
      const fields = parseFields(v[2])
      if (fields !== undefined) bucket.children.set(Number(position), { count: v[0], stressed: v[1], fields })
    }
  }
  return bucket
}

/** The attributes the stats route reads (never `u` or `ch`). */
export const BUCKET_PROJECTION = {
  ProjectionExpression: 'sk, #c, stressed, f',
  ExpressionAttributeNames: { '#c': 'count' }
}

/** A projected rollup item as the stats route serves it; undefined when it is not one this service wrote. */
export function servedBucket (item: Record<string, AttributeValue>): StatsBucket | undefined {
  const sk = item.sk?.S
  const summary = decodeSummary(item.count, item.stressed, item.f)
  if (sk === undefined || summary === undefined || summary.count === 0) return undefined
  const fields: Record<string, { min: number, max: number, avg: number }> = {}
  // In the schema's order, whatever order the map came in.
  for (const name of ROLLUP_FIELDS) {
    const f = summary.fields[name]
    if (f !== undefined && f.n > 0) fields[name] = { min: f.min, max: f.max, avg: f.sum / f.n }
  }
  return { start: sk.slice(sk.indexOf('#', 2) + 1), count: summary.count, stressed: summary.stressed, fields }
}

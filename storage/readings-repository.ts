import { createHash, randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { BatchGetItemCommand, ConditionalCheckFailedException, DescribeTableCommand, QueryCommand as RawQueryCommand, type AttributeValue } from '@aws-sdk/client-dynamodb'
import { BatchWriteCommand, PutCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'
import type { Reading, Reason, ThrottledFlags } from '../schemas/readings.js'
import { DEVICE_ID_PATTERN } from '../schemas/devices.js'
import { ALL_INDEX, FLEET_INDEX, FLEET_SHARDS, READING_SK_RANGE, STATUS_SK, TTL_ATTRIBUTE, claimSk, fleetShard, readingSk } from './table.js'
import { BUCKET_PROJECTION, affectedSks, applyReadings, bucketOf, bucketStart, rollupItem, rollupSk, servedBucket, type RollupBucket } from './rollups.js'
import type { Interval, StatsBucket } from '../schemas/stats.js'
import { InvalidCursorError, StorageUnavailableError } from './errors.js'
import { isUnavailable } from './outage.js'
import pLimit from 'p-limit'

export interface StatusRecord {
  device: string
  kind: Reading['kind']
  uuid: string
  loading_datetime: string
  prediction: 0 | 1
  probability: number
  throttled_flags?: ThrottledFlags
  /** Why the verdict: absent on status items written before they existed. */
  source?: 'hardware' | 'model'
  reasons?: Reason[]
  missing?: string[]
  /** The model's threshold when the model decided; absent for hardware evidence and on older items. */
  threshold?: number
  /**
   * Changes whenever readings of the device are stored, in order or late (see put): a reader that
   * saw the same revision before and after knows the device's readings did not change between.
   * Absent on status items written before revisions existed: then nothing can be concluded.
   */
  rev?: string
}

/** What put() did with each reading of its call. */
export interface PutResult {
  /** written: the first reading under its (device, uuid) */
  stored: Reading[]
  /** identical redeliveries of a stored reading: its status and revision untouched */
  duplicates: number
  /** another reading under a (device, uuid) already used: never written (first write wins) */
  conflicts: Array<{ index: number, reading: Reading, reason: string }>
}

/** source, reasons, missing and threshold: the model's answer beside its prediction and probability. */
export type Verdict = Pick<StatusRecord, 'source' | 'reasons' | 'missing' | 'threshold'>

/**
 * A (device, uuid) claim: which reading holds the uuid, and what put() wrote for it. `verdict` is
 * undefined for a claim written before claims held it (or with it unreadable): see put().
 */
export interface Claim { sk: string, hash: string, prediction: 0 | 1, probability: number, verdict: Verdict | undefined, expires: number | undefined }

export interface Page<T> {
  items: T[]
  /** opaque cursor of the next page, absent on the last page */
  next?: string
}

export interface ListOptions {
  limit: number
  cursor?: string | undefined
  /** ISO bounds, inclusive */
  from?: string | undefined
  to?: string | undefined
}

export interface BetweenOptions {
  /** ISO bounds, inclusive; absent: from the first / up to the last reading */
  from?: string | undefined
  to?: string | undefined
  /** items a Query asks for (DynamoDB also ends a page at 1 MB of data) */
  pageSize?: number
}

/** Readings a page of `readingsBetween` asks DynamoDB for. */
export const BETWEEN_PAGE_SIZE = 1000

export interface RepositoryOptions {
  doc: DynamoDBDocumentClient
  table: string
  retentionDays?: number | undefined
  /** history rollups expire this many days after their bucket's end (ROLLUP_RETENTION_DAYS; absent: never) */
  rollupRetentionDays?: number | undefined
  /** attempts for a batch whose items DynamoDB leaves unprocessed (throttling) */
  maxBatchAttempts?: number
  /** first backoff delay, doubled per attempt */
  backoffMs?: number
  /** parallel BatchWriteItem calls */
  writeConcurrency?: number
  /**
   * A status item that is not one this service writes (a required attribute missing or of another
   * type, e.g. written by hand): the device reads as having no status until its next reading
   * rewrites the item. Called once per device until its status reads well again.
   */
  onUnreadableStatus?: (device: string, item: Record<string, AttributeValue>) => void
}

const BATCH = 25
const GET_BATCH = 100
const SK_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z#[0-9a-f-]{36}$/
const DEVICE_RE = new RegExp(DEVICE_ID_PATTERN)

/** Maps SDK and network failures to StorageUnavailableError; lets programming errors through. */
export function mapStorageError (err: unknown, what: string): Error {
  if (err instanceof StorageUnavailableError) return err
  if (isUnavailable(err)) {
    const e = err as { name?: string, message?: string }
    return new StorageUnavailableError(`DynamoDB unavailable while ${what}: ${e.name ?? 'Error'}: ${e.message ?? ''}`.trim(), { cause: err })
  }
  return err as Error
}

/**
 * The pages of one Query: `send` reads the page that starts at a key (undefined: the first), and
 * pages follow `LastEvaluatedKey` until DynamoDB has no more. Lazy: a page is read only when the
 * caller pulls it. All else of the query (limit, projection, consistency, order) is the caller's;
 * a failure to read a page is mapped by `mapStorageError` with `what`.
 */
async function * queryPages<Key, Item> (
  send: (start: Key | undefined) => Promise<{ Items?: Item[], LastEvaluatedKey?: Key }>, what: string
): AsyncGenerator<Item[], void, undefined> {
  let start: Key | undefined
  do {
    let page
    try {
      page = await send(start)
    } catch (err) {
      throw mapStorageError(err, what)
    }
    yield page.Items ?? []
    start = page.LastEvaluatedKey
  } while (start !== undefined)
}

/** Every item of the pages that `decode` reads (undefined: not one of ours, left out), in order. */
async function decodeAll<Item, T> (pages: AsyncIterable<Item[]>, decode: (item: Item) => T | undefined): Promise<T[]> {
  const out: T[] = []
  for await (const items of pages) {
    for (const item of items) {
      const decoded = decode(item)
      if (decoded !== undefined) out.push(decoded)
    }
  }
  return out
}

function isConditionFailure (err: unknown): boolean {
  return err instanceof ConditionalCheckFailedException || (err as Error).name === 'ConditionalCheckFailedException'
}

function encodeCursor (device: string, sk: string): string {
  return Buffer.from(JSON.stringify([device, sk])).toString('base64url')
}

function decodeCursor (cursor: string, device?: string): { device: string, sk: string } {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    throw new InvalidCursorError()
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 || typeof parsed[0] !== 'string' || typeof parsed[1] !== 'string' ||
    !DEVICE_RE.test(parsed[0]) || !SK_PATTERN.test(parsed[1])) {
    throw new InvalidCursorError()
  }
  if (device !== undefined && parsed[0] !== device) {
    throw new InvalidCursorError('Invalid cursor: it belongs to another device')
  }
  return { device: parsed[0], sk: parsed[1] }
}

function bounds (options: ListOptions, start?: { sk: string }): { lo: string, hi: string } {
  const lo = options.from ?? READING_SK_RANGE.lo
  const hi = options.to !== undefined ? `${options.to}#~` : READING_SK_RANGE.hi
  // DynamoDB refuses a start key outside the key condition (a cursor of another from/to): a 400, not a 500.
  if (start !== undefined && (start.sk < lo || start.sk > hi)) throw new InvalidCursorError('Invalid cursor: it lies outside this query\'s from/to range')
  return { lo, hi }
}

/** `fn` over `items`, at most `concurrency` at once (p-limit); rejects with the first failure. */
async function mapLimit<T> (items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  const limit = pLimit(Math.max(1, concurrency))
  await Promise.all(items.map(async item => await limit(async () => await fn(item))))
}

/** The model's answer to a reading, as opposed to the reading itself. */
const MODEL_ANSWER = new Set(['prediction', 'probability', 'source', 'reasons', 'missing', 'threshold'])

/**
 * What makes two deliveries the same reading: every stored field but the model's answer (a
 * redelivery after a model change is still the same reading), in a canonical order.
 */
export function contentHash (reading: Reading): string {
  const fields = Object.keys(reading).filter(k => !MODEL_ANSWER.has(k)).sort()
  const record = reading as unknown as Record<string, unknown>
  return createHash('sha256').update(JSON.stringify(fields.map(k => [k, record[k]]))).digest('base64url').slice(0, 22)
}

/** The claim's `verdict` attribute: a map of the reading's Verdict fields that it has (a few hundred bytes). */
const CLAIM_ATTRIBUTES = ['device', 'sk', 'reading_sk', 'content_hash', 'prediction', 'probability', 'verdict', TTL_ATTRIBUTE] as const
/** How put() reads the claims of a batch (the bench's ingest ceiling reads them so too). */
export const CLAIM_PROJECTION = {
  ProjectionExpression: CLAIM_ATTRIBUTES.map((_, i) => `#a${i}`).join(', '),
  ExpressionAttributeNames: Object.fromEntries(CLAIM_ATTRIBUTES.map((name, i) => [`#a${i}`, name])),
  // A claim written just before must be seen: an eventually consistent read could miss it.
  ConsistentRead: true
}

/**
 * A claim item decoded; undefined when it is not one this service wrote (then the uuid is claimed
 * again). A `verdict` that is absent (an older claim) or not a map of well-formed Verdict fields
 * leaves the claim readable, without its verdict: the uuid stays claimed by its reading.
 */
function claimOf (item: Record<string, AttributeValue>): { key: string, claim: Claim } | undefined {
  const { device, sk, reading_sk: readingKey, content_hash: hash, prediction, probability, verdict, [TTL_ATTRIBUTE]: expires } = item
  const p = Number(prediction?.N)
  const probabilityValue = Number(probability?.N)
  if (device?.S === undefined || sk?.S === undefined || readingKey?.S === undefined || hash?.S === undefined ||
    (p !== 0 && p !== 1) || probability?.N === undefined || Number.isNaN(probabilityValue)) return undefined
  return {
    key: `${device.S}\u0000${sk.S}`,
    claim: {
      sk: readingKey.S,
      hash: hash.S,
      prediction: p,
      probability: probabilityValue,
      verdict: verdict?.M !== undefined ? verdictOf(verdict.M) : undefined,
      expires: expires?.N !== undefined ? Number(expires.N) : undefined
    }
  }
}

/** The claim a new reading makes: its key, content hash and whole verdict, with the readings' expiry. */
export function newClaim (reading: Reading, expires?: number): Claim {
  const { prediction, probability } = reading
  const sk = readingSk(reading.loading_datetime, reading.uuid)
  return { sk, hash: contentHash(reading), prediction, probability, verdict: verdictFields(reading), expires }
}

/**
 * What put() writes for a new reading: the reading item and the item of its claim (which reading
 * holds the uuid, its content hash and the whole verdict), with the expiry when readings have a retention.
 */
export function itemsOf (reading: Reading, claim: Claim): [Record<string, unknown>, Record<string, unknown>] {
  const item: Record<string, unknown> = { ...reading, sk: claim.sk, [ALL_INDEX.hash]: ALL_INDEX.value }
  const claimItem: Record<string, unknown> = {
    device: reading.device,
    sk: claimSk(reading.uuid),
    reading_sk: claim.sk,
    content_hash: claim.hash,
    prediction: claim.prediction,
    probability: claim.probability,
    verdict: claim.verdict
  }
  if (claim.expires !== undefined) item[TTL_ATTRIBUTE] = claimItem[TTL_ATTRIBUTE] = claim.expires
  return [item, claimItem]
}

/**
 * The verdict's why (source, reasons, missing, threshold) that a reading or status has, none
 * undefined: a stored map, or an answer, holds only what is there.
 */
export function verdictFields (from: Verdict): Verdict {
  const out: Verdict = {}
  if (from.source !== undefined) out.source = from.source
  if (from.reasons !== undefined) out.reasons = from.reasons
  if (from.missing !== undefined) out.missing = from.missing
  if (from.threshold !== undefined) out.threshold = from.threshold
  return out
}

/**
 * A redelivery of a claimed reading as first stored: its fields but the model's answer, with the
 * claim's prediction and probability, and the claim's verdict. A claim without one (written before
 * claims held it, or unreadable) keeps the redelivery's source, reasons, missing and threshold only
 * when its prediction and probability are the claim's (the same verdict); else those are left out,
 * so that the reading never pairs one verdict's prediction with another's reasons.
 */
function asFirstStored (reading: Reading, claim: Claim): Reading {
  const out: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(reading)) if (!MODEL_ANSWER.has(name)) out[name] = value
  out.prediction = claim.prediction
  out.probability = claim.probability
  const sameVerdict = reading.prediction === claim.prediction && reading.probability === claim.probability
  Object.assign(out, claim.verdict ?? (sameVerdict ? verdictFields(reading) : {}))
  return out as unknown as Reading
}

/** The attributes of a status item that a StatusRecord holds (the names as placeholders: any may be a reserved word). */
const STATUS_ATTRIBUTES = ['device', 'kind', 'uuid', 'loading_datetime', 'prediction', 'probability', 'throttled_flags', 'rev', 'source', 'reasons', 'missing', 'threshold'] as const
const STATUS_PROJECTION = {
  ProjectionExpression: STATUS_ATTRIBUTES.map((_, i) => `#a${i}`).join(', '),
  ExpressionAttributeNames: Object.fromEntries(STATUS_ATTRIBUTES.map((name, i) => [`#a${i}`, name]))
}

/**
 * A status item as DynamoDB sends it, decoded; undefined when it is not one this service wrote
 * (a required attribute missing or of another type): such a device reads as having no status.
 */
export function statusOf (item: Record<string, AttributeValue>): StatusRecord | undefined {
  const { device, kind, uuid, loading_datetime: time, prediction, probability, throttled_flags: flags, rev } = item
  if (device?.S === undefined || (kind?.S !== 'pc' && kind?.S !== 'raspberry') || uuid?.S === undefined || time?.S === undefined) return undefined
  const p = Number(prediction?.N)
  const probabilityValue = Number(probability?.N)
  if ((p !== 0 && p !== 1) || probability?.N === undefined || Number.isNaN(probabilityValue)) return undefined
  const record: StatusRecord = { device: device.S, kind: kind.S, uuid: uuid.S, loading_datetime: time.S, prediction: p, probability: probabilityValue }
  if (flags?.M !== undefined) {
    const decoded: Record<string, boolean> = {}
    for (const [name, value] of Object.entries(flags.M)) {
      if (value.BOOL === undefined) return undefined
      decoded[name] = value.BOOL
    }
    record.throttled_flags = decoded as ThrottledFlags
  }
  if (rev?.S !== undefined) record.rev = rev.S
  const verdict = verdictOf(item)
  if (verdict === undefined) return undefined
  return Object.assign(record, verdict)
}

/**
 * source, reasons, missing and threshold of a status item (or of a claim's `verdict` map); each may
 * be absent (older items), undefined when one is malformed.
 */
function verdictOf (item: Record<string, AttributeValue>): Verdict | undefined {
  const { source, reasons, missing, threshold } = item
  const out: Verdict = {}
  if (source !== undefined) {
    if (source.S !== 'hardware' && source.S !== 'model') return undefined
    out.source = source.S
  }
  if (reasons !== undefined) {
    if (reasons.L === undefined) return undefined
    const list: Reason[] = []
    for (const entry of reasons.L) {
      const m = entry.M
      const value = m?.value?.N !== undefined ? Number(m.value.N) : m?.value?.S
      if (m?.field?.S === undefined || m.effect?.S === undefined || value === undefined) return undefined
      list.push({ field: m.field.S, value, effect: m.effect.S })
    }
    out.reasons = list
  }
  if (missing !== undefined) {
    if (missing.L === undefined || !missing.L.every(e => e.S !== undefined)) return undefined
    out.missing = missing.L.map(e => e.S!)
  }
  if (threshold !== undefined) {
    const value = Number(threshold.N)
    if (threshold.N === undefined || Number.isNaN(value)) return undefined
    out.threshold = value
  }
  return out
}

export class ReadingsRepository {
  readonly table: string
  private readonly doc: DynamoDBDocumentClient
  private readonly retentionSeconds: number | undefined
  private readonly rollupRetentionSeconds: number | undefined
  /** per device, the end of the last rollup update queued: one device's updates run one after another */
  private readonly rollupTails = new Map<string, Promise<void>>()
  private readonly maxBatchAttempts: number
  private readonly backoffMs: number
  private readonly writeConcurrency: number
  /** the newest status sort key this process has written per device: an older one is not even tried */
  private readonly writtenStatus = new Map<string, string>()
  /** per device, when (in `clock` ticks) this process last sent a write of its status item */
  private readonly statusSentAt = new Map<string, number>()
  private clock = 0
  private readonly revPrefix = randomUUID().slice(0, 8)
  private revCounter = 0
  private readonly onUnreadableStatus: (device: string, item: Record<string, AttributeValue>) => void
  /** devices whose unreadable status item has been reported */
  private readonly unreadable = new Set<string>()
  /**
   * Claims this process has decided on and not yet known to be readable by every later put: puts
   * classify one after another (in call order) against the table and these, so two batches in
   * flight at once never both claim one uuid.
   */
  private readonly recentClaims = new Map<string, { claim: Claim, owner: number }>()
  private claimTick = 0
  /** start ticks of the puts that have not classified yet, oldest first */
  private readonly unclassified: number[] = []
  /** claims written, by the tick at which their put finished */
  private readonly finishedClaims: Array<{ owner: number, doneAt: number, keys: string[] }> = []
  private classifyTurn: Promise<void> = Promise.resolve()

  constructor (options: RepositoryOptions) {
    this.doc = options.doc
    this.table = options.table
    this.retentionSeconds = options.retentionDays !== undefined ? Math.round(options.retentionDays * 86_400) : undefined
    this.rollupRetentionSeconds = options.rollupRetentionDays !== undefined ? Math.round(options.rollupRetentionDays * 86_400) : undefined
    this.maxBatchAttempts = options.maxBatchAttempts ?? 8
    this.backoffMs = options.backoffMs ?? 50
    this.writeConcurrency = options.writeConcurrency ?? 8
    this.onUnreadableStatus = options.onUnreadableStatus ?? (() => {})
  }

  async ping (): Promise<void> {
    try {
      await this.doc.send(new DescribeTableCommand({ TableName: this.table }))
    } catch (err) {
      throw mapStorageError(err, 'describing the table')
    }
  }

  /**
   * Stores readings: the first reading under a (device, uuid) claims it (a claim item beside the
   * reading, in the same BatchWriteItem calls); an identical redelivery is a duplicate, rewritten as
   * it was stored (which repairs a claim whose reading a crash left unwritten) with the status left
   * as it is; another reading under a claimed uuid is a conflict and never written. "As stored" is
   * the first write's whole model answer, which its claim holds (prediction, probability and the
   * `verdict` map: source, reasons, missing, threshold), whatever the redelivery's model says now.
   * A claim written before claims held the verdict (or with it unreadable): the redelivery's
   * source, reasons, missing and threshold are kept only when its prediction and probability equal
   * the claim's (the same verdict), else left out: never one verdict's reasons beside another's
   * prediction. Such claims are not rewritten; they expire with their readings. Then each
   * device's status moves forward to its newest reading. Throws StorageUnavailableError when
   * DynamoDB cannot take them; nothing is partially acknowledged, so the caller can retry the call.
   * Race left: two different readings under one uuid classified at the same moment by two processes.
   */
  async put (readings: Reading[]): Promise<PutResult> {
    const result: PutResult = { stored: [], duplicates: 0, conflicts: [] }
    if (readings.length === 0) return result
    const started = ++this.claimTick
    this.unclassified.push(started)
    const turn = this.classifyTurn
    let release!: () => void
    this.classifyTurn = new Promise(resolve => { release = resolve })
    const keyOf = (r: Reading): string => `${r.device}\u0000${claimSk(r.uuid)}`
    let stored: Map<string, Claim> | undefined
    let failure: unknown
    try {
      stored = await this.readClaims([...new Set(readings.map(keyOf))])
    } catch (err) {
      failure = err
    }
    await turn

    const byKey = new Map<string, Record<string, unknown>>()
    const newest = new Map<string, { sk: string, reading: Reading, fresh: boolean }>()
    const mine: string[] = []
    const expires = this.retentionSeconds !== undefined ? Math.floor(Date.now() / 1000) + this.retentionSeconds : undefined
    const keep = (sk: string, reading: Reading, fresh: boolean): void => {
      const current = newest.get(reading.device)
      if (current === undefined || current.sk < sk) newest.set(reading.device, { sk, reading, fresh: fresh || current?.fresh === true })
      else if (fresh) current.fresh = true
    }
    try {
      this.unclassified.shift()
      if (failure !== undefined) throw failure
      readings.forEach((reading, index) => {
        const key = keyOf(reading)
        // the claim this reading would make; its key and hash also tell a duplicate from a conflict
        const mineClaim = newClaim(reading, expires)
        const { sk, hash } = mineClaim
        const claim = stored!.get(key) ?? this.recentClaims.get(key)?.claim
        if (claim === undefined) {
          this.recentClaims.set(key, { claim: mineClaim, owner: started })
          mine.push(key)
          const [item, claimItem] = itemsOf(reading, mineClaim)
          byKey.set(`${reading.device}\u0000${sk}`, item)
          byKey.set(key, claimItem)
          result.stored.push(reading)
          keep(sk, reading, true)
        } else if (claim.sk === sk && claim.hash === hash) {
          result.duplicates++
          if (byKey.has(`${reading.device}\u0000${sk}`)) return
          // As first stored: the model's whole answer and the expiry of the first write (asFirstStored
          // for claims without its verdict); the status, if it lags, moves to this reading as kept.
          const same = asFirstStored(reading, claim)
          const item: Record<string, unknown> = { ...same, sk, [ALL_INDEX.hash]: ALL_INDEX.value }
          if (claim.expires !== undefined) item[TTL_ATTRIBUTE] = claim.expires
          byKey.set(`${reading.device}\u0000${sk}`, item)
          keep(sk, same, false)
        } else {
          result.conflicts.push({ index, reading, reason: `uuid ${reading.uuid} is already stored for device ${reading.device} with other values` })
        }
      })
    } finally {
      release()
    }

    try {
      const items = [...byKey.values()]
      const chunks: Array<Array<Record<string, unknown>>> = []
      for (let i = 0; i < items.length; i += BATCH) chunks.push(items.slice(i, i + BATCH))
      await mapLimit(chunks, this.writeConcurrency, chunk => this.writeChunk(chunk))
    } catch (err) {
      // Not written: later puts must not take these readings for stored.
      for (const key of mine) if (this.recentClaims.get(key)?.owner === started) this.recentClaims.delete(key)
      throw err
    }
    if (mine.length > 0) this.finishedClaims.push({ owner: started, doneAt: ++this.claimTick, keys: mine })
    this.pruneClaims()

    // Statuses after readings: a status never points at a reading that is not stored yet, and its
    // revision changes only once the readings are readable. Every device of the batch gets a status
    // write that starts after this point, unless this process already sent one (for a newer batch
    // running alongside): that one covers these readings too. A device with duplicates only is
    // moved forward when its status lags them (a crash before its status write), else left alone.
    const storedAt = ++this.clock
    await mapLimit([...newest.values()], this.writeConcurrency * 2, async ({ sk, reading, fresh }) => {
      if ((this.statusSentAt.get(reading.device) ?? 0) > storedAt) return
      if (!fresh && (this.writtenStatus.get(reading.device) ?? '') >= sk) return
      if (this.statusSentAt.size >= 100_000) this.statusSentAt.clear()
      this.statusSentAt.set(reading.device, ++this.clock)
      // A status this process has already moved past only needs its revision changed.
      if ((this.writtenStatus.get(reading.device) ?? '') >= sk || !await this.advanceStatus(sk, reading)) {
        if (fresh) await this.bumpRevision(reading.device)
      }
    })
    return result
  }

  /**
   * Folds stored readings into their devices' history rollups (docs/adr/0006-history-rollups.md):
   * one consistent BatchGetItem of every bucket they touch (all intervals), the new values computed
   * bottom-up in memory (storage/rollups.ts), BatchWriteItem of the buckets that changed. Give it
   * every reading put() took, duplicates included: a uuid already counted is skipped, and a bucket
   * whose parents a crash left behind is repaired. One device's updates run one after another in
   * this process; across processes, see the ADR. Throws StorageUnavailableError as put() does.
   */
  async updateRollups (readings: readonly Reading[]): Promise<{ written: number }> {
    if (readings.length === 0) return { written: 0 }
    const byDevice = new Map<string, Reading[]>()
    for (const r of readings) {
      const list = byDevice.get(r.device)
      if (list === undefined) byDevice.set(r.device, [r])
      else list.push(r)
    }
    const devices = [...byDevice.keys()]
    const before = devices.map(d => this.rollupTails.get(d))
    let release!: () => void
    const mine = new Promise<void>(resolve => { release = resolve })
    for (const d of devices) this.rollupTails.set(d, mine)
    try {
      await Promise.all(before)
      const keys: Array<Record<string, AttributeValue>> = []
      for (const [device, list] of byDevice) for (const sk of affectedSks(list)) keys.push({ device: { S: device }, sk: { S: sk } })
      const found = new Map<string, Map<string, RollupBucket>>()
      await this.batchGet(keys, { ConsistentRead: true }, 'reading history rollups', item => {
        const device = item.device?.S
        const bucket = bucketOf(item)
        if (device === undefined || bucket === undefined) return
        let buckets = found.get(device)
        if (buckets === undefined) found.set(device, buckets = new Map())
        buckets.set(item.sk!.S!, bucket)
      })
      const items: Array<Record<string, unknown>> = []
      for (const [device, list] of byDevice) {
        for (const bucket of applyReadings(list, found.get(device) ?? new Map())) items.push(rollupItem(device, bucket, this.rollupRetentionSeconds))
      }
      const chunks: Array<Array<Record<string, unknown>>> = []
      for (let i = 0; i < items.length; i += BATCH) chunks.push(items.slice(i, i + BATCH))
      await mapLimit(chunks, this.writeConcurrency, chunk => this.writeChunk(chunk, 'writing history rollups'))
      return { written: items.length }
    } finally {
      release()
      for (const d of devices) if (this.rollupTails.get(d) === mine) this.rollupTails.delete(d)
    }
  }

  /**
   * The rollup buckets of one device and interval from the bucket holding `fromMs` up to `toMs`,
   * oldest first: one Query (paged by DynamoDB's 1 MB) on the device's partition over
   * `r#<interval>#<from bucket>`..`r#<interval>#<to>`, projected to the summary (never the uuids
   * or children). Buckets without readings do not exist. O(buckets), whatever the readings.
   */
  async rollupsBetween (device: string, interval: Interval, fromMs: number, toMs: number): Promise<StatsBucket[]> {
    const lo = rollupSk(interval, bucketStart(fromMs, interval))
    const hi = rollupSk(interval, toMs)
    const pages = queryPages(async (start?: Record<string, AttributeValue>) => await this.doc.send(new RawQueryCommand({
      TableName: this.table,
      KeyConditionExpression: 'device = :d AND sk BETWEEN :lo AND :hi',
      ExpressionAttributeValues: { ':d': { S: device }, ':lo': { S: lo }, ':hi': { S: hi } },
      ...BUCKET_PROJECTION,
      ExpressionAttributeNames: { ...BUCKET_PROJECTION.ExpressionAttributeNames },
      ScanIndexForward: true,
      ExclusiveStartKey: start
    })), 'reading history rollups')
    return await decodeAll(pages, servedBucket)
  }

  /** Forgets the claims that every put still to classify will find in the table. */
  private pruneClaims (): void {
    const oldest = this.unclassified[0] ?? Infinity
    while (this.finishedClaims.length > 0 && this.finishedClaims[0]!.doneAt < oldest) {
      const { owner, keys } = this.finishedClaims.shift()!
      for (const key of keys) if (this.recentClaims.get(key)?.owner === owner) this.recentClaims.delete(key)
    }
  }

  /** The claims of these `device\u0000sk` keys that the table holds. */
  private async readClaims (keys: string[]): Promise<Map<string, Claim>> {
    const found = new Map<string, Claim>()
    await this.batchGet(keys.map(k => {
      const [device, sk] = k.split('\u0000') as [string, string]
      return { device: { S: device }, sk: { S: sk } }
    }), CLAIM_PROJECTION, 'reading uuid claims', item => {
      const decoded = claimOf(item)
      if (decoded !== undefined) found.set(decoded.key, decoded.claim)
    })
    return found
  }

  /**
   * `BatchGetItem` of many keys in as few calls as DynamoDB allows (100 keys each, in parallel);
   * keys DynamoDB leaves unprocessed (throttling) are asked for again with backoff. Errors are not
   * retried here (the SDK has already): the caller decides.
   */
  private async batchGet (
    keys: Array<Record<string, AttributeValue>>, params: Record<string, unknown>, what: string, onItem: (item: Record<string, AttributeValue>) => void
  ): Promise<void> {
    const chunks: Array<Array<Record<string, AttributeValue>>> = []
    for (let i = 0; i < keys.length; i += GET_BATCH) chunks.push(keys.slice(i, i + GET_BATCH))
    await mapLimit(chunks, this.writeConcurrency, async chunk => {
      let pending = chunk
      for (let attempt = 1; ; attempt++) {
        let out
        try {
          out = await this.doc.send(new BatchGetItemCommand({ RequestItems: { [this.table]: { Keys: pending, ...params } } }))
        } catch (err) {
          throw mapStorageError(err, what)
        }
        for (const item of out.Responses?.[this.table] ?? []) onItem(item)
        const unprocessed = out.UnprocessedKeys?.[this.table]?.Keys
        if (unprocessed === undefined || unprocessed.length === 0) return
        if (attempt >= this.maxBatchAttempts) {
          throw new StorageUnavailableError(`DynamoDB left ${unprocessed.length} keys unprocessed while ${what} after ${attempt} attempts (throttling)`)
        }
        pending = unprocessed
        await this.backoff(attempt)
      }
    })
  }

  private nextRevision (): string {
    return `${this.revPrefix}.${(++this.revCounter).toString(36)}`
  }

  private async writeChunk (chunk: Array<Record<string, unknown>>, what = 'writing readings'): Promise<void> {
    let requests = chunk.map(Item => ({ PutRequest: { Item } }))
    for (let attempt = 1; ; attempt++) {
      let unprocessed
      try {
        const out = await this.doc.send(new BatchWriteCommand({ RequestItems: { [this.table]: requests } }))
        unprocessed = out.UnprocessedItems?.[this.table]
      } catch (err) {
        const mapped = mapStorageError(err, what)
        if (!(mapped instanceof StorageUnavailableError) || attempt >= this.maxBatchAttempts) throw mapped
        await this.backoff(attempt)
        continue
      }
      if (unprocessed === undefined || unprocessed.length === 0) return
      if (attempt >= this.maxBatchAttempts) {
        throw new StorageUnavailableError(`DynamoDB left ${unprocessed.length} writes unprocessed after ${attempt} attempts (throttling)`)
      }
      requests = unprocessed as typeof requests
      await this.backoff(attempt)
    }
  }

  private async backoff (attempt: number): Promise<void> {
    const cap = Math.min(this.backoffMs * 2 ** (attempt - 1), 5_000)
    await sleep(cap / 2 + Math.random() * cap / 2)
  }

  /** Moves the status to this reading; false when the table already has a newer one. */
  private async advanceStatus (sk: string, reading: Reading): Promise<boolean> {
    const item: Record<string, unknown> = {
      device: reading.device,
      sk: STATUS_SK,
      // the fleet index's shard: status items only, so the index holds one item per device
      [FLEET_INDEX.hash]: fleetShard(reading.device),
      latest_sk: sk,
      rev: this.nextRevision(),
      kind: reading.kind,
      uuid: reading.uuid,
      loading_datetime: reading.loading_datetime,
      prediction: reading.prediction,
      probability: reading.probability,
      throttled_flags: reading.throttled_flags,
      source: reading.source,
      reasons: reading.reasons,
      missing: reading.missing,
      threshold: reading.threshold
    }
    try {
      await this.doc.send(new PutCommand({
        TableName: this.table,
        Item: item,
        // Never move a status backwards: a late, older reading leaves it as it is.
        ConditionExpression: 'attribute_not_exists(latest_sk) OR latest_sk < :sk',
        ExpressionAttributeValues: { ':sk': sk }
      }))
      if (this.writtenStatus.size >= 100_000) this.writtenStatus.clear()
      if ((this.writtenStatus.get(reading.device) ?? '') < sk) this.writtenStatus.set(reading.device, sk)
      return true
    } catch (err) {
      if (isConditionFailure(err)) return false
      throw mapStorageError(err, 'updating a status')
    }
  }

  /** A late (older) reading leaves the status as it is but still changes its revision. */
  private async bumpRevision (device: string): Promise<void> {
    try {
      await this.doc.send(new UpdateCommand({
        TableName: this.table,
        Key: { device, sk: STATUS_SK },
        UpdateExpression: 'SET rev = :rev, #fleet = :fleet',
        // Never creates a status: one exists, since a newer reading was there first.
        ConditionExpression: 'attribute_exists(latest_sk)',
        ExpressionAttributeNames: { '#fleet': FLEET_INDEX.hash },
        ExpressionAttributeValues: { ':rev': this.nextRevision(), ':fleet': fleetShard(device) }
      }))
    } catch (err) {
      if (isConditionFailure(err)) return
      throw mapStorageError(err, 'updating a status')
    }
  }

  /**
   * The statuses of many devices in as few `BatchGetItem` calls as DynamoDB allows (100 keys
   * each); keys DynamoDB leaves unprocessed (throttling) are asked for again with backoff.
   * Devices without a status are absent from the answer. This is the pollers' refresh read (every
   * device in use, once a TTL), so it skips the document client: the low-level command with a
   * projection of the status attributes, decoded by `statusOf`, costs the event loop 17 % less CPU
   * (3.2-3.8 against 3.9-4.6 ms for 100 statuses, interleaved against dynalite; BENCHMARKS.md, 21).
   */
  async getStatuses (devices: Iterable<string>): Promise<Map<string, StatusRecord>> {
    const found = new Map<string, StatusRecord>()
    const keys = [...new Set(devices)].map(device => ({ device: { S: device }, sk: { S: STATUS_SK } }))
    await this.batchGet(keys, STATUS_PROJECTION, 'reading statuses', item => {
      const record = statusOf(item)
      if (record !== undefined) {
        found.set(record.device, record)
        if (this.unreadable.size > 0) this.unreadable.delete(record.device)
        return
      }
      const device = item.device?.S ?? '(no device)'
      if (this.unreadable.has(device)) return
      if (this.unreadable.size >= 10_000) this.unreadable.clear()
      this.unreadable.add(device)
      this.onUnreadableStatus(device, item)
    })
    return found
  }

  /**
   * Every device's status: one Query per shard of the sparse fleet index (16, in parallel), each
   * following `LastEvaluatedKey` (1 MB pages), with the status projection, decoded as `getStatuses`
   * does. Never a Scan. Eventually consistent, as every index read: a status written a moment ago
   * may show at the next read. Throws StorageUnavailableError when DynamoDB does not answer.
   */
  async fleetStatuses (): Promise<StatusRecord[]> {
    const shards = await Promise.all(FLEET_SHARDS.map(async shard => {
      const pages = queryPages(async (start?: Record<string, AttributeValue>) => await this.doc.send(new RawQueryCommand({
        TableName: this.table,
        IndexName: FLEET_INDEX.name,
        KeyConditionExpression: '#shard = :shard',
        ProjectionExpression: STATUS_PROJECTION.ProjectionExpression,
        ExpressionAttributeNames: { ...STATUS_PROJECTION.ExpressionAttributeNames, '#shard': FLEET_INDEX.hash },
        ExpressionAttributeValues: { ':shard': { S: shard } },
        ExclusiveStartKey: start
      })), 'reading the fleet index')
      return await decodeAll(pages, statusOf)
    }))
    return shards.flat()
  }

  async listDevice (device: string, options: ListOptions): Promise<Page<Reading>> {
    const start = options.cursor !== undefined ? decodeCursor(options.cursor, device) : undefined
    const { lo, hi } = bounds(options, start)
    return await this.query({
      TableName: this.table,
      KeyConditionExpression: 'device = :d AND sk BETWEEN :lo AND :hi',
      ExpressionAttributeValues: { ':d': device, ':lo': lo, ':hi': hi },
      ExclusiveStartKey: start !== undefined ? { device, sk: start.sk } : undefined
    }, options.limit, 'listing a device\'s readings')
  }

  /**
   * Every reading of one device from `from` to `to`, oldest first, a page (array) at a time: one
   * Query a page, following `LastEvaluatedKey`, never a Scan. A page is queried only when the
   * caller asks for it (lazy: a consumer that stops pulling, or calls `return()`, stops the reads).
   * The items are as stored (with the table's own attributes: `sk`, `feed`, `expires_at`); callers
   * pick the Reading fields. Throws StorageUnavailableError when DynamoDB cannot answer a page.
   */
  async * readingsBetween (device: string, options: BetweenOptions = {}): AsyncGenerator<Reading[], void, undefined> {
    const { lo, hi } = bounds({ limit: 0, from: options.from, to: options.to })
    const limit = options.pageSize ?? BETWEEN_PAGE_SIZE
    const pages = queryPages(async (start?: Record<string, unknown>) => await this.doc.send(new QueryCommand({
      TableName: this.table,
      KeyConditionExpression: 'device = :d AND sk BETWEEN :lo AND :hi',
      ExpressionAttributeValues: { ':d': device, ':lo': lo, ':hi': hi },
      ScanIndexForward: true,
      Limit: limit,
      ExclusiveStartKey: start
    })), 'reading a device\'s readings oldest first')
    for await (const items of pages) {
      if (items.length > 0) yield items as Reading[]
    }
  }

  async listAll (options: ListOptions): Promise<Page<Reading>> {
    const start = options.cursor !== undefined ? decodeCursor(options.cursor) : undefined
    const { lo, hi } = bounds(options, start)
    return await this.query({
      TableName: this.table,
      IndexName: ALL_INDEX.name,
      KeyConditionExpression: `${ALL_INDEX.hash} = :f AND sk BETWEEN :lo AND :hi`,
      ExpressionAttributeValues: { ':f': ALL_INDEX.value, ':lo': lo, ':hi': hi },
      ExclusiveStartKey: start !== undefined ? { device: start.device, sk: start.sk, [ALL_INDEX.hash]: ALL_INDEX.value } : undefined
    }, options.limit, 'listing readings')
  }

  private async query (input: ConstructorParameters<typeof QueryCommand>[0], limit: number, what: string): Promise<Page<Reading>> {
    // One item more than the page tells whether another page exists, so the last page has no cursor.
    let out
    try {
      out = await this.doc.send(new QueryCommand({ ...input, ScanIndexForward: false, Limit: limit + 1 }))
    } catch (err) {
      throw mapStorageError(err, what)
    }
    const items = (out.Items ?? []) as Array<Reading & { sk: string }>
    if (items.length <= limit) {
      // DynamoDB also stops at 1 MB of data: then the last item read starts the next page.
      const last = items[items.length - 1]
      return out.LastEvaluatedKey !== undefined && last !== undefined ? { items, next: encodeCursor(last.device, last.sk) } : { items }
    }
    const page = items.slice(0, limit)
    const last = page[page.length - 1]!
    return { items: page, next: encodeCursor(last.device, last.sk) }
  }
}

import { StatusMessage, type Reading, type Status } from '../schemas/readings.js'
import { verdictFields, type ReadingsRepository, type StatusRecord } from '../storage/readings-repository.js'

export interface StatusCacheOptions {
  repository: Pick<ReadingsRepository, 'getStatuses'>
  staleAfterSeconds: number
  /** how long a status read from the table is served from memory; 0 disables the cache */
  ttlMs: number
  maxEntries?: number
  now?: () => number
  /** reads started failing (called once per outage; requests keep their entries for up to two TTLs) */
  onRefreshError?: (err: unknown) => void
}

/** What the table said of a device at `at` (when the read was sent). */
export interface Revision {
  record: StatusRecord | null
  at: number
}

interface Entry extends Revision {
  /**
   * when it was last asked for (0: not since the device was first read). Entries asked for within
   * the last TTL are in use and refreshed ahead of time; the mark outlives a refresh, so a read
   * that takes long does not make the entries it refreshes look unused.
   */
  usedAt: number
}

interface Waiter {
  promise: Promise<Revision>
  resolve: (revision: Revision) => void
  reject: (err: unknown) => void
}

function waiter (): Waiter {
  let resolve!: Waiter['resolve']
  let reject!: Waiter['reject']
  const promise = new Promise<Revision>((_resolve, _reject) => { resolve = _resolve; reject = _reject })
  promise.catch(() => {}) // a background refresh may have nobody waiting
  return { promise, resolve, reject }
}

/**
 * Latest status per device, kept in memory for `ttlMs`. Reads are batched: every device that
 * needs a read in one turn of the event loop, plus every entry in use that is past half its TTL,
 * goes into one `BatchGetItem` (100 keys a call), so pollers of a hundred devices cost one table
 * call per TTL and the entries stay in step. A device is read once however many wait for it
 * (single flight). An entry between one and two TTLs old is answered at once while it is
 * refreshed, so a status is never older than 2 × ttlMs; past that a request waits for the table
 * (and sees its error). Statuses written by this process apply at once (write-through).
 */
export class StatusCache {
  private readonly repository: StatusCacheOptions['repository']
  private readonly staleAfterMs: number
  private readonly ttlMs: number
  private readonly maxEntries: number
  private readonly now: () => number
  private readonly onRefreshError: (err: unknown) => void
  /** in order of `at`, oldest first (an entry is moved to the end when read again) */
  private readonly cache = new Map<string, Entry>()
  private readonly inflight = new Map<string, Waiter>()
  private queued = new Map<string, Waiter>()
  private scheduled = false
  private failing = false
  private readonly listeners: Array<(device: string, revision: Revision) => void> = []

  constructor (options: StatusCacheOptions) {
    this.repository = options.repository
    this.staleAfterMs = options.staleAfterSeconds * 1000
    this.ttlMs = options.ttlMs
    this.maxEntries = options.maxEntries ?? 100_000
    this.now = options.now ?? Date.now
    this.onRefreshError = options.onRefreshError ?? (() => {})
  }

  /** Called with every status read from the table (the history cache revalidates its pages with them). */
  onRead (listener: (device: string, revision: Revision) => void): void {
    this.listeners.push(listener)
  }

  async record (device: string): Promise<StatusRecord | null> {
    return (await this.revision(device)).record
  }

  /**
   * The cached read of the device, synchronously, when it can be answered with: younger than the
   * TTL, or between one and two TTLs old (a read is then started to refresh it). Otherwise undefined.
   */
  peek (device: string): Revision | undefined {
    const entry = this.cache.get(device)
    if (entry === undefined) return this.missed()
    const now = this.now()
    entry.usedAt = now
    const age = now - entry.at
    if (age < this.ttlMs) return this.hit(entry)
    if (age >= 2 * this.ttlMs) return this.missed()
    this.fresh(device).catch(() => {}) // its failure shows on the requests that wait for one
    return this.hit(entry)
  }

  /** peek's answers from memory and its misses (the metrics' sensors_cache_requests_total) */
  readonly counts = { hits: 0, misses: 0 }

  private hit (entry: Revision): Revision {
    this.counts.hits++
    return entry
  }

  private missed (): undefined {
    this.counts.misses++
    return undefined
  }

  /**
   * Marks the device's cached read as in use without answering from it (a history page it
   * validated was): entries in use are refreshed ahead, together, in the next batched read.
   */
  touch (device: string): void {
    const entry = this.cache.get(device)
    if (entry !== undefined) entry.usedAt = this.now()
  }

  /** The cached read of the device if it can be answered with (see `peek`), else a new one. */
  async revision (device: string): Promise<Revision> {
    return this.peek(device) ?? await this.fresh(device)
  }

  /** A read of the device sent from now on (or joining one already on its way). */
  // Not async: the waiter's own promise (which never counts as unhandled) is what callers get.
  fresh (device: string): Promise<Revision> {
    let w = this.inflight.get(device) ?? this.queued.get(device)
    if (w === undefined) {
      w = waiter()
      this.queued.set(device, w)
      if (!this.scheduled) {
        this.scheduled = true
        setImmediate(() => { this.flush() })
      }
    }
    return w.promise
  }

  private flush (): void {
    this.scheduled = false
    const batch = this.queued
    this.queued = new Map()
    if (this.ttlMs > 0) {
      // Refresh ahead: entries in use past half their TTL join this call instead of making their own.
      const now = this.now()
      for (const [device, entry] of this.cache) {
        const age = now - entry.at
        if (age < this.ttlMs / 2) break
        if (batch.has(device) || this.inflight.has(device)) continue
        if (now - entry.usedAt < this.ttlMs) batch.set(device, waiter())
        else if (age >= 2 * this.ttlMs) this.cache.delete(device) // unused and too old to answer with
      }
    }
    for (const [device, w] of batch) this.inflight.set(device, w)
    const at = this.now()
    this.repository.getStatuses(batch.keys()).then(found => {
      this.failing = false
      for (const [device, w] of batch) {
        this.inflight.delete(device)
        const revision = this.remember(device, found.get(device) ?? null, at)
        w.resolve(revision)
        for (const listener of this.listeners) listener(device, revision)
      }
    }, err => {
      for (const [device, w] of batch) {
        this.inflight.delete(device)
        w.reject(err)
      }
      if (!this.failing) this.onRefreshError(err)
      this.failing = true
    })
  }

  private remember (device: string, record: StatusRecord | null, at: number): Revision {
    if (this.ttlMs === 0) return { record, at }
    const current = this.cache.get(device)
    // A write-through that landed while the read was in flight is newer: keep it. The same
    // revision is the same item: keep the object, and with it the answers made from it.
    if (current?.record != null && (record === null || newer(current.record, record) || sameRevision(current.record, record))) record = current.record
    if (current !== undefined) this.cache.delete(device)
    else this.makeRoom()
    const entry: Entry = { record, at, usedAt: current?.usedAt ?? 0 }
    this.cache.set(device, entry)
    return entry
  }

  /** Past maxEntries the entry read longest ago goes (for a device not kept yet). */
  private makeRoom (): void {
    if (this.cache.size < this.maxEntries) return
    const oldest = this.cache.keys().next().value
    if (oldest !== undefined) this.cache.delete(oldest)
  }

  /** Applies readings this process has just stored. */
  observe (readings: Reading[]): void {
    if (this.ttlMs === 0) return
    for (const r of readings) {
      const entry = this.cache.get(r.device)
      if (entry?.record != null && !newer(r, entry.record)) continue
      const record = recordOf(r)
      if (entry !== undefined) entry.record = record
      else {
        this.makeRoom()
        this.cache.set(r.device, { record, at: this.now(), usedAt: 0 })
      }
    }
  }

  /** How old a reading taken at `takenMs` is now, in tenths of a second (the answers' resolution), and whether that is stale. */
  age (takenMs: number): { tenths: number, stale: boolean } {
    const ageMs = Math.max(0, this.now() - takenMs)
    return { tenths: Math.round(ageMs / 100), stale: ageMs > this.staleAfterMs }
  }

  /** `age`: the record's, when the caller has just computed it (so the answer matches it). */
  toStatus (record: StatusRecord, age = this.age(Date.parse(record.loading_datetime))): Status {
    return statusFrom(record, age)
  }
}

/** A status record as the API serves it (`/devices/{device}/status`, `/fleet`, the events), at `age`. */
/**
 * The status record a reading this process has just stored makes, as its status item holds it.
 * No `rev`: this process does not know the revision its own write gave the item.
 */
export function recordOf (r: Reading): StatusRecord {
  return {
    device: r.device,
    kind: r.kind,
    uuid: r.uuid,
    loading_datetime: r.loading_datetime,
    prediction: r.prediction,
    probability: r.probability,
    ...(r.throttled_flags !== undefined ? { throttled_flags: r.throttled_flags } : {}),
    ...(r.source !== undefined ? { source: r.source } : {}),
    ...(r.reasons !== undefined ? { reasons: r.reasons } : {}),
    ...(r.missing !== undefined ? { missing: r.missing } : {}),
    ...(r.threshold !== undefined ? { threshold: r.threshold } : {})
  }
}

export function statusFrom (record: StatusRecord, age: { tenths: number, stale: boolean }): Status {
  const { tenths, stale } = age
  const stressed = record.prediction === 1
  const status: Status = {
    msg: stale ? StatusMessage.stale : stressed ? StatusMessage.stressed : StatusMessage.ok,
    device: record.device,
    kind: record.kind,
    stressed,
    probability: record.probability,
    loading_datetime: record.loading_datetime,
    uuid: record.uuid,
    age_seconds: tenths / 10,
    stale
  }
  if (record.throttled_flags !== undefined) status.throttled_flags = record.throttled_flags
  return Object.assign(status, verdictFields(record))
}

function sameRevision (a: StatusRecord, b: StatusRecord): boolean {
  return a.rev !== undefined && a.rev === b.rev
}

export function newer (a: { loading_datetime: string, uuid: string }, b: { loading_datetime: string, uuid: string }): boolean {
  return a.loading_datetime > b.loading_datetime || (a.loading_datetime === b.loading_datetime && a.uuid > b.uuid)
}

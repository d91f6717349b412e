import type { Reading, Status } from '../schemas/readings.js'
import { DEVICE_ID_PATTERN } from '../schemas/devices.js'
import type { ReadingsRepository, StatusRecord } from '../storage/readings-repository.js'
import { InvalidCursorError } from '../storage/errors.js'
import { newer, recordOf, statusFrom } from './status-cache.js'

// The fleet (GET /fleet and the status events, issue 16): every device's status in memory, read
// from the sparse fleet index in one round of 16 Queries per TTL however many ask (single flight),
// sorted, filtered and paged here. While anyone subscribes to events, it is read every TTL and the
// differences (a newer reading, a turn to stale) become events (docs/adr/0005-fleet-access-path.md).

export const FLEET_STATES = ['ok', 'stressed', 'stale'] as const
export type FleetState = typeof FLEET_STATES[number]
export const FLEET_SORTS = ['risk', 'device'] as const
export type FleetSort = typeof FLEET_SORTS[number]

export interface FleetCounts { total: number, ok: number, stressed: number, stale: number }

export interface FleetQuery {
  /** only devices in these states (absent: all) */
  states?: ReadonlySet<FleetState> | undefined
  kind?: Reading['kind'] | undefined
  sort: FleetSort
  limit: number
  cursor?: string | undefined
}

export interface FleetPage {
  devices: Status[]
  /** every device of the kind asked (all kinds when none), whatever its state */
  counts: FleetCounts
  next?: string
}

/** A device's status as it changed (a newer reading, or it turned stale): `id` grows by one per event. */
export interface FleetEvent { id: number, device: string, status: Status }

export interface FleetViewOptions {
  repository: Pick<ReadingsRepository, 'fleetStatuses'>
  staleAfterSeconds: number
  /** how long a read of the index is answered with (and, with subscribers, how often it is read again) */
  ttlMs: number
  now?: () => number
  /** calls `fn` every `ms` until the returned function is called (default: an unref'd setInterval) */
  repeat?: (fn: () => void, ms: number) => () => void
  /** reads started failing (called once per outage) */
  onRefreshError?: (err: unknown) => void
}

interface Entry {
  record: StatusRecord
  /** the reading's time, parsed once */
  ms: number
  /** the staleness last announced (or known when it was read) */
  stale: boolean
}

/** The shortest pause between two reads while there are subscribers (STATUS_CACHE_TTL_MS may be 0). */
const MIN_POLL_MS = 100
const DEVICE_RE = new RegExp(DEVICE_ID_PATTERN)

function defaultRepeat (fn: () => void, ms: number): () => void {
  const timer = setInterval(fn, ms)
  timer.unref()
  return () => { clearInterval(timer) }
}

/** Risk order: stale and stressed devices first, then the highest probability, then the device id. */
interface RiskKey { group: 0 | 1, probability: number, device: string }

function compareRisk (a: RiskKey, b: RiskKey): number {
  return a.group - b.group || b.probability - a.probability || (a.device < b.device ? -1 : a.device > b.device ? 1 : 0)
}

function compareDevice (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

export class FleetView {
  private readonly repository: FleetViewOptions['repository']
  private readonly staleAfterMs: number
  private readonly ttlMs: number
  private readonly now: () => number
  private readonly repeat: NonNullable<FleetViewOptions['repeat']>
  private readonly onRefreshError: (err: unknown) => void
  private entries = new Map<string, Entry>()
  /** when the last read that answered was sent (-Infinity: never) */
  private loadedAt = -Infinity
  private inflight: Promise<void> | undefined
  private failing = false
  /** changes with every change of `entries` */
  private version = 0
  private sorted: { version: number, staleCount: number, sort: FleetSort, entries: Entry[] } | undefined
  private readonly listeners = new Set<(event: FleetEvent) => void>()
  private stopPolling: (() => void) | undefined
  private eventId = 0

  constructor (options: FleetViewOptions) {
    this.repository = options.repository
    this.staleAfterMs = options.staleAfterSeconds * 1000
    this.ttlMs = options.ttlMs
    this.now = options.now ?? Date.now
    this.repeat = options.repeat ?? defaultRepeat
    this.onRefreshError = options.onRefreshError ?? (() => {})
  }

  get size (): number {
    return this.entries.size
  }

  get subscribers (): number {
    return this.listeners.size
  }

  /**
   * A page of the fleet: from memory while the last read is younger than the TTL; between one and
   * two TTLs old it is answered with while a read refreshes it; older (or never read), the read is
   * waited for, and its failure (StorageUnavailableError) is the caller's.
   */
  async page (query: FleetQuery): Promise<FleetPage> {
    const age = this.now() - this.loadedAt
    if (age >= this.ttlMs) {
      const read = this.refresh()
      if (age >= 2 * this.ttlMs) await read
      else read.catch(() => {})
    }
    return this.read(query)
  }

  /** A page from what is in memory now. Throws InvalidCursorError for a cursor this view did not give (or of another sort). */
  read (query: FleetQuery): FleetPage {
    const now = this.now()
    const counts: FleetCounts = { total: 0, ok: 0, stressed: 0, stale: 0 }
    let staleCount = 0
    for (const entry of this.entries.values()) {
      const state = this.stateOf(entry, now)
      if (state === 'stale') staleCount++
      if (query.kind !== undefined && entry.record.kind !== query.kind) continue
      counts.total++
      counts[state]++
    }
    const order = this.sortedEntries(query.sort, now, staleCount)
    let i = query.cursor === undefined ? 0 : this.after(order, query.sort, decodeCursor(query.cursor, query.sort), now)
    const devices: Status[] = []
    let last: Entry | undefined
    let next: string | undefined
    for (; i < order.length; i++) {
      const entry = order[i]!
      if (query.kind !== undefined && entry.record.kind !== query.kind) continue
      if (query.states !== undefined && !query.states.has(this.stateOf(entry, now))) continue
      if (devices.length === query.limit) {
        next = encodeCursor(query.sort, this.riskKey(last!, now))
        break
      }
      devices.push(this.statusOf(entry, now))
      last = entry
    }
    return next === undefined ? { devices, counts } : { devices, counts, next }
  }

  /** One read of the index (joining the one on its way); its differences become events. */
  // Not async: the same promise for every caller while it is on its way.
  refresh (): Promise<void> {
    if (this.inflight !== undefined) return this.inflight
    const at = this.now()
    const read = this.repository.fleetStatuses().then(records => {
      this.failing = false
      this.apply(records, at)
    }, err => {
      if (!this.failing) this.onRefreshError(err)
      this.failing = true
      throw err
    })
    this.inflight = read
    const done = (): void => { if (this.inflight === read) this.inflight = undefined }
    read.then(done, done)
    return read
  }

  /** Readings this process has just stored (ROLE=all): their statuses, and events, at once. */
  observe (readings: Reading[]): void {
    const now = this.now()
    let changed = false
    for (const r of readings) {
      const current = this.entries.get(r.device)
      if (current !== undefined && !newer(r, current.record)) continue
      const entry = this.entryOf(recordOf(r), now)
      this.entries.set(r.device, entry)
      changed = true
      this.emit(entry, now)
    }
    if (changed) this.version++
  }

  /**
   * Events from now on: while there is a subscriber, the index is read every TTL and the stale
   * timer runs. Returns the function that ends the subscription.
   */
  subscribe (listener: (event: FleetEvent) => void): () => void {
    this.listeners.add(listener)
    if (this.stopPolling === undefined) {
      this.stopPolling = this.repeat(() => { this.tick() }, Math.max(this.ttlMs, MIN_POLL_MS))
      if (this.loadedAt === -Infinity) this.refresh().catch(() => {}) // the baseline the events are differences from
    }
    return () => {
      this.listeners.delete(listener)
      if (this.listeners.size === 0 && this.stopPolling !== undefined) {
        this.stopPolling()
        this.stopPolling = undefined
      }
    }
  }

  /** What the timer does while there are subscribers: a read when the last is a TTL old, and the stale check. */
  tick (): void {
    // A tenth of slack: the timer and the last read's start are a TTL apart give or take a few ms,
    // and a read skipped for 1 ms would make the events two TTLs late.
    if (this.now() - this.loadedAt >= this.ttlMs * 0.9) this.refresh().catch(() => {}) // logged once per outage by onRefreshError
    this.checkStale()
  }

  /** Announces every device that has turned stale since the last check. */
  checkStale (): void {
    const now = this.now()
    for (const entry of this.entries.values()) {
      const stale = now - entry.ms > this.staleAfterMs
      if (stale === entry.stale) continue
      entry.stale = stale
      this.version++
      this.emit(entry, now)
    }
  }

  close (): void {
    this.listeners.clear()
    this.stopPolling?.()
    this.stopPolling = undefined
  }

  private apply (records: StatusRecord[], at: number): void {
    const now = this.now()
    // The first read is the baseline: what it finds is no change.
    const announce = this.loadedAt !== -Infinity
    const next = new Map<string, Entry>()
    for (const record of records) {
      const current = this.entries.get(record.device)
      // The same reading (another revision: a late reading was stored) or one this process stored
      // after the read was sent (the index lags): keep what is known.
      const same = current !== undefined && current.record.uuid === record.uuid && current.record.loading_datetime === record.loading_datetime
      if (current !== undefined && (same || newer(current.record, record))) {
        next.set(record.device, current)
        continue
      }
      const entry = this.entryOf(record, now)
      next.set(record.device, entry)
      if (announce) this.emit(entry, now)
    }
    // Stored by this process and not in the index yet: kept until it is.
    for (const [device, entry] of this.entries) {
      if (!next.has(device) && entry.record.rev === undefined) next.set(device, entry)
    }
    this.entries = next
    this.version++
    this.loadedAt = at
    this.checkStale()
  }

  private entryOf (record: StatusRecord, now: number): Entry {
    const ms = Date.parse(record.loading_datetime)
    return { record, ms, stale: now - ms > this.staleAfterMs }
  }

  private emit (entry: Entry, now: number): void {
    if (this.listeners.size === 0) return
    const event: FleetEvent = { id: ++this.eventId, device: entry.record.device, status: this.statusOf(entry, now) }
    for (const listener of this.listeners) listener(event)
  }

  private stateOf (entry: Entry, now: number): FleetState {
    return now - entry.ms > this.staleAfterMs ? 'stale' : entry.record.prediction === 1 ? 'stressed' : 'ok'
  }

  private statusOf (entry: Entry, now: number): Status {
    const ageMs = Math.max(0, now - entry.ms)
    return statusFrom(entry.record, { tenths: Math.round(ageMs / 100), stale: ageMs > this.staleAfterMs })
  }

  private riskKey (entry: Entry, now: number): RiskKey {
    return { group: this.stateOf(entry, now) === 'ok' ? 1 : 0, probability: entry.record.probability, device: entry.record.device }
  }

  /**
   * Every entry in the order asked, sorted once per change: for one set of entries the stale ones
   * only grow in number as time passes, so their count tells whether the risk order still holds.
   */
  private sortedEntries (sort: FleetSort, now: number, staleCount: number): Entry[] {
    const cached = this.sorted
    if (cached !== undefined && cached.version === this.version && cached.sort === sort && (sort === 'device' || cached.staleCount === staleCount)) return cached.entries
    const entries = [...this.entries.values()]
    if (sort === 'device') entries.sort((a, b) => compareDevice(a.record.device, b.record.device))
    else {
      const keys = new Map(entries.map(e => [e, this.riskKey(e, now)]))
      entries.sort((a, b) => compareRisk(keys.get(a)!, keys.get(b)!))
    }
    this.sorted = { version: this.version, staleCount, sort, entries }
    return entries
  }

  /** The index of the first entry after the cursor's position (binary search). */
  private after (order: Entry[], sort: FleetSort, key: RiskKey, now: number): number {
    let lo = 0
    let hi = order.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const entry = order[mid]!
      const c = sort === 'device' ? compareDevice(entry.record.device, key.device) : compareRisk(this.riskKey(entry, now), key)
      if (c <= 0) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

/** `r.<group>.<probability>.<device>` or `d.<device>`, base64url: where the previous page ended, in its sort. */
function encodeCursor (sort: FleetSort, key: RiskKey): string {
  const value = sort === 'device' ? ['d', key.device] : ['r', key.group, key.probability, key.device]
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

function decodeCursor (cursor: string, sort: FleetSort): RiskKey {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    throw new InvalidCursorError()
  }
  if (!Array.isArray(parsed)) throw new InvalidCursorError()
  const device = parsed[parsed.length - 1]
  if (typeof device !== 'string' || !DEVICE_RE.test(device)) throw new InvalidCursorError()
  if (parsed[0] === 'd' && parsed.length === 2) {
    if (sort !== 'device') throw new InvalidCursorError('Invalid cursor: it belongs to another sort (pass the same `sort` as for the previous page)')
    return { group: 0, probability: 0, device }
  }
  if (parsed[0] === 'r' && parsed.length === 4 && (parsed[1] === 0 || parsed[1] === 1) && typeof parsed[2] === 'number' && Number.isFinite(parsed[2])) {
    if (sort !== 'risk') throw new InvalidCursorError('Invalid cursor: it belongs to another sort (pass the same `sort` as for the previous page)')
    return { group: parsed[1], probability: parsed[2], device }
  }
  throw new InvalidCursorError()
}

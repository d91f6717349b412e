import { StatusMessage, type Reading, type Status } from '../schemas/readings.js'
import type { ReadingsRepository, StatusRecord } from './readings-repository.js'

export interface StatusServiceOptions {
  repository: Pick<ReadingsRepository, 'getStatus'>
  staleAfterSeconds: number
  /** how long a status read from the table is served from memory; 0 disables the cache */
  ttlMs: number
  maxEntries?: number
  now?: () => number
}

interface Entry {
  record: StatusRecord | null
  fetchedAt: number
}

/**
 * Latest status per device. N concurrent pollers of one device cost one table read per TTL
 * (single flight). An entry between one and two TTLs old is served while it is refreshed in the
 * background, so a status is never older than 2 × ttlMs. Statuses written by this process are
 * applied at once (write-through).
 */
export class StatusService {
  private readonly repository: StatusServiceOptions['repository']
  private readonly staleAfterMs: number
  private readonly ttlMs: number
  private readonly maxEntries: number
  private readonly now: () => number
  private readonly cache = new Map<string, Entry>()
  private readonly inflight = new Map<string, Promise<StatusRecord | null>>()

  constructor (options: StatusServiceOptions) {
    this.repository = options.repository
    this.staleAfterMs = options.staleAfterSeconds * 1000
    this.ttlMs = options.ttlMs
    this.maxEntries = options.maxEntries ?? 100_000
    this.now = options.now ?? Date.now
  }

  async record (device: string): Promise<StatusRecord | null> {
    const entry = this.cache.get(device)
    const age = entry === undefined ? Infinity : this.now() - entry.fetchedAt
    if (age < this.ttlMs) return entry!.record
    let pending = this.inflight.get(device)
    if (pending === undefined) {
      pending = this.fetch(device)
      this.inflight.set(device, pending)
    }
    // Between one and two TTLs old, answer at once and refresh in the background: pollers never
    // wait for the table, and a status is still never older than two TTLs.
    if (age < 2 * this.ttlMs) {
      pending.catch(() => {})
      return entry!.record
    }
    return await pending
  }

  private async fetch (device: string): Promise<StatusRecord | null> {
    const startedAt = this.now()
    try {
      const record = await this.repository.getStatus(device)
      if (this.ttlMs > 0) this.remember(device, record, startedAt)
      return record
    } finally {
      this.inflight.delete(device)
    }
  }

  private remember (device: string, record: StatusRecord | null, fetchedAt: number): void {
    const current = this.cache.get(device)?.record
    // A write-through that landed while the read was in flight is newer: keep it.
    if (current != null && (record === null || newer(current, record))) record = current
    if (this.cache.size >= this.maxEntries && !this.cache.has(device)) {
      const oldest = this.cache.keys().next().value
      if (oldest !== undefined) this.cache.delete(oldest)
    }
    this.cache.set(device, { record, fetchedAt })
  }

  /** Applies readings this process has just stored. */
  observe (readings: Reading[]): void {
    if (this.ttlMs === 0) return
    for (const r of readings) {
      const entry = this.cache.get(r.device)
      if (entry?.record != null && !newer(r, entry.record)) continue
      const record: StatusRecord = {
        device: r.device,
        kind: r.kind,
        uuid: r.uuid,
        loading_datetime: r.loading_datetime,
        prediction: r.prediction,
        probability: r.probability,
        ...(r.throttled_flags !== undefined ? { throttled_flags: r.throttled_flags } : {})
      }
      this.cache.set(r.device, { record, fetchedAt: entry?.fetchedAt ?? this.now() })
    }
  }

  async get (device: string): Promise<Status | null> {
    const record = await this.record(device)
    return record === null ? null : this.toStatus(record)
  }

  toStatus (record: StatusRecord): Status {
    const ageMs = Math.max(0, this.now() - Date.parse(record.loading_datetime))
    const stale = ageMs > this.staleAfterMs
    const stressed = record.prediction === 1
    const status: Status = {
      msg: stale ? StatusMessage.stale : stressed ? StatusMessage.stressed : StatusMessage.ok,
      device: record.device,
      kind: record.kind,
      stressed,
      probability: record.probability,
      loading_datetime: record.loading_datetime,
      uuid: record.uuid,
      age_seconds: Math.round(ageMs / 100) / 10,
      stale
    }
    if (record.throttled_flags !== undefined) status.throttled_flags = record.throttled_flags
    return status
  }
}

function newer (a: { loading_datetime: string, uuid: string }, b: { loading_datetime: string, uuid: string }): boolean {
  return a.loading_datetime > b.loading_datetime || (a.loading_datetime === b.loading_datetime && a.uuid > b.uuid)
}

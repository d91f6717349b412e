import type { Revision } from './status-cache.js'

/** Where the cache learns what the table says of a device (the status cache). */
export interface RevisionSource {
  /** a read no older than the TTL if there is one, else as `fresh` */
  revision: (device: string) => Promise<Revision>
  /** a read sent from now on (or already on its way) */
  fresh: (device: string) => Promise<Revision>
  onRead: (listener: (device: string, revision: Revision) => void) => void
  /** an answer was given from what the device's last read validated: keep that read up to date */
  touch: (device: string) => void
}

interface Entry<V> {
  value: V
  /** the status revision the page was read under: null when the device had no status, undefined when unknown */
  rev: string | null | undefined
  /** the page is known to match the table as it was at this time */
  at: number
  size: number
}

export interface HistoryCacheOptions<V> {
  ttlMs: number
  revisions: RevisionSource
  /** memory budget: the oldest pages go first when the sizes add up to more */
  maxBytes?: number
  sizeOf?: (value: V) => number
  maxEntries?: number
  now?: () => number
}

/** A page's key: its device and the page's own key within it (joined once, not per lookup). */
export interface PageKey {
  device: string
  full: string
}

export function pageKey (device: string, key: string): PageKey {
  return { device, full: `${device}\u0000${key}` }
}

function revOf (revision: Revision): string | null | undefined {
  return revision.record === null ? null : revision.record.rev
}

/**
 * First pages of device histories (anything derived from them: the route keeps the serialised
 * body). A page is read under the device's status revision, which changes whenever readings of
 * the device are stored (in order or late). After `ttlMs` the page is revalidated by the status
 * read the status cache does anyway (one `BatchGetItem` for many devices) and read again only
 * if the revision moved, so polling an unchanged history costs no query. Like statuses, a page
 * between one and two TTLs old is answered while it is revalidated: a page never reflects the
 * table as it was more than 2 × ttlMs ago. A device's pages are dropped as soon as this process
 * stores a reading of it. Pages behind a cursor are not cached (they are read once).
 */
export class HistoryCache<V> {
  private readonly ttlMs: number
  private readonly maxEntries: number
  private readonly maxBytes: number
  private readonly sizeOf: (value: V) => number
  private bytes = 0
  private readonly now: () => number
  private readonly revisions: RevisionSource
  private readonly entries = new Map<string, Entry<V>>()
  /** reads on their way, by page, with the device's generation when they started */
  private readonly inflight = new Map<string, { gen: number, promise: Promise<V> }>()
  private readonly byDevice = new Map<string, Set<string>>()
  /** bumped when this process stores readings of a device: a read that started before is not kept */
  private readonly generation = new Map<string, number>()
  /**
   * generations are numbered across devices: one forgotten (past maxEntries: read as 0) is never
   * given again, so a read that started before an invalidation never sees its generation again
   */
  private generations = 0

  constructor (options: HistoryCacheOptions<V>) {
    this.ttlMs = options.ttlMs
    this.maxEntries = options.maxEntries ?? 10_000
    this.maxBytes = options.maxBytes ?? Infinity
    this.sizeOf = options.sizeOf ?? (() => 0)
    this.now = options.now ?? Date.now
    this.revisions = options.revisions
    // Status reads made for pollers revalidate pages for free.
    this.revisions.onRead((device, revision) => {
      const keys = this.byDevice.get(device)
      if (keys === undefined) return
      const rev = revOf(revision)
      for (const key of keys) {
        const entry = this.entries.get(key)
        if (entry !== undefined && rev !== undefined && entry.rev === rev && revision.at > entry.at) entry.at = revision.at
      }
    })
  }

  /**
   * The kept page, synchronously, when it can be answered with: validated within the TTL, or
   * between one and two TTLs ago (it is then revalidated with `load`). Otherwise undefined: `get`.
   * The key is made once by `pageKey` (a poller's URL keeps its own): no string to join per request.
   */
  peek ({ device, full }: PageKey, load: () => Promise<V>): V | undefined {
    if (this.ttlMs === 0) return this.missed()
    const hit = this.entries.get(full)
    if (hit === undefined) return this.missed()
    // in use: the device's status is refreshed ahead with the others' (one read for all pages in use)
    this.revisions.touch(device)
    const age = this.now() - hit.at
    if (age < this.ttlMs) return this.hit(hit.value)
    if (age >= 2 * this.ttlMs) return this.missed()
    // one revalidation at a time; a failed one shows on the requests that wait for one
    if (!this.inflight.has(full)) this.refresh(device, full, load).catch(() => {})
    return this.hit(hit.value)
  }

  /** peek's answers from memory and its misses (the metrics' sensors_cache_requests_total) */
  readonly counts = { hits: 0, misses: 0 }

  private hit (value: V): V {
    this.counts.hits++
    return value
  }

  private missed (): undefined {
    this.counts.misses++
    return undefined
  }

  /** The page as `peek` has it, else read (once however many ask for it at the same time). */
  async get (page: PageKey, load: () => Promise<V>): Promise<V> {
    if (this.ttlMs === 0) return await load()
    return this.peek(page, load) ?? await this.refresh(page.device, page.full, load)
  }

  private async refresh (device: string, full: string, load: () => Promise<V>): Promise<V> {
    const gen = this.generation.get(device) ?? 0
    let pending = this.inflight.get(full)
    // A read that started before this process stored readings of the device may miss them: not joined.
    if (pending === undefined || pending.gen !== gen) {
      const promise: Promise<V> = this.revalidate(device, full, load).finally(() => {
        if (this.inflight.get(full)?.promise === promise) this.inflight.delete(full)
      })
      pending = { gen, promise }
      this.inflight.set(full, pending)
    }
    return await pending.promise
  }

  private async revalidate (device: string, full: string, load: () => Promise<V>): Promise<V> {
    const gen = this.generation.get(device) ?? 0
    // Taken before the wait: a read that lands meanwhile moves the page's `at` to its own.
    const validatedAt = this.entries.get(full)?.at
    let revision = await this.revisions.revision(device)
    // The very read the page was validated with (answered while a new one is on its way): wait for that one.
    if (validatedAt !== undefined && revision.at <= validatedAt) revision = await this.revisions.fresh(device)
    const rev = revOf(revision)
    const entry = this.entries.get(full)
    const same = (this.generation.get(device) ?? 0) === gen
    if (entry !== undefined && same && rev !== undefined && entry.rev === rev) {
      if (revision.at > entry.at) entry.at = revision.at
      return entry.value
    }
    // Read under the revision read before it: a write that lands after that read changes it.
    const value = await load()
    if ((this.generation.get(device) ?? 0) === gen) this.remember(device, full, { value, rev, at: revision.at, size: this.sizeOf(value) })
    return value
  }

  /** Keeps a page; the map's order is the order pages were read, so the oldest read goes first. */
  private remember (device: string, full: string, entry: Entry<V>): void {
    this.drop(full)
    if (entry.size > this.maxBytes) return
    while (this.entries.size > 0 && (this.entries.size >= this.maxEntries || this.bytes + entry.size > this.maxBytes)) {
      this.drop(this.entries.keys().next().value as string)
    }
    this.entries.set(full, entry)
    this.bytes += entry.size
    let keys = this.byDevice.get(device)
    if (keys === undefined) this.byDevice.set(device, keys = new Set())
    keys.add(full)
  }

  private drop (full: string): void {
    const entry = this.entries.get(full)
    if (entry === undefined) return
    this.entries.delete(full)
    this.bytes -= entry.size
    const device = full.slice(0, full.indexOf('\u0000'))
    const keys = this.byDevice.get(device)
    keys?.delete(full)
    if (keys?.size === 0) this.byDevice.delete(device)
  }

  /** What the kept pages weigh, by `sizeOf`. */
  get size (): { entries: number, bytes: number } {
    return { entries: this.entries.size, bytes: this.bytes }
  }

  invalidate (devices: Iterable<string>): void {
    for (const device of devices) {
      if (this.generation.size >= this.maxEntries) this.generation.clear()
      this.generation.set(device, ++this.generations)
      for (const key of [...this.byDevice.get(device) ?? []]) this.drop(key)
    }
  }
}

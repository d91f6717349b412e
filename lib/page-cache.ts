import type { Page } from './readings-repository.js'
import type { Reading } from '../schemas/readings.js'

interface Entry {
  page: Page<Reading>
  at: number
}

/**
 * First pages of device histories, kept for `ttlMs` with single flight: dashboards polling the
 * newest readings of a device cost one table query per TTL however many they are. Pages behind
 * a cursor are not cached (they are read once). A device's entries are dropped as soon as this
 * process stores a reading of it.
 */
export class PageCache {
  private readonly entries = new Map<string, Entry>()
  private readonly inflight = new Map<string, Promise<Page<Reading>>>()
  private readonly byDevice = new Map<string, Set<string>>()
  /** bumped when a device's readings change: a load that started before is not cached */
  private readonly generation = new Map<string, number>()

  constructor (private readonly ttlMs: number, private readonly maxEntries = 10_000, private readonly now: () => number = Date.now) {}

  async get (device: string, key: string, load: () => Promise<Page<Reading>>): Promise<Page<Reading>> {
    if (this.ttlMs === 0) return await load()
    const full = `${device}\u0000${key}`
    const hit = this.entries.get(full)
    if (hit !== undefined && this.now() - hit.at < this.ttlMs) return hit.page
    let pending = this.inflight.get(full)
    if (pending === undefined) {
      const at = this.now()
      const gen = this.generation.get(device) ?? 0
      pending = load().then(page => {
        if ((this.generation.get(device) ?? 0) === gen) this.remember(device, full, { page, at })
        return page
      }).finally(() => this.inflight.delete(full))
      this.inflight.set(full, pending)
    }
    return await pending
  }

  private remember (device: string, full: string, entry: Entry): void {
    if (this.entries.size >= this.maxEntries && !this.entries.has(full)) {
      const oldest = this.entries.keys().next().value
      if (oldest !== undefined) this.entries.delete(oldest)
    }
    this.entries.set(full, entry)
    let keys = this.byDevice.get(device)
    if (keys === undefined) this.byDevice.set(device, keys = new Set())
    keys.add(full)
  }

  invalidate (devices: Iterable<string>): void {
    for (const device of devices) {
      if (this.generation.size >= this.maxEntries) this.generation.clear()
      this.generation.set(device, (this.generation.get(device) ?? 0) + 1)
      const keys = this.byDevice.get(device)
      if (keys === undefined) continue
      for (const key of keys) this.entries.delete(key)
      this.byDevice.delete(device)
    }
  }
}

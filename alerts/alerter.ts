// Alerting (issue 18): evaluates the rules on stored readings and, on a schedule, on silent
// devices (one task at a time, by lease); records transitions and their outbox entries in the
// table; delivers the outbox with retries. docs/adr/0008-alerts-exactly-once.md.
import { randomUUID } from 'node:crypto'
import type { Reading, Status } from '../schemas/readings.js'
import type { StatusRecord } from '../storage/readings-repository.js'
import { statusFrom } from '../read-model/status-cache.js'
import { INITIAL, fieldHolds, matches, step, type EpisodeState, type Observation, type Transition } from './engine.js'
import { request, send, type Notification } from './channels.js'
import { AlertStore, outboxShard, type OutboxEntry, type StoredState } from './store.js'
import type { AlertsConfig, Rule } from './rules.js'

export interface ChannelCounters { sent: number, failed: number, retried: number }

export interface AlerterOptions {
  store: AlertStore
  config: AlertsConfig
  staleAfterMs: number
  /** the fleet's statuses, for stale rules (the fleet index) */
  statuses: () => Promise<StatusRecord[]>
  publicUrl?: string | undefined
  /** the stale check's and the outbox poll's period */
  tickMs: number
  /** the stale scheduler's lease; a dead holder's is taken over after this */
  leaseMs?: number
  /** an outbox entry never confirmed by its state (its writer died first) is dropped after this */
  orphanMs?: number
  now?: () => number
  log?: { warn: (obj: object, msg: string) => void, info: (obj: object, msg: string) => void }
}

const MAX_BACKOFF_MS = 300_000
const MAX_ATTEMPTS_PER_KEY = 5

export class Alerter {
  /** notifications sent, failed (given up) and retried, per channel name: for the metrics endpoint */
  readonly metrics: Record<string, ChannelCounters> = {}
  readonly owner = randomUUID()
  private readonly store: AlertStore
  private readonly config: AlertsConfig
  private readonly now: () => number
  private readonly leaseMs: number
  private readonly orphanMs: number
  private readonly timers: NodeJS.Timeout[] = []
  private readonly inFlight = new Set<string>()
  private readonly running = new Set<Promise<void>>()
  private delivering: Promise<void> | undefined
  private again = false
  private closed = false
  private holdsLease = false

  constructor (private readonly options: AlerterOptions) {
    this.store = options.store
    this.config = options.config
    this.now = options.now ?? Date.now
    this.leaseMs = options.leaseMs ?? 30_000
    this.orphanMs = options.orphanMs ?? 60_000
    for (const c of this.config.channels) this.metrics[c.name] = { sent: 0, failed: 0, retried: 0 }
  }

  start (): void {
    const every = (ms: number, fn: () => Promise<unknown>): void => {
      let busy = false
      const timer = setInterval(() => {
        // one run at a time; a run slower than the period skips ticks
        if (busy || this.closed) return
        busy = true
        this.track(fn().catch(err => this.options.log?.warn({ err }, 'alerting: a scheduled run failed')).finally(() => { busy = false }))
      }, ms)
      timer.unref()
      this.timers.push(timer)
    }
    if (this.config.rules.some(r => r.when === 'stale')) every(this.options.tickMs, () => this.checkStale())
    every(Math.min(this.options.tickMs, 1000), () => this.deliver())
  }

  async close (): Promise<void> {
    this.closed = true
    for (const t of this.timers) clearInterval(t)
    // runs under way finish before the table closes
    await Promise.all([...this.running])
    await this.delivering?.catch(() => {})
    if (this.holdsLease) await this.store.releaseLease(this.owner)
  }

  /**
   * Stored readings (redeliveries too: their times are not newer than what was applied, so they
   * change nothing): every matching rule's state, transitions recorded before this returns.
   */
  async onReadings (readings: readonly Reading[]): Promise<void> {
    const byKey = new Map<string, { rule: Rule, device: string, observations: Observation[], last: Reading }>()
    const sorted = [...readings].sort((a, b) => a.loading_datetime < b.loading_datetime ? -1 : a.loading_datetime > b.loading_datetime ? 1 : 0)
    for (const reading of sorted) {
      for (const rule of this.config.rules) {
        if (!matches(rule, reading.device)) continue
        const holds = this.holds(rule, reading)
        if (holds === undefined) continue
        const key = `${rule.name}\u0000${reading.device}`
        const entry = byKey.get(key) ?? { rule, device: reading.device, observations: [], last: reading }
        entry.observations.push({ time: Date.parse(reading.loading_datetime), holds })
        entry.last = reading
        byKey.set(key, entry)
      }
    }
    if (byKey.size === 0) return
    const states = await this.store.getStates([...byKey.values()].map(e => ({ rule: e.rule.name, device: e.device })))
    await Promise.all([...byKey.values()].map(async e => {
      const status = this.statusOfRecord(e.last as unknown as StatusRecord)
      await this.apply(e.rule, e.device, e.observations, status, states.get(`alert#${e.rule.name}#${e.device}`))
    }))
    this.kick()
  }

  /** Stale rules against the fleet's statuses, by the task that holds the lease. */
  async checkStale (): Promise<void> {
    if (this.closed) return
    const now = this.now()
    this.holdsLease = await this.store.takeLease(this.owner, now, this.leaseMs)
    if (!this.holdsLease) return
    const rules = this.config.rules.filter(r => r.when === 'stale')
    const statuses = await this.options.statuses()
    const work: Array<{ rule: Rule, device: string, obs: Observation, status: StatusRecord }> = []
    for (const record of statuses) {
      const last = Date.parse(record.loading_datetime)
      const stale = now - last >= this.options.staleAfterMs
      for (const rule of rules) {
        if (!matches(rule, record.device)) continue
        work.push({ rule, device: record.device, status: record, obs: { time: last, holds: stale, start: last + this.options.staleAfterMs, at: now } })
      }
    }
    if (work.length === 0) return
    const states = await this.store.getStates(work.map(w => ({ rule: w.rule.name, device: w.device })))
    // Only devices with something to do: a stale one, or one whose episode is open.
    await Promise.all(work.map(async w => {
      const state = states.get(`alert#${w.rule.name}#${w.device}`)
      if (!w.obs.holds && (state === undefined || state.phase === 'ok')) return
      await this.apply(w.rule, w.device, [w.obs], this.statusOfRecord(w.status), state)
    }))
    this.kick()
  }

  /** A delivery pass now, without waiting for it (a failure waits for the next tick). */
  private kick (): void {
    if (this.closed) return
    this.track(this.deliver().catch(err => this.options.log?.warn({ err }, 'alerting: delivering the outbox failed')))
  }

  private track (run: Promise<unknown>): void {
    const settled: Promise<void> = run.then(() => {}, () => {}).then(() => { this.running.delete(settled) })
    this.running.add(settled)
  }

  private holds (rule: Rule, reading: Reading): boolean | null | undefined {
    switch (rule.when) {
      case 'stressed': return reading.prediction === 1
      case 'stale': return false // a reading: the device reports
      case 'field': return fieldHolds(rule, (reading as unknown as Record<string, unknown>)[rule.field!])
    }
  }

  private statusOfRecord (record: StatusRecord): Status {
    const ageMs = Math.max(0, this.now() - Date.parse(record.loading_datetime))
    return statusFrom(record, { tenths: Math.floor(ageMs / 100), stale: ageMs > this.options.staleAfterMs })
  }

  /** Folds the observations into the state and records the result; on a lost race reads again and decides again. */
  private async apply (rule: Rule, device: string, observations: Observation[], status: Status, stored: StoredState | undefined): Promise<void> {
    let current: StoredState | undefined = stored
    for (let attempt = 0; attempt < MAX_ATTEMPTS_PER_KEY; attempt++) {
      const base: EpisodeState = current ?? INITIAL
      let state = base
      let changed = false
      const transitions: Transition[] = []
      for (const obs of observations) {
        const s = step(rule, device, state, obs)
        state = s.next
        changed ||= s.changed
        if (s.transition !== undefined) transitions.push(s.transition)
      }
      // Only changes are written: the observed time alone moves with the next change.
      if (!changed) return
      // The outbox first (deterministic keys: a second task writes the same entries), then the state,
      // which confirms them; an entry whose state never confirms it is dropped by the deliverer.
      for (const t of transitions) await this.enqueue(rule, device, t, status)
      if (await this.store.putState({ ...state, rule: rule.name, device }, base.version, status)) {
        for (const t of transitions) await this.store.recordEpisode(this.recordOf(rule, device, t, status), t.episode)
        if (transitions.length > 0) this.options.log?.info({ rule: rule.name, device, transitions: transitions.map(t => t.state) }, 'alert transition recorded')
        return
      }
      current = await this.store.getState(rule.name, device)
    }
    this.options.log?.warn({ rule: rule.name, device }, 'alerting: the state kept changing under this task; left to the next reading')
  }

  private notification (rule: Rule, device: string, t: Transition, status: Status): Notification {
    return { id: t.id, rule: rule.name, device, state: t.state, since: new Date(t.since).toISOString(), at: new Date(t.at).toISOString(), status }
  }

  private recordOf (rule: Rule, device: string, t: Transition, status: Status): Parameters<AlertStore['recordEpisode']>[0] {
    return {
      id: t.episode,
      rule: rule.name,
      device,
      state: t.state,
      since: new Date(t.since).toISOString(),
      ...(t.state === 'resolved' ? { resolved_at: new Date(t.at).toISOString() } : {}),
      last_status: status
    }
  }

  private async enqueue (rule: Rule, device: string, t: Transition, status: Status): Promise<void> {
    const body = JSON.stringify(this.notification(rule, device, t, status))
    const now = this.now()
    await Promise.all(rule.channels.map(channel => this.store.addOutbox({
      shard: outboxShard(t.id),
      sk: `${t.id}#${channel}`,
      id: t.id,
      channel,
      rule: rule.name,
      device,
      state: t.state,
      body,
      created: now,
      due: now,
      lease: 0,
      attempts: 0,
      since: new Date(t.since).toISOString(),
      episode: t.episode
    })))
  }

  /** One pass over the due outbox entries (another pass follows at once when asked for meanwhile). */
  async deliver (): Promise<void> {
    if (this.delivering !== undefined) {
      this.again = true
      return await this.delivering
    }
    this.delivering = (async () => {
      try {
        do {
          this.again = false
          const due = await this.store.dueOutbox(this.now())
          // Each entry on its own: a slow or failing channel does not hold the others back.
          await Promise.all(due.filter(e => !this.inFlight.has(e.sk)).map(e => this.deliverOne(e)))
        } while (this.again && !this.closed)
      } finally {
        this.delivering = undefined
      }
    })()
    return await this.delivering
  }

  private async deliverOne (entry: OutboxEntry): Promise<void> {
    const channel = this.config.channels.find(c => c.name === entry.channel)
    const timeoutMs = this.config.delivery.timeoutMs
    if (!await this.store.claim(entry, this.owner, this.now(), timeoutMs + 10_000)) return
    this.inFlight.add(entry.sk)
    try {
      const counters = this.metrics[entry.channel] ?? { sent: 0, failed: 0, retried: 0 }
      if (channel === undefined) {
        // the file no longer names this channel
        await this.store.done(entry)
        return
      }
      const state = await this.store.getState(entry.rule, entry.device)
      if (state?.recent?.includes(entry.id) !== true) {
        if (this.now() - entry.created > this.orphanMs) await this.store.done(entry)
        else await this.store.retryAt(entry, this.owner, this.now() + 1000, entry.attempts)
        return
      }
      const notification = JSON.parse(entry.body) as Notification
      await this.store.recordEpisode({
        id: entry.episode,
        rule: entry.rule,
        device: entry.device,
        state: entry.state,
        since: entry.since,
        ...(entry.state === 'resolved' ? { resolved_at: notification.at } : {}),
        last_status: notification.status
      }, entry.episode)
      const result = await send(request(channel, notification, this.options.publicUrl), timeoutMs)
      if (result.ok) {
        counters.sent++
        await this.store.done(entry)
        return
      }
      const attempts = entry.attempts + 1
      if (result.retry && this.now() - entry.created < this.config.delivery.retryForMs) {
        counters.retried++
        const delay = Math.min(MAX_BACKOFF_MS, this.config.delivery.backoffMs * 2 ** (attempts - 1))
        this.options.log?.warn({ channel: entry.channel, rule: entry.rule, device: entry.device, reason: result.reason, attempts, retryInMs: delay }, 'notification failed; retrying')
        await this.store.retryAt(entry, this.owner, this.now() + delay, attempts)
        return
      }
      counters.failed++
      this.options.log?.warn({ channel: entry.channel, rule: entry.rule, device: entry.device, reason: result.reason, attempts }, 'notification failed; given up')
      await this.store.done(entry)
    } finally {
      this.inFlight.delete(entry.sk)
    }
  }
}

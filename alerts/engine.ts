// The rules engine (issue 18): pure functions from an episode's state and one observation to the
// next state and the notification it calls for. No I/O, no clock of its own (callers pass times).
import { createHash } from 'node:crypto'
import type { Rule } from './rules.js'

export type Phase = 'ok' | 'pending' | 'firing'

/** One rule's state for one device, as kept in the table (alerts/store.ts). */
export interface EpisodeState {
  phase: Phase
  /** bumped by every recorded change; the conditional writes compare it */
  version: number
  /** ms: when the condition began to hold (pending and firing) */
  since?: number
  /** the current (firing) or last episode's id */
  episode?: string
  /** ms: the newest observation applied; older ones are ignored (late or redelivered readings) */
  observed?: number
  /** ids of the latest notifications recorded (the outbox checks its entries against them) */
  recent?: string[]
}

/** What one rule sees of a device at one time. */
export interface Observation {
  /** ms: the reading's time (for stale rules, the device's newest reading's) */
  time: number
  /** true: the condition holds; false: it does not (field rules: past clear_below); null: between the thresholds */
  holds: boolean | null
  /** ms when the condition began (stale: the newest reading plus the window); default `time` */
  start?: number
  /** ms of the decision (stale: now); default `time` */
  at?: number
}

export interface Transition {
  state: 'firing' | 'resolved'
  /** the notification's id: the same for every channel and every delivery */
  id: string
  episode: string
  since: number
  at: number
}

export interface Step {
  next: EpisodeState
  /** the state changed (a write is due) */
  changed: boolean
  transition?: Transition
}

export const RECENT_IDS = 20

function hash (...parts: Array<string | number>): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 32)
}

/** An episode's id: the same in every task that sees the same transition from the same recorded state. */
export function episodeId (rule: string, device: string, version: number): string {
  return hash('episode', rule, device, version)
}

export function notificationId (episode: string, state: 'firing' | 'resolved'): string {
  return hash('notification', episode, state)
}

export function matches (rule: Rule, device: string): boolean {
  return rule.devices.some(re => re.test(device))
}

/** Whether a field rule's condition holds for a value (null between clear_below and above). */
export function fieldHolds (rule: Rule, value: unknown): boolean | null | undefined {
  if (typeof value !== 'number') return undefined
  if (value > rule.above!) return true
  if (value < rule.clearBelow!) return false
  return value === rule.clearBelow && rule.clearBelow === rule.above ? false : null
}

export const INITIAL: EpisodeState = { phase: 'ok', version: 0 }

/**
 * The next state of one rule for one device after an observation. An observation not newer than
 * the last applied one changes nothing: a late or redelivered reading never re-fires a resolved episode.
 */
export function step (rule: Rule, device: string, state: EpisodeState, obs: Observation): Step {
  // Only the stale check (an observation with its own `at`) looks again at the same reading time;
  // a reading must be newer (the reading that made a device stale, handled late, does not resolve it).
  if (state.observed !== undefined && (obs.time < state.observed || (obs.time === state.observed && obs.at === undefined))) {
    return { next: state, changed: false }
  }
  const at = obs.at ?? obs.time
  const start = obs.start ?? obs.time
  const base = { ...state, observed: Math.max(obs.time, state.observed ?? obs.time) }
  const bump = (s: EpisodeState): EpisodeState => ({ ...s, version: state.version + 1 })
  switch (state.phase) {
    case 'ok': {
      if (obs.holds !== true) return { next: base, changed: false }
      if (at - start >= rule.forSeconds * 1000) return fire(rule, device, state, base, start, at)
      const { episode: _e, ...rest } = base
      return { next: bump({ ...rest, phase: 'pending', since: start, ...(state.episode !== undefined ? { episode: state.episode } : {}) }), changed: true }
    }
    case 'pending': {
      if (obs.holds !== true) {
        const { since: _s, ...rest } = base
        return { next: bump({ ...rest, phase: 'ok' }), changed: true }
      }
      const since = state.since ?? start
      if (at - since >= rule.forSeconds * 1000) return fire(rule, device, state, base, since, at)
      return { next: base, changed: false }
    }
    case 'firing': {
      if (obs.holds !== false) return { next: base, changed: false }
      const episode = state.episode!
      const id = notificationId(episode, 'resolved')
      const { since: _s, ...rest } = base
      return {
        next: bump({ ...rest, phase: 'ok', recent: remember(state.recent, id) }),
        changed: true,
        transition: { state: 'resolved', id, episode, since: state.since ?? at, at }
      }
    }
  }
}

function fire (rule: Rule, device: string, state: EpisodeState, base: EpisodeState, since: number, at: number): Step {
  const episode = episodeId(rule.name, device, state.version)
  const id = notificationId(episode, 'firing')
  return {
    next: { ...base, phase: 'firing', since, episode, version: state.version + 1, recent: remember(state.recent, id) },
    changed: true,
    transition: { state: 'firing', id, episode, since, at }
  }
}

function remember (recent: string[] | undefined, id: string): string[] {
  return [...(recent ?? []), id].slice(-RECENT_IDS)
}

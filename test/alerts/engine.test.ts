import t from 'tap'
import { INITIAL, fieldHolds, step, type EpisodeState, type Observation, type Step } from '../../alerts/engine.js'
import { parseAlerts, type Rule } from '../../alerts/rules.js'

const { rules } = parseAlerts(`
channels: [{name: a, type: slack, url: "http://x"}]
rules:
  - {name: now, when: stressed, channels: [a]}
  - {name: held, when: stressed, for_seconds: 30, devices: ["pc*"], channels: [a]}
  - {name: hot, when: field, field: T, above: 90, clear_below: 80, channels: [a]}
  - {name: silent, when: stale, for_seconds: 10, channels: [a]}
`)
const rule = (name: string): Rule => rules.find(r => r.name === name)!
const T0 = Date.parse('2026-12-01T10:00:00.000Z')

/** Runs observations through one rule from the initial state; the clock is each observation's time. */
function run (r: Rule, observations: Observation[], from: EpisodeState = INITIAL): { state: EpisodeState, steps: Step[] } {
  let state = from
  const steps: Step[] = []
  for (const obs of observations) {
    const s = step(r, 'pc1', state, obs)
    steps.push(s)
    state = s.next
  }
  return { state, steps }
}
const transitions = (steps: Step[]): string[] => steps.flatMap(s => s.transition === undefined ? [] : [s.transition.state])
const at = (seconds: number, holds: boolean | null): Observation => ({ time: T0 + seconds * 1000, holds })

t.test('stressed with for_seconds 0 fires at once and resolves once', async t => {
  const { steps, state } = run(rule('now'), [at(0, true), at(5, true), at(10, false), at(15, false)])
  t.same(transitions(steps), ['firing', 'resolved'])
  t.equal(state.phase, 'ok')
  const fired = steps[0]!.transition!
  const resolved = steps[2]!.transition!
  t.equal(fired.episode, resolved.episode, 'one episode')
  t.not(fired.id, resolved.id, 'two notifications')
  t.equal(resolved.since, T0)
})

t.test('for_seconds: fires only once the condition has held that long, not when it breaks off before', async t => {
  const broken = run(rule('held'), [at(0, true), at(20, true), at(25, false), at(30, true), at(50, true)])
  t.same(transitions(broken.steps), [], 'held 25 s then 20 s: never 30 s')
  t.equal(broken.state.phase, 'pending')
  const held = run(rule('held'), [at(0, true), at(20, true), at(30, true), at(40, true)])
  t.same(transitions(held.steps), ['firing'])
  t.equal(held.steps[2]!.transition!.since, T0, 'since: when the condition began')
})

t.test('field rules: fire above, stay firing between the thresholds, resolve only below clear_below', async t => {
  const r = rule('hot')
  t.equal(fieldHolds(r, 95), true)
  t.equal(fieldHolds(r, 85), null)
  t.equal(fieldHolds(r, 79), false)
  t.equal(fieldHolds(r, undefined), undefined)
  const { steps } = run(r, [85, 91, 85, 81, 79, 85].map((v, i) => at(i, fieldHolds(r, v)!)))
  t.same(steps.map(s => s.transition?.state ?? '-'), ['-', 'firing', '-', '-', 'resolved', '-'], '85 after resolving does not fire again')
})

t.test('late and redelivered readings never re-fire a resolved episode', async t => {
  const first = run(rule('now'), [at(0, true), at(10, false)])
  t.same(transitions(first.steps), ['firing', 'resolved'])
  const again = run(rule('now'), [at(0, true), at(5, true), at(10, false)], first.state)
  t.same(transitions(again.steps), [], 'redelivered and late readings change nothing')
  t.notOk(again.steps.some(s => s.changed))
  const later = run(rule('now'), [at(20, true)], first.state)
  t.same(transitions(later.steps), ['firing'], 'a newer reading starts a new episode')
  t.not(later.steps[0]!.transition!.episode, first.steps[0]!.transition!.episode)
})

t.test('two tasks deciding from the same recorded state make the same ids', async t => {
  const a = run(rule('now'), [at(0, true)])
  const b = run(rule('now'), [at(0, true)])
  t.equal(a.steps[0]!.transition!.id, b.steps[0]!.transition!.id)
  t.equal(a.state.version, 1)
})

t.test('stale rules: by the scheduler clock, from the newest reading; a newer reading resolves, an older one does not', async t => {
  const r = rule('silent')
  const last = T0
  const window = 15_000
  const obs = (now: number): Observation => ({ time: last, holds: now - last >= window, start: last + window, at: now })
  const { steps, state } = run(r, [obs(T0 + 10_000), obs(T0 + 20_000), obs(T0 + 26_000), obs(T0 + 40_000)])
  t.same(steps.map(s => s.transition?.state ?? '-'), ['-', '-', 'firing', '-'], 'fires once the window plus for_seconds has passed')
  t.equal(steps[2]!.transition!.since, last + window)
  const late = step(r, 'pc1', state, { time: last - 5000, holds: false })
  t.notOk(late.changed, 'a late reading does not resolve')
  const same = step(r, 'pc1', state, { time: last, holds: false })
  t.notOk(same.changed, 'nor the very reading that went silent, handled after the check fired')
  const fresh = step(r, 'pc1', state, { time: last + 60_000, holds: false })
  t.equal(fresh.transition?.state, 'resolved')
})

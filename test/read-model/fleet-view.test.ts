import t from 'tap'
import { FleetView, type FleetEvent } from '../../read-model/fleet-view.js'
import type { StatusRecord } from '../../storage/readings-repository.js'
import { StorageUnavailableError } from '../../storage/errors.js'
import type { Reading } from '../../schemas/readings.js'

// The fleet view with an injected clock, table and timer: no sleeps.

const T0 = Date.parse('2026-12-01T12:00:00.000Z')
const iso = (ms: number): string => new Date(ms).toISOString()

function record (device: string, atMs: number, probability = 0.1, rev = 'r1', kind: 'pc' | 'raspberry' = 'pc'): StatusRecord {
  return { device, kind, uuid: `00000000-0000-4000-8000-${String(atMs % 1e12).padStart(12, '0')}`, loading_datetime: iso(atMs), prediction: probability >= 0.5 ? 1 : 0, probability, rev }
}

function harness (initial: StatusRecord[] = []) {
  let now = T0
  let table = initial
  let failing = false
  let reads = 0
  let timer: (() => void) | undefined
  let timerMs = 0
  const errors: unknown[] = []
  const view = new FleetView({
    repository: {
      fleetStatuses: async () => {
        reads++
        if (failing) throw new StorageUnavailableError('down')
        return table
      }
    },
    staleAfterSeconds: 60,
    ttlMs: 1000,
    now: () => now,
    repeat: (fn, ms) => { timer = fn; timerMs = ms; return () => { timer = undefined } },
    onRefreshError: err => { errors.push(err) }
  })
  return {
    view,
    errors,
    get reads () { return reads },
    get timer () { return timer },
    get timerMs () { return timerMs },
    set now (ms: number) { now = ms },
    get now () { return now },
    set table (records: StatusRecord[]) { table = records },
    get table () { return table },
    set failing (on: boolean) { failing = on },
    get failing () { return failing }
  }
}

const flush = async (): Promise<void> => { for (let i = 0; i < 5; i++) await Promise.resolve() }

t.test('pages from memory: one read per TTL (single flight), answered between one and two TTLs while refreshed', async t => {
  const h = harness([record('a', T0 - 1000), record('b', T0 - 2000)])
  const pages = await Promise.all(Array.from({ length: 10 }, async () => await h.view.page({ sort: 'device', limit: 10 })))
  t.equal(h.reads, 1, 'ten concurrent pages, one read')
  t.same(pages[0]!.devices.map(d => d.device), ['a', 'b'])
  h.now = T0 + 999
  await h.view.page({ sort: 'device', limit: 10 })
  t.equal(h.reads, 1, 'within the TTL: memory')
  h.now = T0 + 1500
  h.table = [record('a', T0 - 1000), record('b', T0 - 2000), record('c', T0)]
  t.equal((await h.view.page({ sort: 'device', limit: 10 })).devices.length, 2, 'past the TTL: answered at once from memory…')
  await flush()
  t.equal(h.reads, 2, '…while a read refreshes it')
  t.equal((await h.view.page({ sort: 'device', limit: 10 })).devices.length, 3)
  h.now = T0 + 5000
  h.failing = true
  await t.rejects(h.view.page({ sort: 'device', limit: 10 }), StorageUnavailableError, 'past two TTLs the read is waited for, and its failure shown')
  await t.rejects(h.view.page({ sort: 'device', limit: 10 }), StorageUnavailableError)
  t.equal(h.errors.length, 1, 'an outage reported once')
})

t.test('states by the clock, counts by kind, risk and device order, cursors', async t => {
  const h = harness([
    record('ok-low', T0 - 1000, 0.1),
    record('ok-high', T0 - 1000, 0.4),
    record('hot', T0 - 1000, 0.8),
    record('hotter', T0 - 1000, 0.9, 'r1', 'raspberry'),
    record('old', T0 - 59_000, 0.2)
  ])
  let page = await h.view.page({ sort: 'risk', limit: 10 })
  t.same(page.devices.map(d => d.device), ['hotter', 'hot', 'ok-high', 'old', 'ok-low'])
  t.same(page.counts, { total: 5, ok: 3, stressed: 2, stale: 0 })
  h.now = T0 + 2000 // `old` is now 61 s old: stale
  page = h.view.read({ sort: 'risk', limit: 10 })
  t.same(page.devices.map(d => d.device), ['hotter', 'hot', 'old', 'ok-high', 'ok-low'], 'turned stale: moves up')
  t.same(page.counts, { total: 5, ok: 2, stressed: 2, stale: 1 })
  t.equal(page.devices[2]!.msg, 'The device is not reporting')
  t.equal(page.devices[0]!.age_seconds, 3)
  t.same(h.view.read({ sort: 'risk', limit: 10, kind: 'raspberry' }).counts, { total: 1, ok: 0, stressed: 1, stale: 0 })
  t.same(h.view.read({ sort: 'device', limit: 10, states: new Set(['ok', 'stale']) }).devices.map(d => d.device), ['ok-high', 'ok-low', 'old'])

  const first = h.view.read({ sort: 'risk', limit: 2 })
  t.same(first.devices.map(d => d.device), ['hotter', 'hot'])
  t.ok(first.next)
  const second = h.view.read({ sort: 'risk', limit: 2, cursor: first.next })
  t.same(second.devices.map(d => d.device), ['old', 'ok-high'])
  const third = h.view.read({ sort: 'risk', limit: 2, cursor: second.next })
  t.same(third.devices.map(d => d.device), ['ok-low'])
  t.equal(third.next, undefined, 'the last page has no cursor')
  t.throws(() => h.view.read({ sort: 'device', limit: 2, cursor: first.next }), { statusCode: 400, message: /another sort/ })
  t.throws(() => h.view.read({ sort: 'risk', limit: 2, cursor: 'garbage' }), { statusCode: 400, message: /Invalid cursor/ })
  t.throws(() => h.view.read({ sort: 'risk', limit: 2, cursor: Buffer.from('["r",2,0.5,"a"]').toString('base64url') }), { statusCode: 400, message: /Invalid cursor/ })
})

t.test('events: the first read is the baseline; newer readings and turns to stale are events, once each', async t => {
  const h = harness([record('a', T0 - 1000), record('b', T0 - 30_000)])
  const events: FleetEvent[] = []
  const unsubscribe = h.view.subscribe(e => { events.push(e) })
  t.ok(h.timer, 'a subscriber starts the timer')
  t.equal(h.timerMs, 1000, 'every TTL')
  await flush()
  t.equal(h.reads, 1, 'the baseline read')
  t.equal(events.length, 0, 'no event for the baseline')

  // a newer reading of a; b's same reading under another revision (a late reading) is no change
  h.now = T0 + 1000
  h.table = [record('a', T0 + 500, 0.9, 'r2'), record('b', T0 - 30_000, 0.1, 'r9'), record('c', T0 + 600)]
  h.timer!()
  await flush()
  t.same(events.map(e => [e.device, e.status.stressed, e.status.stale]), [['a', true, false], ['c', false, false]])
  t.ok(events[1]!.id > events[0]!.id, 'ids grow')
  h.timer!()
  await flush()
  t.equal(events.length, 2, 'within the TTL: no read, nothing new')

  // b turns stale 60 s after its reading: the timer's check, no read needed
  h.now = T0 + 30_001
  h.failing = true // the table is down meanwhile: the stale check goes on
  h.timer!()
  await flush()
  t.same(events.slice(2).map(e => [e.device, e.status.stale, e.status.msg]), [['b', true, 'The device is not reporting']])
  h.timer!()
  await flush()
  t.equal(events.length, 3, 'once')
  t.equal(h.errors.length, 1)

  // the table back: what changed meanwhile
  h.failing = false
  h.now = T0 + 32_000
  h.table = [record('a', T0 + 500, 0.9, 'r2'), record('b', T0 + 31_000, 0.2, 'r10'), record('c', T0 + 600)]
  h.timer!()
  await flush()
  t.same(events.slice(3).map(e => [e.device, e.status.stale]), [['b', false]], 'b reports again')

  unsubscribe()
  t.equal(h.timer, undefined, 'the last subscriber gone: the timer stops')
  t.equal(h.view.subscribers, 0)
})

t.test('readings this process stores: an event at once; the index catching up later is no second event', async t => {
  const h = harness([])
  const events: FleetEvent[] = []
  h.view.subscribe(e => { events.push(e) })
  await flush()
  const reading = { device: 'x', kind: 'pc', uuid: '11111111-1111-4111-8111-111111111111', loading_datetime: iso(T0), prediction: 0, probability: 0.2 } as unknown as Reading
  h.view.observe([reading])
  t.equal(events.length, 1)
  h.view.observe([{ ...reading, loading_datetime: iso(T0 - 1) } as Reading])
  t.equal(events.length, 1, 'an older reading is no change')
  h.now = T0 + 1000
  h.timer!()
  await flush()
  t.equal(h.view.size, 1, 'kept while the index has not got it')
  h.now = T0 + 2000
  h.table = [{ ...reading, rev: 'r1' } as unknown as StatusRecord]
  h.timer!()
  await flush()
  t.equal(events.length, 1, 'the same reading from the index: no event')
  t.equal(h.view.read({ sort: 'device', limit: 5 }).counts.total, 1)
})

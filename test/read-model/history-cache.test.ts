import t from 'tap'
import { HistoryCache, pageKey, type HistoryCacheOptions, type RevisionSource } from '../../read-model/history-cache.js'
import { StatusCache, type Revision } from '../../read-model/status-cache.js'
import type { ReadingsRepository, StatusRecord } from '../../storage/readings-repository.js'

// The history history cache's promises, with an injected clock (no sleeps), an in-memory revision
// source standing for the status cache (its reads counted) and loads that count themselves.

const T0 = Date.parse('2026-03-01T12:00:00.000Z')
const TTL = 1000

/** One turn of the event loop: work started before it (revalidations, loads) has run. */
async function turn (): Promise<void> {
  await new Promise(resolve => setImmediate(resolve))
}

function deferred<T> () {
  let resolve!: (value: T) => void
  let reject!: (err: unknown) => void
  const promise = new Promise<T>((_resolve, _reject) => { resolve = _resolve; reject = _reject })
  return { promise, resolve, reject }
}

function record (device: string, rev: string | undefined): StatusRecord {
  return {
    device,
    kind: 'pc',
    uuid: '00000000-0000-4000-8000-000000000001',
    loading_datetime: new Date(T0).toISOString(),
    prediction: 0,
    probability: 0.1,
    ...(rev !== undefined ? { rev } : {})
  }
}

/** The status cache as the cache sees it: each device's status revision in the table, reads counted. */
class FakeRevisions implements RevisionSource {
  /** the device's revision: absent or null without a status, undefined for a status item without `rev` */
  readonly table = new Map<string, string | null | undefined>()
  /** what `revision` answers instead of a new read (a read the status cache still answers with) */
  readonly kept = new Map<string, Revision>()
  readonly calls = { revision: [] as string[], fresh: [] as string[], touch: [] as string[] }
  /** reads fail with it */
  error: Error | undefined
  private readonly listeners: Array<(device: string, revision: Revision) => void> = []

  constructor (private readonly now: () => number) {}

  revision = async (device: string): Promise<Revision> => {
    this.calls.revision.push(device)
    return this.kept.get(device) ?? this.read(device)
  }

  fresh = async (device: string): Promise<Revision> => {
    this.calls.fresh.push(device)
    return this.read(device)
  }

  onRead = (listener: (device: string, revision: Revision) => void): void => {
    this.listeners.push(listener)
  }

  touch = (device: string): void => {
    this.calls.touch.push(device)
  }

  /** A status read made for someone else (a poller of the status), as the status cache tells its listeners. */
  emit (device: string, revision: Revision): void {
    for (const listener of this.listeners) listener(device, revision)
  }

  revisionOf (device: string, at = this.now()): Revision {
    const rev = this.table.get(device)
    return { record: !this.table.has(device) || rev === null ? null : record(device, rev), at }
  }

  private read (device: string): Revision {
    if (this.error !== undefined) throw this.error
    return this.revisionOf(device)
  }
}

function setup (options: Partial<HistoryCacheOptions<string>> = {}) {
  let now = T0
  const revisions = new FakeRevisions(() => now)
  const cache = new HistoryCache<string>({ ttlMs: TTL, revisions, now: () => now, sizeOf: page => page.length, ...options })
  const clock = {
    get now () { return now },
    set now (ms: number) { now = ms }
  }
  return { clock, revisions, cache }
}

/** A page read from the table: `page1`, `page2`... (or what `pages` says), counted. */
function loader (pages: string[] = []) {
  const counter = {
    count: 0,
    load: async (): Promise<string> => {
      counter.count++
      return pages[counter.count - 1] ?? `page${counter.count}`
    }
  }
  return counter
}

t.test('pageKey: the device and the page\'s key within it, joined once', async t => {
  t.strictSame(pageKey('pc1', '100||'), { device: 'pc1', full: 'pc1\u0000100||' })
  t.not(pageKey('pc1', '100||').full, pageKey('pc1', '10||').full)
})

t.test('a miss reads the device\'s status revision, then the page; then the page is answered from memory', async t => {
  const { revisions, cache } = setup()
  revisions.table.set('pc1', 'r1')
  const key = pageKey('pc1', '100||')
  const pages = loader()
  t.equal(cache.peek(key, pages.load), undefined, 'nothing kept: peek has no answer')
  await turn()
  t.equal(pages.count, 0, 'and peek alone loads nothing')
  t.same(revisions.calls, { revision: [], fresh: [], touch: [] }, 'nor asks for a status, nor marks one in use')
  t.equal(await cache.get(key, pages.load), 'page1')
  t.equal(pages.count, 1)
  t.same(revisions.calls.revision, ['pc1'], 'the revision read first')
  t.equal(cache.peek(key, pages.load), 'page1', 'kept: answered synchronously')
  t.equal(await cache.get(key, pages.load), 'page1')
  t.equal(pages.count, 1, 'not read again')
  t.same(revisions.calls.touch, ['pc1', 'pc1'], 'every answer from memory marks the device\'s status in use')
  t.same(cache.size, { entries: 1, bytes: 5 }, 'weighed by sizeOf')
})

// Every boundary of a page's life after it was validated: [0, ttl) from memory, [ttl, 2 ttl) from
// memory while revalidated, from 2 ttl on `get` waits for the revalidation.
for (const { offset, answered, revalidated } of [
  { offset: TTL - 1, answered: true, revalidated: false },
  { offset: TTL, answered: true, revalidated: true },
  { offset: TTL + 1, answered: true, revalidated: true },
  { offset: 2 * TTL - 1, answered: true, revalidated: true },
  { offset: 2 * TTL, answered: false, revalidated: false },
  { offset: 2 * TTL + 1, answered: false, revalidated: false }
]) {
  t.test(`a page validated ${offset} ms ago (ttl ${TTL}): ${answered ? 'answered from memory' : 'not answered'}, ${revalidated ? 'revalidated' : 'not revalidated'}`, async t => {
    const { clock, revisions, cache } = setup()
    revisions.table.set('pc1', 'r1')
    const key = pageKey('pc1', '100||')
    const pages = loader()
    await cache.get(key, pages.load)
    clock.now = T0 + offset
    t.equal(cache.peek(key, pages.load), answered ? 'page1' : undefined, 'peek')
    await turn()
    t.equal(revisions.calls.revision.length, revalidated ? 2 : 1, revalidated ? 'peek revalidated it' : 'peek did not revalidate it')
    t.equal(pages.count, 1, 'the revision did not move: no load')
    t.same(revisions.calls.touch, ['pc1'], 'the device is marked in use by every peek of a kept page')
    if (revalidated) {
      clock.now = T0 + offset + TTL - 1
      t.equal(cache.peek(key, pages.load), 'page1')
      await turn()
      t.equal(revisions.calls.revision.length, 2, 'validated again at its revalidation: fresh for a TTL from then')
    }
    if (!answered) {
      t.equal(await cache.get(key, pages.load), 'page1', 'get waits for the revalidation: the same revision, the same page')
      t.equal(revisions.calls.revision.length, 2)
      t.equal(pages.count, 1)
      t.equal(cache.peek(key, pages.load), 'page1', 'validated now')
    }
  })
}

t.test('a page is valid from the status read it was read under, not from when the load ended', async t => {
  const { clock, revisions, cache } = setup()
  revisions.table.set('pc1', 'r1')
  const key = pageKey('pc1', '100||')
  const slow = deferred<string>()
  const pending = cache.get(key, async () => await slow.promise)
  await turn()
  clock.now = T0 + 300
  slow.resolve('slow page')
  t.equal(await pending, 'slow page')
  clock.now = T0 + TTL - 1
  t.equal(cache.peek(key, async () => 'x'), 'slow page')
  await turn()
  t.equal(revisions.calls.revision.length, 1)
  clock.now = T0 + TTL
  t.equal(cache.peek(key, async () => 'x'), 'slow page')
  await turn()
  t.equal(revisions.calls.revision.length, 2, 'revalidated a TTL after the status read (T0), not after the load (T0 + 300)')
})

t.test('a moved revision: the page is answered while it is read again, then the new page', async t => {
  const { clock, revisions, cache } = setup()
  revisions.table.set('pc1', 'r1')
  const key = pageKey('pc1', '100||')
  const pages = loader()
  await cache.get(key, pages.load)
  revisions.table.set('pc1', 'r2')
  clock.now = T0 + TTL
  t.equal(cache.peek(key, pages.load), 'page1', 'at the TTL: the kept page')
  await turn()
  t.equal(pages.count, 2, 'read again under r2')
  t.equal(cache.peek(key, pages.load), 'page2')
  clock.now = T0 + 3 * TTL
  t.equal(await cache.get(key, pages.load), 'page2', 'r2 still: revalidated, no load')
  t.equal(pages.count, 2)
  revisions.table.set('pc1', null) // the status item is gone
  clock.now = T0 + 5 * TTL
  t.equal(await cache.get(key, pages.load), 'page3', 'a revision of null differs from r2')
})

t.test('a device without a status (revision null) validates its page like any revision', async t => {
  const { clock, revisions, cache } = setup()
  const key = pageKey('new', '100||')
  const pages = loader()
  t.equal(await cache.get(key, pages.load), 'page1')
  clock.now = T0 + 2 * TTL
  t.equal(await cache.get(key, pages.load), 'page1')
  t.equal(pages.count, 1, 'still no status: the empty page holds')
  revisions.table.set('new', 'r1')
  clock.now = T0 + 4 * TTL
  t.equal(await cache.get(key, pages.load), 'page2', 'its first status: read again')
})

t.test('a status without a revision (an item from before revisions) validates nothing: read again each time', async t => {
  const { clock, revisions, cache } = setup()
  revisions.table.set('old', undefined)
  const key = pageKey('old', '100||')
  const pages = loader()
  await cache.get(key, pages.load)
  clock.now = T0 + TTL
  t.equal(cache.peek(key, pages.load), 'page1')
  await turn()
  t.equal(pages.count, 2)
  clock.now = T0 + 3 * TTL
  t.equal(await cache.get(key, pages.load), 'page3')
  revisions.emit('old', revisions.revisionOf('old', T0 + 3 * TTL + 500))
  clock.now = T0 + 4 * TTL
  t.equal(cache.peek(key, pages.load), 'page3')
  await turn()
  t.equal(pages.count, 4, 'a status read made for someone else does not validate it either')
})

t.test('concurrent gets of one page: one revalidation, one load; peeks in the window start one revalidation', async t => {
  const { clock, revisions, cache } = setup()
  revisions.table.set('pc1', 'r1')
  const key = pageKey('pc1', '100||')
  const pages = loader()
  const answers = await Promise.all(Array.from({ length: 20 }, async () => await cache.get(key, pages.load)))
  t.same(answers, Array(20).fill('page1'))
  t.equal(pages.count, 1, 'one load')
  t.equal(revisions.calls.revision.length, 1, 'one status read')
  revisions.table.set('pc1', 'r2')
  clock.now = T0 + TTL
  for (let i = 0; i < 10; i++) t.equal(cache.peek(key, pages.load), 'page1')
  await turn()
  t.equal(revisions.calls.revision.length, 2, 'ten answers in the window, one revalidation')
  t.equal(pages.count, 2, 'and one load')
  // a slow load: the gets that come meanwhile wait for it
  revisions.table.set('pc1', 'r3')
  clock.now = T0 + 3 * TTL
  const slow = deferred<string>()
  const loads = { count: 0 }
  const load = async (): Promise<string> => { loads.count++; return await slow.promise }
  const waiting = Array.from({ length: 5 }, async () => await cache.get(key, load))
  await turn()
  waiting.push(cache.get(key, load))
  slow.resolve('page r3')
  t.same(await Promise.all(waiting), Array(6).fill('page r3'))
  t.equal(loads.count, 1, 'one load for the six')
})

t.test('pages of one device under other keys are kept apart', async t => {
  const { revisions, cache } = setup()
  revisions.table.set('pc1', 'r1')
  const a = loader(['a'])
  const b = loader(['b'])
  t.equal(await cache.get(pageKey('pc1', '100||'), a.load), 'a')
  t.equal(await cache.get(pageKey('pc1', '1||'), b.load), 'b')
  t.equal(cache.peek(pageKey('pc1', '100||'), b.load), 'a')
  t.equal(cache.peek(pageKey('pc1', '1||'), a.load), 'b')
  t.same(cache.size, { entries: 2, bytes: 2 })
})

t.test('the status read a page was validated with is no revalidation: a new one is asked for', async t => {
  const { clock, revisions, cache } = setup()
  revisions.table.set('pc1', 'r1')
  // The status cache answers with a read of T0 (it is a TTL old: it refreshes it behind).
  revisions.kept.set('pc1', revisions.revisionOf('pc1', T0))
  const key = pageKey('pc1', '100||')
  const pages = loader()
  await cache.get(key, pages.load)
  t.same(revisions.calls.fresh, [], 'a first read takes what the status cache has')
  clock.now = T0 + TTL
  cache.peek(key, pages.load)
  await turn()
  t.same(revisions.calls.fresh, ['pc1'], 'the same read (at T0) again: waits for a new one')
  t.equal(pages.count, 1)
  clock.now = T0 + 2 * TTL - 1
  t.equal(cache.peek(key, pages.load), 'page1')
  await turn()
  t.equal(revisions.calls.revision.length, 2, 'validated by the new read (at T0 + TTL)')
  // A newer read than the page's is a revalidation as it is.
  revisions.kept.set('pc1', revisions.revisionOf('pc1', T0 + 2 * TTL - 10))
  clock.now = T0 + 2 * TTL
  cache.peek(key, pages.load)
  await turn()
  t.same(revisions.calls.fresh, ['pc1'], 'a newer read: no new one asked for')
  t.equal(revisions.calls.revision.length, 3)
})

t.test('status reads made for other requests revalidate pages of the same revision for free', async t => {
  const { clock, revisions, cache } = setup()
  revisions.table.set('pc1', 'r1')
  revisions.table.set('pc2', 'r1')
  const one = pageKey('pc1', '100||')
  const two = pageKey('pc2', '100||')
  const pages = loader()
  await cache.get(one, pages.load)
  await cache.get(two, pages.load)
  revisions.emit('pc1', revisions.revisionOf('pc1', T0 + 600))
  revisions.emit('pc2', { record: record('pc2', 'r2'), at: T0 + 600 }) // another revision: not for pc2's page
  revisions.emit('nobody', revisions.revisionOf('nobody', T0 + 600)) // no page: nothing to do
  clock.now = T0 + TTL
  t.equal(cache.peek(one, pages.load), 'page1')
  await turn()
  t.same(revisions.calls.revision, ['pc1', 'pc2'], 'pc1\'s page was validated at T0 + 600: no revalidation')
  t.equal(cache.peek(two, pages.load), 'page2')
  await turn()
  t.same(revisions.calls.revision, ['pc1', 'pc2', 'pc2'], 'pc2\'s page was not: revalidated at the TTL')
  clock.now = T0 + 600 + TTL
  cache.peek(one, pages.load)
  await turn()
  t.same(revisions.calls.revision, ['pc1', 'pc2', 'pc2', 'pc1'], 'pc1\'s page: a TTL after the read that validated it')
})

t.test('an older status read does not make a page older', async t => {
  const { clock, revisions, cache } = setup()
  revisions.table.set('pc1', 'r1')
  const key = pageKey('pc1', '100||')
  const pages = loader()
  await cache.get(key, pages.load)
  revisions.emit('pc1', revisions.revisionOf('pc1', T0 - 500))
  clock.now = T0 + TTL - 1
  t.equal(cache.peek(key, pages.load), 'page1')
  await turn()
  t.equal(revisions.calls.revision.length, 1, 'still valid from T0')
})

t.test('invalidate drops the device\'s pages (every key), and only them', async t => {
  const { revisions, cache } = setup()
  for (const device of ['a', 'b']) revisions.table.set(device, 'r1')
  const keys = [pageKey('a', '100||'), pageKey('a', '1||'), pageKey('b', '100||')]
  const pages = loader(['aaaa', 'aa', 'bbb', 'aaaaa'])
  for (const key of keys) await cache.get(key, pages.load)
  t.same(cache.size, { entries: 3, bytes: 9 })
  cache.invalidate(new Set(['a', 'nobody']))
  t.same(cache.size, { entries: 1, bytes: 3 }, 'a\'s two pages went')
  t.equal(cache.peek(keys[0]!, pages.load), undefined)
  t.equal(cache.peek(keys[1]!, pages.load), undefined)
  t.equal(cache.peek(keys[2]!, pages.load), 'bbb', 'b\'s page stays')
  t.equal(await cache.get(keys[0]!, pages.load), 'aaaaa', 'read again at once, without waiting for the TTL')
  t.equal(pages.count, 4)
})

t.test('a load that started before invalidate is answered to its waiters but not kept', async t => {
  const { revisions, cache } = setup()
  revisions.table.set('pc1', 'r1')
  const key = pageKey('pc1', '100||')
  const slow = deferred<string>()
  const pending = cache.get(key, async () => await slow.promise)
  await turn()
  cache.invalidate(['pc1']) // this process stored a reading of pc1 while the page was read
  slow.resolve('before the write')
  t.equal(await pending, 'before the write')
  t.equal(cache.peek(key, async () => 'x'), undefined, 'not kept')
  t.same(cache.size, { entries: 0, bytes: 0 })
})

t.test('a request made after invalidate does not join a load that started before it', async t => {
  const { revisions, cache } = setup()
  revisions.table.set('pc1', 'r1')
  const key = pageKey('pc1', '100||')
  const first = deferred<string>()
  const second = deferred<string>()
  let loads = 0
  const load = async (): Promise<string> => { loads++; return await (loads === 1 ? first : second).promise }
  const before = cache.get(key, load)
  await turn()
  t.equal(loads, 1, 'a load on its way')
  cache.invalidate(['pc1']) // this process stored a reading of pc1: the load may have missed it
  revisions.table.set('pc1', 'r2')
  const after = cache.get(key, load)
  await turn()
  t.equal(loads, 2, 'a request made after the write: a load of its own, which sees the write')
  first.resolve('before the write')
  t.equal(await before, 'before the write', 'the request made before the write gets the load it asked for')
  const later = cache.get(key, load)
  await turn()
  t.equal(loads, 2, 'the earlier load ending did not end the later one\'s single flight: a later request joins it')
  second.resolve('after the write')
  t.equal(await after, 'after the write')
  t.equal(await later, 'after the write')
  t.equal(cache.peek(key, load), 'after the write', 'and it is the one kept')
})

t.test('a load on its way when the device is invalidated is not kept, however many devices were invalidated meanwhile', async t => {
  // maxEntries also bounds the invalidation marks: past it they are forgotten, which must not
  // make a device invalidated during a load look as it was when the load started.
  const { revisions, cache } = setup({ maxEntries: 2 })
  for (const device of ['a', 'b', 'c']) revisions.table.set(device, 'r1')
  cache.invalidate(['a']) // a reading of a stored earlier
  const key = pageKey('a', '100||')
  const slow = deferred<string>()
  const pending = cache.get(key, async () => await slow.promise)
  await turn()
  cache.invalidate(['b'])
  cache.invalidate(['c']) // the marks are full: forgotten
  cache.invalidate(['a']) // a reading of a stored while its page was read
  slow.resolve('before the write')
  t.equal(await pending, 'before the write')
  t.equal(cache.peek(key, async () => 'x'), undefined, 'not kept: it may miss the reading')
})

t.test('memory budget: past maxBytes the page read longest ago goes first', async t => {
  const { clock, revisions, cache } = setup({ maxBytes: 100 })
  const keys = ['p', 'q', 'r', 's'].map(device => { revisions.table.set(device, 'r1'); return pageKey(device, '100||') })
  const [p, q, r, s] = keys as [ReturnType<typeof pageKey>, ReturnType<typeof pageKey>, ReturnType<typeof pageKey>, ReturnType<typeof pageKey>]
  await cache.get(p, async () => 'p'.repeat(60))
  await cache.get(q, async () => 'q'.repeat(40))
  t.same(cache.size, { entries: 2, bytes: 100 }, 'exactly the budget: both kept')
  await cache.get(r, async () => 'r'.repeat(1))
  t.same(cache.size, { entries: 2, bytes: 41 }, 'one byte more: the oldest (p) went')
  t.equal(cache.peek(p, async () => ''), undefined)
  t.equal(cache.peek(q, async () => '')?.length, 40)
  await cache.get(s, async () => 's'.repeat(100))
  t.same(cache.size, { entries: 1, bytes: 100 }, 'a page of the whole budget: as many of the oldest go as it takes (q and r)')
  t.equal(cache.peek(s, async () => '')?.length, 100)
  // A page read again goes to the back; a page only revalidated (no read) keeps its place.
  await cache.get(p, async () => 'p'.repeat(10))
  await cache.get(q, async () => 'q'.repeat(10))
  t.same(cache.size, { entries: 2, bytes: 20 }, 's went for them')
  revisions.table.set('p', 'r2')
  clock.now = T0 + 2 * TTL
  t.equal(await cache.get(p, async () => 'P'.repeat(10)), 'P'.repeat(10), 'p read again (its revision moved)')
  t.equal(await cache.get(q, async () => 'never'), 'q'.repeat(10), 'q revalidated only')
  await cache.get(r, async () => 'r'.repeat(81))
  t.equal(cache.peek(q, async () => ''), undefined, 'q (read before p was read again) went first')
  t.equal(cache.peek(p, async () => ''), 'P'.repeat(10))
  t.same(cache.size, { entries: 2, bytes: 91 })
})

t.test('a page larger than the whole budget is answered but not kept, and its older copy goes', async t => {
  const { clock, revisions, cache } = setup({ maxBytes: 100 })
  revisions.table.set('big', 'r1')
  revisions.table.set('small', 'r1')
  const big = pageKey('big', '100||')
  const small = pageKey('small', '100||')
  await cache.get(big, async () => 'y'.repeat(10))
  revisions.table.set('big', 'r2')
  clock.now = T0 + 2 * TTL
  await cache.get(small, async () => 'x'.repeat(50))
  t.equal((await cache.get(big, async () => 'z'.repeat(101)))?.length, 101, 'answered')
  t.equal(cache.peek(big, async () => ''), undefined, 'not kept, nor is the copy it replaces')
  t.equal(cache.peek(small, async () => '')?.length, 50, 'and nothing was dropped to make room for it')
  t.same(cache.size, { entries: 1, bytes: 50 })
})

t.test('without sizeOf pages weigh nothing: maxBytes never drops one', async t => {
  const revisions = new FakeRevisions(() => T0)
  revisions.table.set('pc1', 'r1')
  const cache = new HistoryCache<string>({ ttlMs: TTL, revisions, maxBytes: 1, now: () => T0 })
  await cache.get(pageKey('pc1', '1'), async () => 'a long page')
  await cache.get(pageKey('pc1', '2'), async () => 'another long page')
  t.same(cache.size, { entries: 2, bytes: 0 })
})

t.test('maxEntries: past it the page read longest ago goes', async t => {
  const { revisions, cache } = setup({ maxEntries: 3 })
  const keys = ['a', 'b', 'c', 'd'].map(device => { revisions.table.set(device, 'r1'); return pageKey(device, '100||') })
  for (const key of keys.slice(0, 3)) await cache.get(key, async () => key.device)
  t.same(cache.size, { entries: 3, bytes: 3 }, 'three kept')
  await cache.get(keys[3]!, async () => 'd')
  t.same(cache.size, { entries: 3, bytes: 3 })
  t.same(keys.map(key => cache.peek(key, async () => '')), [undefined, 'b', 'c', 'd'], 'a went')
})

t.test('a page read again replaces its old size', async t => {
  const { clock, revisions, cache } = setup()
  revisions.table.set('pc1', 'r1')
  const key = pageKey('pc1', '100||')
  await cache.get(key, async () => 'x'.repeat(30))
  revisions.table.set('pc1', 'r2')
  clock.now = T0 + 2 * TTL
  await cache.get(key, async () => 'y'.repeat(7))
  t.same(cache.size, { entries: 1, bytes: 7 })
})

t.test('a revalidation that fails: the page is answered for up to two TTLs, then get sees the error', async t => {
  const { clock, revisions, cache } = setup()
  revisions.table.set('pc1', 'r1')
  const key = pageKey('pc1', '100||')
  const pages = loader()
  await cache.get(key, pages.load)
  const down = new Error('table down')
  revisions.error = down
  clock.now = T0 + TTL
  t.equal(cache.peek(key, pages.load), 'page1', 'at the TTL: answered')
  await turn()
  t.equal(revisions.calls.revision.length, 2, 'its revalidation failed (and nobody saw it fail)')
  clock.now = T0 + 2 * TTL - 1
  t.equal(await cache.get(key, pages.load), 'page1', '2 ttl - 1: still answered')
  await turn()
  t.equal(revisions.calls.revision.length, 3, 'tried again')
  clock.now = T0 + 2 * TTL
  const caught = await cache.get(key, pages.load).then(() => undefined, (err: unknown) => err)
  t.equal(caught, down, '2 ttl: the request sees the error')
  t.equal(pages.count, 1)
  revisions.error = undefined
  t.equal(await cache.get(key, pages.load), 'page1', 'back: the kept page is validated, not read again')
  t.equal(pages.count, 1)
})

t.test('a load that fails: its waiters see the error, nothing is kept, the next get loads again', async t => {
  const { revisions, cache } = setup()
  revisions.table.set('pc1', 'r1')
  const key = pageKey('pc1', '100||')
  const down = new Error('query failed')
  let loads = 0
  const failing = async (): Promise<string> => { loads++; throw down }
  const results = await Promise.allSettled([cache.get(key, failing), cache.get(key, failing), cache.get(key, failing)])
  t.same(results, Array(3).fill({ status: 'rejected', reason: down }))
  t.equal(loads, 1, 'one load for the three')
  t.same(cache.size, { entries: 0, bytes: 0 })
  t.equal(await cache.get(key, async () => 'page'), 'page', 'the next get loads again')
})

t.test('ttlMs 0: every get loads, nothing is kept, no status is asked for', async t => {
  const { revisions, cache } = setup({ ttlMs: 0 })
  revisions.table.set('pc1', 'r1')
  const key = pageKey('pc1', '100||')
  const pages = loader()
  t.same(await Promise.all([cache.get(key, pages.load), cache.get(key, pages.load), cache.get(key, pages.load)]), ['page1', 'page2', 'page3'])
  t.equal(cache.peek(key, pages.load), undefined)
  t.same(cache.size, { entries: 0, bytes: 0 })
  t.same(revisions.calls, { revision: [], fresh: [], touch: [] })
})

// With the real status cache as its source (a repository in memory): the pages of many devices
// are revalidated by one BatchGetItem per TTL, and cost no query while nothing changes.
t.test('with the status cache: pages of ten devices cost one batched status read per TTL and no load while nothing changes', async t => {
  let now = T0
  const table = new Map<string, StatusRecord>()
  const batches: string[][] = []
  const repository: Pick<ReadingsRepository, 'getStatuses'> = {
    getStatuses: async (devices: Iterable<string>) => {
      const list = [...devices]
      batches.push(list)
      return new Map(list.flatMap(d => { const r = table.get(d); return r === undefined ? [] : [[d, { ...r }] as const] }))
    }
  }
  const statuses = new StatusCache({ repository, staleAfterSeconds: 60, ttlMs: TTL, now: () => now })
  const cache = new HistoryCache<string>({ ttlMs: TTL, revisions: statuses, now: () => now })
  const devices = Array.from({ length: 10 }, (_, i) => `pc${i}`)
  for (const device of devices) table.set(device, record(device, 'r1'))
  const keys = devices.map(device => pageKey(device, '100||'))
  let loads = 0
  const load = async (): Promise<string> => `page${++loads}`
  await Promise.all(keys.map(async key => await cache.get(key, load)))
  t.equal(batches.length, 1, 'one BatchGetItem for the ten first pages')
  t.equal(loads, 10)
  for (let poll = 1; poll <= 6; poll++) {
    now = T0 + poll * TTL / 2
    for (const key of keys) t.not(cache.peek(key, load), undefined)
    await turn()
    await turn()
  }
  t.equal(loads, 10, 'three TTLs of polling an unchanged history: no query')
  t.equal(batches.length, 4, 'one status read per TTL (at T0 + 1, 2 and 3 TTLs)')
  t.same(batches.map(batch => batch.length), [10, 10, 10, 10], 'each for all ten devices')
  table.set('pc3', record('pc3', 'r2'))
  now = T0 + 4 * TTL
  for (const key of keys) t.not(cache.peek(key, load), undefined)
  await turn()
  await turn()
  t.equal(batches.length, 5)
  t.equal(loads, 11, 'a moved revision: that device\'s page alone is read again')
  t.equal(cache.peek(keys[3]!, load), 'page11')
})

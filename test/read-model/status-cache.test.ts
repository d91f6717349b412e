import t from 'tap'
import { StatusCache, recordOf, statusFrom, type Revision, type StatusCacheOptions } from '../../read-model/status-cache.js'
import { statusOf, type ReadingsRepository, type StatusRecord } from '../../storage/readings-repository.js'
import { StatusMessage, type Reading, type ThrottledFlags } from '../../schemas/readings.js'

// The status cache's promises, with an injected clock (no sleeps) and an in-memory repository
// that counts its BatchGetItem calls. The only real scheduling is the service's own: a read is
// sent one turn of the event loop after it is asked for (setImmediate), so that every device
// asked for in that turn shares it; `turn()` lets that turn pass.

const T0 = Date.parse('2026-03-01T12:00:00.000Z')
const TTL = 1000

/** One turn of the event loop: the batched read asked for before has been sent and, unless held, has landed. */
async function turn (): Promise<void> {
  await new Promise(resolve => setImmediate(resolve))
}

/** Whether the promise has settled after one turn of the event loop. */
async function settled (promise: Promise<unknown>): Promise<boolean> {
  let done = false
  promise.then(() => { done = true }, () => { done = true })
  await turn()
  return done
}

const iso = (ms: number): string => new Date(ms).toISOString()
const uuid = (n: number): string => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`

function status (device: string, takenMs: number, n: number, extra: Partial<StatusRecord> = {}): StatusRecord {
  return { device, kind: 'pc', uuid: uuid(n), loading_datetime: iso(takenMs), prediction: 0, probability: 0.125, ...extra }
}

function reading (device: string, takenMs: number, n: number, extra: Partial<Reading> = {}): Reading {
  return {
    device,
    kind: 'pc',
    uuid: uuid(n),
    loading_datetime: iso(takenMs),
    TemperatureCPUPackage: 54,
    LoadCPUTotal: 25.5,
    prediction: 0,
    probability: 0.25,
    ...extra
  }
}

const FLAGS: ThrottledFlags = {
  under_voltage: true,
  arm_frequency_capped: false,
  throttled: true,
  soft_temperature_limit: false,
  under_voltage_occurred: true,
  arm_frequency_capped_occurred: false,
  throttled_occurred: true,
  soft_temperature_limit_occurred: false
}

/** The repository as the service sees it: status items in a map, every BatchGetItem counted. */
class FakeRepository implements Pick<ReadingsRepository, 'getStatuses'> {
  readonly table = new Map<string, StatusRecord>()
  /** the devices of each call, in the order asked */
  readonly calls: string[][] = []
  /** every call fails with it (when not held) */
  error: Error | undefined
  private held = false
  private waiting: Array<{ resolve: () => void, reject: (err: unknown) => void }> = []

  async getStatuses (devices: Iterable<string>): Promise<Map<string, StatusRecord>> {
    const list = [...devices]
    this.calls.push(list)
    // What the table holds when the call is sent; a new object per read, as DynamoDB's answers are.
    const found = new Map<string, StatusRecord>()
    for (const device of list) {
      const item = this.table.get(device)
      if (item !== undefined) found.set(device, { ...item })
    }
    if (this.held) await new Promise<void>((resolve, reject) => { this.waiting.push({ resolve, reject }) })
    if (this.error !== undefined) throw this.error
    return found
  }

  /** Calls sent from now on wait for `release`. */
  hold (): void {
    this.held = true
  }

  /** The held calls answer (or fail with `err`); later calls answer at once. */
  release (err?: Error): void {
    this.held = false
    const waiting = this.waiting
    this.waiting = []
    for (const w of waiting) {
      if (err === undefined) w.resolve()
      else w.reject(err)
    }
  }
}

function setup (options: Partial<StatusCacheOptions> = {}) {
  let now = T0
  const repo = new FakeRepository()
  const refreshErrors: unknown[] = []
  const service = new StatusCache({
    repository: repo,
    staleAfterSeconds: 60,
    ttlMs: TTL,
    now: () => now,
    onRefreshError: err => { refreshErrors.push(err) },
    ...options
  })
  const clock = {
    get now () { return now },
    set now (ms: number) { now = ms }
  }
  return { clock, repo, refreshErrors, service }
}

const sorted = (devices: string[] | undefined): string[] => [...devices ?? []].sort()

t.test('a miss reads the table once; the read is stamped with the time it was sent', async t => {
  const { clock, repo, service } = setup()
  repo.table.set('pc1', status('pc1', T0 - 5000, 1, { rev: 'r1' }))
  t.equal(service.peek('pc1'), undefined, 'nothing in memory: peek has no answer')
  await turn()
  t.same(repo.calls, [], 'and peek alone sends no read')
  repo.hold()
  const pending = service.revision('pc1')
  await turn()
  clock.now = T0 + 250 // the answer lands later than it was sent
  repo.release()
  const first = await pending
  t.same(repo.calls, [['pc1']])
  t.equal(first.at, T0, 'at: when the read was sent, not when it landed')
  t.same(first.record, status('pc1', T0 - 5000, 1, { rev: 'r1' }))
  t.equal(await service.record('pc1'), first.record, 'record() is the revision\'s record')
  t.equal(service.peek('pc1'), first, 'the same revision object, synchronously')
  await turn()
  t.equal(repo.calls.length, 1, 'answered from memory')
})

t.test('a device without a status reads null, and that is kept as well', async t => {
  const { repo, service } = setup()
  t.equal(await service.record('nobody'), null)
  t.equal(await service.record('nobody'), null)
  t.equal(service.peek('nobody')?.record, null, 'kept: peek answers null')
  t.equal(service.peek('nobody')?.at, T0)
  t.same(repo.calls, [['nobody']], 'one read for both')
})

// Every boundary of an entry's life: [0, ttl) from memory, [ttl, 2 ttl) from memory while a read
// refreshes it, from 2 ttl on a request waits for the table.
for (const { offset, answered, refreshed } of [
  { offset: TTL - 1, answered: true, refreshed: false },
  { offset: TTL, answered: true, refreshed: true },
  { offset: TTL + 1, answered: true, refreshed: true },
  { offset: 2 * TTL - 1, answered: true, refreshed: true },
  { offset: 2 * TTL, answered: false, refreshed: false },
  { offset: 2 * TTL + 1, answered: false, refreshed: false }
]) {
  t.test(`an entry ${offset} ms old (ttl ${TTL}): ${answered ? 'answered from memory' : 'not answered'}, ${refreshed ? 'refreshed' : 'no refresh'}`, async t => {
    const { clock, repo, service } = setup()
    repo.table.set('pc1', status('pc1', T0, 1, { rev: 'r1' }))
    const first = await service.revision('pc1')
    repo.table.set('pc1', status('pc1', T0 + 10, 2, { rev: 'r2' }))
    clock.now = T0 + offset
    t.equal(service.peek('pc1'), answered ? first : undefined, 'peek')
    await turn()
    t.equal(repo.calls.length, refreshed ? 2 : 1, refreshed ? 'peek started a read' : 'peek sent no read')
    if (refreshed) {
      const second = service.peek('pc1')
      t.equal(second?.at, T0 + offset, 'the refreshed entry is stamped with its read')
      t.equal(second?.record?.uuid, uuid(2), 'and holds what the table holds now')
    }
    if (answered) {
      t.equal((await service.revision('pc1')).record?.uuid, refreshed ? uuid(2) : uuid(1), 'revision() answers from memory')
      return
    }
    repo.hold()
    const waiting = service.revision('pc1')
    t.equal(await settled(waiting), false, 'a request waits for the table')
    t.equal(repo.calls.length, 2)
    repo.release()
    const revision = await waiting
    t.equal(revision.at, T0 + offset)
    t.equal(revision.record?.uuid, uuid(2))
  })
}

t.test('between one and two TTLs a refresh is sent once however many ask', async t => {
  const { clock, repo, service } = setup()
  repo.table.set('pc1', status('pc1', T0, 1))
  const first = await service.revision('pc1')
  repo.hold()
  clock.now = T0 + TTL
  for (let i = 0; i < 10; i++) t.equal(service.peek('pc1'), first)
  await turn()
  t.equal(repo.calls.length, 2, 'ten answers in the window, one read')
  clock.now = T0 + 2 * TTL - 1
  t.equal(await service.record('pc1'), first.record, 'still answered while the refresh is on its way')
  clock.now = T0 + 2 * TTL
  const waiting = service.record('pc1')
  await turn()
  t.equal(repo.calls.length, 2, 'past two TTLs a request joins the refresh already on its way')
  repo.release()
  t.same(await waiting, first.record)
  t.equal(service.peek('pc1')?.at, T0 + TTL, 'from the read sent at the TTL')
})

t.test('50 concurrent requests for 10 devices: one BatchGetItem with each device once', async t => {
  const { repo, service } = setup()
  const devices = Array.from({ length: 10 }, (_, i) => `pc${i}`)
  // three of them have no status item
  for (const [i, device] of devices.slice(0, 7).entries()) repo.table.set(device, status(device, T0 - i, i + 1))
  const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => service.record(devices[i % 10]!)))
  t.equal(repo.calls.length, 1, 'one call')
  t.equal(repo.calls[0]?.length, 10, 'ten keys')
  t.same(sorted(repo.calls[0]), sorted(devices), 'the ten devices')
  for (const [i, answer] of answers.entries()) {
    const n = i % 10
    if (n < 7) t.equal(answer?.uuid, uuid(n + 1), `request ${i}: its device's status`)
    else t.equal(answer, null, `request ${i}: no status`)
    if (i >= 10) t.equal(answer, answers[n], `request ${i}: the same record as the device's other requests`)
  }
  await Promise.all(devices.map(async device => await service.record(device)))
  t.equal(repo.calls.length, 1, 'then all answered from memory')
})

t.test('single flight: a request for a device whose read is on its way joins it; other devices go in the next batch', async t => {
  const { repo, service } = setup()
  repo.table.set('a', status('a', T0, 1))
  repo.table.set('b', status('b', T0, 2))
  repo.hold()
  const first = service.revision('a')
  await turn()
  t.same(repo.calls, [['a']])
  const joined = [service.revision('a'), service.fresh('a'), service.revision('a')]
  const other = service.revision('b')
  await turn()
  t.same(repo.calls, [['a'], ['b']], 'a is not read again; b is read on its own')
  repo.release()
  const a = await first
  for (const p of joined) t.equal(await p, a, 'the very same revision')
  t.equal((await other).record?.uuid, uuid(2))
})

t.test('fresh() sends a new read even when the entry is young', async t => {
  const { clock, repo, service } = setup()
  repo.table.set('a', status('a', T0, 1))
  await service.record('a')
  clock.now = T0 + 10
  repo.table.set('a', status('a', T0 + 5, 2))
  const revision = await service.fresh('a')
  t.equal(repo.calls.length, 2)
  t.equal(revision.at, T0 + 10)
  t.equal(revision.record?.uuid, uuid(2))
  t.equal(service.peek('a'), revision, 'and it is what is kept')
})

t.test('refresh ahead: entries in use and past half their TTL join the next batched read', async t => {
  const { clock, repo, service } = setup()
  for (const device of ['a', 'b', 'c']) repo.table.set(device, status(device, T0, 1))
  await Promise.all(['a', 'b', 'c'].map(async device => await service.record(device)))
  t.same(repo.calls, [['a', 'b', 'c']])
  clock.now = T0 + 100
  t.not(service.peek('a'), undefined, 'a is in use: asked for')
  service.touch('b') // b is in use: a page it validated was answered
  service.touch('nobody') // nothing kept: nothing to mark
  // c: read once, not asked for since
  clock.now = T0 + TTL / 2 - 1
  await service.record('d')
  t.same(repo.calls[1], ['d'], 'ttl/2 - 1: nothing is refreshed ahead')
  clock.now = T0 + TTL / 2
  await service.record('e')
  t.same(sorted(repo.calls[2]), ['a', 'b', 'e'], 'ttl/2: the entries in use join the read of e; c (unused) does not')
  t.equal(service.peek('a')?.at, T0 + TTL / 2, 'a was refreshed')
  t.equal(service.peek('b')?.at, T0 + TTL / 2, 'b was refreshed')
  t.equal(service.peek('c')?.at, T0, 'c was not')
  clock.now = T0 + TTL
  t.equal(service.peek('a')?.at, T0 + TTL / 2)
  await turn()
  t.equal(repo.calls.length, 3, 'refreshed ahead: a needs no read of its own at the TTL')
  t.equal(service.peek('c')?.at, T0, 'c is answered at the TTL...')
  await turn()
  t.same(sorted(repo.calls[3]), ['a', 'b', 'c'], '...and its read carries a and b (in use, half a TTL old): they stay in step')
})

t.test('an entry is in use for one TTL after it was last asked for (and not ahead of a read of its own)', async t => {
  const { clock, repo, service } = setup()
  await Promise.all([service.record('a'), service.record('b')])
  clock.now = T0 + 1
  service.peek('a')
  clock.now = T0 + 2
  service.peek('b')
  clock.now = T0 + TTL + 1
  await service.record('x')
  t.same(sorted(repo.calls[1]), ['b', 'x'], 'b asked for 999 ms ago joins; a asked for 1000 ms ago does not')
})

t.test('the in-use mark outlives a refresh', async t => {
  const { clock, repo, service } = setup()
  await service.record('a')
  clock.now = T0 + 600
  service.peek('a')
  await service.record('x')
  t.same(sorted(repo.calls[1]), ['a', 'x'], 'a refreshed ahead at 600 ms')
  clock.now = T0 + 1100 // a is 500 ms old, asked for 500 ms ago (before its refresh)
  await service.record('y')
  t.same(sorted(repo.calls[2]), ['a', 'y'], 'still in use after its refresh')
})

t.test('an entry whose read is on its way is not read again ahead of time', async t => {
  const { clock, repo, service } = setup()
  await service.record('a')
  repo.hold()
  clock.now = T0 + TTL
  service.peek('a') // in use, and refreshed
  await turn()
  t.same(repo.calls[1], ['a'])
  await turn()
  const x = service.record('x')
  await turn()
  t.same(repo.calls[2], ['x'], 'a (in use, a TTL old) is already on its way: not in this batch')
  repo.release()
  await x
})

t.test('an entry read again moves behind the others: refresh ahead keeps finding the older ones', async t => {
  const { clock, repo, service } = setup()
  await service.record('a')
  clock.now = T0 + 100
  await service.record('b')
  clock.now = T0 + TTL / 2
  service.peek('a')
  service.peek('b')
  await service.record('x')
  t.same(sorted(repo.calls[2]), ['a', 'x'], 'a (half a TTL old) refreshed ahead; b (400 ms) not yet')
  clock.now = T0 + 100 + TTL / 2
  await service.record('y')
  t.same(sorted(repo.calls[3]), ['b', 'y'], 'b, now older than the refreshed a, is found and refreshed')
})

t.test('an unused entry two TTLs old is dropped by the next batched read', async t => {
  const { clock, repo, service } = setup()
  repo.table.set('a', status('a', T0, 1))
  repo.table.set('b', status('b', T0, 2))
  await service.record('a')
  clock.now = T0 + 1
  await service.record('b')
  clock.now = T0 + 2 * TTL
  await service.record('x') // a is 2 TTLs old, b one ms younger; neither is in use
  t.same(repo.calls[2], ['x'], 'neither is refreshed')
  // A write seen here shows which entries are kept: it updates a kept entry (its `at` stays), or
  // makes a new one stamped now.
  service.observe([reading('a', T0 + 50, 3), reading('b', T0 + 50, 4)])
  t.equal(service.peek('a')?.at, T0 + 2 * TTL, 'a was dropped: the write made a new entry')
  t.equal(service.peek('a')?.record?.uuid, uuid(3))
  t.equal(service.peek('b')?.at, T0 + 1, 'b was kept: the write updated it')
  t.equal(service.peek('b')?.record?.uuid, uuid(4))
})

t.test('a failed read: every waiter sees the error, nothing is kept, the next request reads again', async t => {
  const { repo, refreshErrors, service } = setup()
  const down = new Error('table down')
  repo.error = down
  const results = await Promise.allSettled([service.record('a'), service.record('a'), service.revision('b'), service.fresh('c')])
  t.equal(repo.calls.length, 1, 'one read for all of them')
  for (const result of results) t.same(result, { status: 'rejected', reason: down })
  for (const result of results) t.equal(result.status === 'rejected' && result.reason, down, 'the error itself')
  t.same(refreshErrors, [down], 'onRefreshError told once')
  t.equal(service.peek('a'), undefined, 'nothing kept')
  repo.error = undefined
  repo.table.set('a', status('a', T0, 1))
  t.equal((await service.record('a'))?.uuid, uuid(1), 'the next request reads again')
  t.equal(repo.calls.length, 2)
})

t.test('an outage: entries answered for up to two TTLs, then the error; onRefreshError once per failing spell', async t => {
  const { clock, repo, refreshErrors, service } = setup()
  repo.table.set('a', status('a', T0, 1))
  const before = await service.revision('a')
  const first = new Error('outage one')
  repo.error = first
  clock.now = T0 + TTL
  t.equal(service.peek('a'), before, 'at the TTL: answered')
  await turn()
  t.equal(repo.calls.length, 2, 'the refresh was sent...')
  t.same(refreshErrors, [first], '...and failed: told once')
  clock.now = T0 + TTL + 500
  t.equal(await service.record('a'), before.record, 'answered from memory while the table fails')
  await turn()
  t.equal(repo.calls.length, 3, 'each answer in the window tries again')
  clock.now = T0 + 2 * TTL - 1
  t.equal(service.peek('a'), before, '2 ttl - 1: still answered')
  await turn()
  t.equal(repo.calls.length, 4)
  t.same(refreshErrors, [first], 'the same spell: not told again')
  clock.now = T0 + 2 * TTL
  const caught = await service.record('a').then(() => undefined, (err: unknown) => err)
  t.equal(caught, first, '2 ttl: the request sees the error')
  t.same(refreshErrors, [first])
  repo.error = undefined
  repo.table.set('a', status('a', T0 + 1, 2))
  t.equal((await service.record('a'))?.uuid, uuid(2), 'the table is back: a new read')
  t.equal(service.peek('a')?.at, T0 + 2 * TTL)
  const second = new Error('outage two')
  repo.error = second
  clock.now = T0 + 3 * TTL
  t.equal(service.peek('a')?.record?.uuid, uuid(2))
  await turn()
  t.same(refreshErrors, [first, second], 'a new spell after a success: told again')
})

t.test('reads failing together are one failing spell', async t => {
  const { repo, refreshErrors, service } = setup()
  repo.hold()
  const a = service.record('a')
  await turn()
  const b = service.record('b')
  await turn()
  t.equal(repo.calls.length, 2, 'two reads on their way')
  const down = new Error('down')
  repo.release(down)
  const results = await Promise.allSettled([a, b])
  t.same(results.map(r => r.status), ['rejected', 'rejected'])
  t.same(refreshErrors, [down], 'told once')
})

t.test('onRead listeners hear of every device read from the table, not of answers from memory or failures', async t => {
  const { clock, repo, service } = setup()
  const heard: Array<[string, Revision]> = []
  service.onRead((device, revision) => { heard.push([device, revision]) })
  repo.table.set('a', status('a', T0, 1))
  const [a, b] = await Promise.all([service.revision('a'), service.revision('b')])
  t.equal(heard.length, 2)
  t.same(heard.map(([device]) => device), ['a', 'b'])
  t.equal(heard[0]?.[1], a, 'with the revision kept')
  t.equal(heard[1]?.[1], b)
  t.equal(heard[1]?.[1].record, null, 'a device without a status too')
  await service.revision('a')
  t.equal(heard.length, 2, 'an answer from memory: nothing heard')
  repo.error = new Error('down')
  await service.fresh('a').catch(() => {})
  t.equal(heard.length, 2, 'a failed read: nothing heard')
  repo.error = undefined
  clock.now = T0 + TTL
  service.peek('a')
  await turn()
  t.same(heard.map(([device, revision]) => [device, revision.at]), [['a', T0], ['b', T0], ['a', T0 + TTL]], 'a refresh is heard')
})

t.test('observe: a write seen in this process is answered at once, without a read', async t => {
  const { clock, repo, service } = setup()
  service.observe([
    reading('pi', T0 - 100, 1, { kind: 'raspberry', prediction: 1, probability: 0.75, throttled_flags: FLAGS, CPU_temp_celsius: 50 }),
    reading('pc1', T0 - 200, 2)
  ])
  const pi = service.peek('pi')
  t.equal(pi?.at, T0, 'stamped now')
  t.strictSame(pi?.record, {
    device: 'pi',
    kind: 'raspberry',
    uuid: uuid(1),
    loading_datetime: iso(T0 - 100),
    prediction: 1,
    probability: 0.75,
    throttled_flags: FLAGS
  }, 'the status fields of the reading, no sensor values, and no rev (this process does not know it)')
  const pc = service.peek('pc1')?.record
  t.strictSame(pc, { device: 'pc1', kind: 'pc', uuid: uuid(2), loading_datetime: iso(T0 - 200), prediction: 0, probability: 0.25 })
  t.notOk(pc !== undefined && pc !== null && 'throttled_flags' in pc, 'no throttled_flags key when the reading has none')
  clock.now = T0 + TTL - 1
  t.equal((await service.record('pc1'))?.uuid, uuid(2))
  await turn()
  t.same(repo.calls, [], 'within the TTL: no read')
  clock.now = T0 + TTL
  t.equal(service.peek('pc1')?.record?.uuid, uuid(2))
  await turn()
  t.same(repo.calls, [['pc1']], 'at the TTL it is refreshed like any entry')
})

t.test('observe moves a status forward only for newer readings', async t => {
  const { clock, repo, service } = setup()
  repo.table.set('a', status('a', T0, 5, { rev: 'r1' }))
  const kept = (await service.revision('a')).record
  clock.now = T0 + 100
  service.observe([reading('a', T0 - 1, 9)])
  t.equal(service.peek('a')?.record, kept, 'an older reading: unchanged')
  service.observe([reading('a', T0, 4)])
  t.equal(service.peek('a')?.record, kept, 'the same time, a smaller uuid: unchanged')
  service.observe([reading('a', T0, 5)])
  t.equal(service.peek('a')?.record, kept, 'the same reading: unchanged (its rev kept)')
  service.observe([reading('a', T0, 6)])
  t.equal(service.peek('a')?.record?.uuid, uuid(6), 'the same time, a greater uuid: newer')
  t.equal(service.peek('a')?.record?.rev, undefined, 'with no rev')
  service.observe([reading('a', T0 + 3, 8), reading('a', T0 + 1, 1), reading('a', T0 + 2, 7)])
  t.equal(service.peek('a')?.record?.uuid, uuid(8), 'readings out of order in one call: the newest wins')
  t.equal(service.peek('a')?.at, T0, 'a write does not make the entry younger: the table is still read after the TTL')
  clock.now = T0 + TTL
  service.peek('a')
  await turn()
  t.equal(repo.calls.length, 2, 'refreshed at the TTL')
  t.equal(service.peek('a')?.record?.uuid, uuid(8), 'and the table\'s older status does not undo the write')
})

t.test('observe gives a device read as having no status the written one', async t => {
  const { repo, service } = setup()
  t.equal(await service.record('a'), null)
  service.observe([reading('a', T0, 1)])
  t.equal((await service.record('a'))?.uuid, uuid(1))
  t.equal(repo.calls.length, 1)
})

t.test('a read on its way while a write is observed does not undo the write; a newer status in the table wins', async t => {
  for (const { table, expected, what } of [
    { table: status('a', T0, 1), expected: uuid(2), what: 'the table had an older status' },
    { table: undefined, expected: uuid(2), what: 'the table had no status' },
    { table: status('a', T0 + 20, 3), expected: uuid(3), what: 'the table had a newer status' }
  ]) {
    const { clock, repo, service } = setup()
    if (table !== undefined) repo.table.set('a', table)
    repo.hold()
    const pending = service.record('a')
    await turn() // sent: it reads the table as it was before the write
    clock.now = T0 + 5
    service.observe([reading('a', T0 + 10, 2)])
    t.equal(service.peek('a')?.at, T0 + 5, `${what}: the write is answered at once`)
    repo.release()
    t.equal((await pending)?.uuid, expected, `${what}: the request on its way`)
    t.equal(service.peek('a')?.record?.uuid, expected, `${what}: the entry`)
    t.equal(service.peek('a')?.at, T0, `${what}: stamped with the read (when it was sent)`)
  }
})

t.test('a status read again under the same revision keeps its record object; a new revision replaces it', async t => {
  const { clock, repo, service } = setup()
  repo.table.set('a', status('a', T0, 1, { rev: 'r1' }))
  const first = await service.revision('a')
  clock.now = T0 + TTL
  service.peek('a')
  await turn()
  const second = service.peek('a')
  t.equal(second?.at, T0 + TTL, 'refreshed')
  t.equal(second?.record, first.record, 'the same revision: the same record object (answers made from it stay valid)')
  // A late reading changes the item's revision, not its newest reading.
  repo.table.set('a', status('a', T0, 1, { rev: 'r2' }))
  clock.now = T0 + 2 * TTL
  service.peek('a')
  await turn()
  const third = service.peek('a')
  t.not(third?.record, first.record, 'another revision: another record')
  t.equal(third?.record?.rev, 'r2')
  t.equal(third?.record?.uuid, uuid(1))
})

t.test('a status written here (no rev) takes the table\'s rev when the same reading is read back', async t => {
  const { clock, repo, service } = setup()
  service.observe([reading('a', T0, 1)])
  repo.table.set('a', status('a', T0, 1, { rev: 'r1', probability: 0.25 }))
  clock.now = T0 + TTL
  service.peek('a')
  await turn()
  t.equal(service.peek('a')?.record?.rev, 'r1')
})

t.test('ttlMs 0: nothing is kept, every request reads the table, concurrent ones still share a read', async t => {
  const { repo, service } = setup({ ttlMs: 0 })
  const heard: string[] = []
  service.onRead(device => { heard.push(device) })
  repo.table.set('a', status('a', T0, 1))
  const answers = await Promise.all(Array.from({ length: 5 }, async () => await service.record('a')))
  t.same(repo.calls, [['a']], 'one read for five requests')
  t.same(answers.map(a => a?.uuid), Array(5).fill(uuid(1)))
  t.equal(service.peek('a'), undefined, 'nothing kept')
  await service.record('a')
  t.equal(repo.calls.length, 2, 'the next request reads again')
  service.observe([reading('a', T0 + 1, 2)])
  t.equal(service.peek('a'), undefined, 'observe keeps nothing either')
  t.equal((await service.record('a'))?.uuid, uuid(1), 'the table\'s answer')
  t.same(heard, ['a', 'a', 'a'], 'listeners hear every read')
})

t.test('maxEntries: past it the entry read longest ago goes; an entry read again is the newest', async t => {
  const { clock, service } = setup({ maxEntries: 3 })
  for (const [i, device] of ['a', 'b', 'c', 'd'].entries()) {
    clock.now = T0 + i
    await service.record(device)
  }
  t.equal(service.peek('a'), undefined, 'a went')
  t.same(['b', 'c', 'd'].map(d => service.peek(d)?.at), [T0 + 1, T0 + 2, T0 + 3], 'three kept')
  clock.now = T0 + 4
  await service.fresh('b')
  await service.record('e')
  t.equal(service.peek('c'), undefined, 'c went: b was read again after it')
  t.same(['b', 'd', 'e'].map(d => service.peek(d)?.at), [T0 + 4, T0 + 3, T0 + 4])
})

t.test('maxEntries holds for statuses written here too', async t => {
  const { repo, service } = setup({ maxEntries: 2 })
  await service.record('a')
  service.observe([reading('b', T0, 1), reading('c', T0, 2), reading('d', T0, 3)])
  t.equal(service.peek('a'), undefined, 'a (read first) went')
  t.equal(service.peek('b'), undefined, 'b went')
  t.same(['c', 'd'].map(d => service.peek(d)?.record?.uuid), [uuid(2), uuid(3)], 'the two written last are kept')
  service.observe([reading('c', T0 + 1, 4)])
  t.equal(service.peek('d')?.record?.uuid, uuid(3), 'a write to a kept entry makes no room')
  t.equal(repo.calls.length, 1)
})

t.test('age: tenths of a second, rounded; stale strictly past staleAfterSeconds', async t => {
  const { clock, service } = setup({ staleAfterSeconds: 60 })
  clock.now = T0 + 100_000
  const at = (ageMs: number) => service.age(clock.now - ageMs)
  t.same(at(0), { tenths: 0, stale: false })
  t.same(at(49), { tenths: 0, stale: false })
  t.same(at(50), { tenths: 1, stale: false })
  t.same(at(149), { tenths: 1, stale: false })
  t.same(at(150), { tenths: 2, stale: false })
  t.same(at(2449), { tenths: 24, stale: false })
  t.same(at(-5000), { tenths: 0, stale: false }, 'a reading from the future is 0 s old')
  t.same(at(60_000), { tenths: 600, stale: false }, 'exactly the window: not stale')
  t.same(at(60_001), { tenths: 600, stale: true }, 'one ms past it: stale')
  t.same(at(3_600_000), { tenths: 36_000, stale: true })
})

t.test('toStatus: the answer made of a record, its age from the injected clock', async t => {
  const { service } = setup({ staleAfterSeconds: 60 })
  const ok = status('pc1', T0 - 2400, 1, { rev: 'r1' })
  t.strictSame(service.toStatus(ok), {
    msg: StatusMessage.ok,
    device: 'pc1',
    kind: 'pc',
    stressed: false,
    probability: 0.125,
    loading_datetime: iso(T0 - 2400),
    uuid: uuid(1),
    age_seconds: 2.4,
    stale: false
  }, 'OK; no rev and no throttled_flags in the answer')
  const stressed = service.toStatus(status('pc1', T0 - 60_000, 2, { prediction: 1, probability: 0.9 }))
  t.equal(stressed.msg, StatusMessage.stressed, '60 s old and stressed: stressed')
  t.equal(stressed.stressed, true)
  t.equal(stressed.stale, false)
  t.equal(stressed.age_seconds, 60)
  const stale = service.toStatus(status('pc1', T0 - 60_001, 3, { prediction: 1 }))
  t.equal(stale.msg, StatusMessage.stale, 'stale wins over stressed')
  t.equal(stale.stressed, true, 'the prediction is still told')
  t.equal(stale.stale, true)
  const pi = service.toStatus(status('pi', T0, 4, { kind: 'raspberry', throttled_flags: FLAGS }))
  t.equal(pi.throttled_flags, FLAGS, 'throttled_flags carried')
  t.equal(pi.kind, 'raspberry')
  const given = service.toStatus(ok, { tenths: 7, stale: true })
  t.equal(given.age_seconds, 0.7, 'an age the caller computed is used as it is')
  t.equal(given.msg, StatusMessage.stale)
})

t.test('the verdict\'s threshold: kept from the status item and from this process\'s own reading, absent on older items', async t => {
  const item = { device: { S: 'pc1' }, kind: { S: 'pc' }, uuid: { S: uuid(1) }, loading_datetime: { S: iso(T0) }, prediction: { N: '0' }, probability: { N: '0.12' }, source: { S: 'model' } }
  const withThreshold = statusOf({ ...item, threshold: { N: '0.3' } })
  t.equal(withThreshold?.threshold, 0.3, 'decoded from the status item')
  t.equal(statusFrom(withThreshold!, { tenths: 4, stale: false }).threshold, 0.3, 'and served')
  const older = statusOf(item)
  t.ok(older !== undefined && !('threshold' in older), 'an item written before the field existed has none')
  t.notOk('threshold' in statusFrom(older!, { tenths: 4, stale: false }), 'and its status shows none (the dashboard then names no figure)')
  t.equal(statusOf({ ...item, threshold: { S: '0.3' } }), undefined, 'a malformed threshold: not an item this service wrote')

  const reading = { device: 'pc1', kind: 'pc', uuid: uuid(2), loading_datetime: iso(T0), prediction: 1, probability: 1, source: 'model', reasons: [], missing: [], threshold: 0.3 } as unknown as Reading
  t.equal(recordOf(reading).threshold, 0.3, 'a reading this process stored carries it into the cache')
  t.notOk('threshold' in recordOf({ ...reading, threshold: undefined }), 'absent stays absent')
})

import t from 'tap'
import { OutageTracker, isUnavailable } from '../../storage/outage.js'

// The outage log's shape over time, with an injected clock (no sleeps): one line as it starts,
// a line with the counts at most every summaryEveryMs while it lasts, one line as it ends.
t.test('an outage is one start line, a summary every interval, one end line', async t => {
  const lines: Array<{ level: string, msg: string, obj: Record<string, unknown> }> = []
  const log = {
    error: (obj: object, msg = '') => { lines.push({ level: 'error', msg, obj: obj as Record<string, unknown> }) },
    warn: (obj: object, msg = '') => { lines.push({ level: 'warn', msg, obj: obj as Record<string, unknown> }) },
    info: (obj: object, msg = '') => { lines.push({ level: 'info', msg, obj: obj as Record<string, unknown> }) }
  }
  let now = 1_000_000
  const tracker = new OutageTracker({ log, summaryEveryMs: 10_000, now: () => now })
  tracker.success()
  t.same(lines, [], 'a success outside an outage logs nothing')
  const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
  for (let i = 0; i < 25_000; i++) {
    tracker.failure(refused, 'GetCommand')
    now += 1
  }
  t.ok(tracker.inOutage)
  t.same(lines.map(l => l.level), ['error', 'warn', 'warn'], '25 s of failures: the start, then a summary every 10 s')
  t.match(lines[1]!.obj, { failed: 10_001, seconds: 10 })
  tracker.success()
  t.equal(lines.length, 4)
  t.match(lines[3], { level: 'info', msg: 'DynamoDB outage ended', obj: { failed: 25_000, seconds: 25 } })
  t.notOk(tracker.inOutage)
  tracker.failure(refused, 'GetCommand')
  t.equal(lines[4]?.level, 'error', 'the next outage starts with a line of its own')
})

t.test('what counts as the table being unavailable', async t => {
  t.ok(isUnavailable(Object.assign(new Error('x'), { code: 'ECONNRESET' })), 'a network error')
  t.ok(isUnavailable({ name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } }), 'throttling')
  t.ok(isUnavailable({ name: 'InternalServerError', $metadata: { httpStatusCode: 500 } }), 'a 5xx')
  t.ok(isUnavailable({ name: 'ResourceNotFoundException', $metadata: { httpStatusCode: 400 } }), 'a table gone')
  t.notOk(isUnavailable({ name: 'ConditionalCheckFailedException', $metadata: { httpStatusCode: 400 } }), 'a failed condition is an answer')
  t.notOk(isUnavailable({ name: 'ValidationException', $metadata: { httpStatusCode: 400 } }), 'a bad request is an answer')
  t.notOk(isUnavailable(undefined))
})

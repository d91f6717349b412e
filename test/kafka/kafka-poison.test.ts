import t from 'tap'
import { randomUUID } from 'node:crypto'
import rdkafka from 'node-rdkafka'
import { build, dynalite, dynamoProxy, pcReading, spawnServer, uniqueTable } from '../helper.js'
import { brokers, committedTotal, consumeAll, noBroker, produce, producer, unique, waitUntil, freePort } from '../kafka-helper.js'
import { DLQ_VALUE_MAX_BYTES } from '../../kafka/message.js'

type Message = rdkafka.Message

function header (m: Message | undefined, name: string): string | undefined {
  for (const h of m?.headers ?? []) if (name in h) return String(h[name])
  return undefined
}

/** A reading as JSON text with `field` set to `raw`, written as is (1e400, a nested array…). */
function withRaw (device: string, field: string, raw: string): string {
  const base = JSON.stringify(pcReading({ device }))
  return `${base.slice(0, -1)},${JSON.stringify(field)}:${raw}}`
}

async function createTopic (name: string, config: Record<string, string>): Promise<void> {
  const admin = rdkafka.AdminClient.create({ 'bootstrap.servers': brokers! })
  try {
    await new Promise<void>((resolve, reject) => {
      admin.createTopic({ topic: name, num_partitions: 1, replication_factor: 1, config }, 15_000, err => { if (err != null) reject(err); else resolve() })
    })
  } finally {
    admin.disconnect()
  }
}

t.test('hostile messages through Kafka to the running process: each is dead-lettered with its reason, the process stays up, later readings are stored', { skip: noBroker }, async t => {
  const topic = unique('pc')
  const dlqTopic = unique('dlq')
  const db = await dynalite(t)
  const port = await freePort()
  const server = spawnServer(t, {
    KAFKA_BROKERS: brokers!,
    KAFKA_TOPICS: topic,
    KAFKA_GROUP_ID: unique('group'),
    KAFKA_DLQ_TOPIC: dlqTopic,
    COLLECTOR: 'off',
    DYNAMODB_ENDPOINT: db.endpoint,
    DYNAMODB_TABLE: uniqueTable(),
    PORT: String(port),
    HOST: '127.0.0.1',
    // room for the 100k-key message below; the ~1 MB one is still over it
    MAX_READING_BYTES: '900000'
  })
  let exitCode: number | null | undefined
  server.exited.then(code => { exitCode = code }, () => {})
  const url = `http://127.0.0.1:${port}`
  t.ok(await waitUntil(async () => (await fetch(`${url}/health`)).status > 0, 30_000), `the service answers (${server.output()})`)

  const p = await producer(t, brokers, { 'message.max.bytes': 2_000_000 })
  const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n)
  const deepObject = (n: number): string => '{"a":'.repeat(n) + '1' + '}'.repeat(n)
  const big = JSON.stringify({ ...pcReading({ device: 'kt-1mb' }), LoadCPUTotal: 'bad', junk: 'x'.repeat(1_030_000) })
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
  const keyOf = (i: number): string => { let k = ''; do { k += alphabet[i % 62]; i = Math.floor(i / 62) } while (i > 0); return k }
  const manyKeys = Array.from({ length: 100_000 }, (_, i) => `"${keyOf(i)}":0`).join(',')
  const nonUtf8 = Buffer.concat([Buffer.from(JSON.stringify(pcReading({ device: 'kt-bytes' })).slice(0, -1) + ',"note":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}')])
  const cases: Array<{ key: string, value: string | Buffer, reason: RegExp }> = [
    { key: 'deep-array', value: withRaw('kd-deep', 'LoadCPUTotal', deep(10_000)), reason: /^value nests arrays or objects more than 8 deep/ },
    { key: 'deep-object', value: withRaw('kd-deep', 'LoadCPUTotal', deepObject(10_000)), reason: /more than 8 deep/ },
    { key: 'big', value: big, reason: new RegExp(`^reading is ${Buffer.byteLength(big)} bytes, over MAX_READING_BYTES \\(900000\\)$`) },
    { key: 'inf', value: withRaw('kt-inf', 'LoadCPUTotal', '1e400'), reason: /^LoadCPUTotal must be a number from 0 to 100, or null \(got 1e400\)$/ },
    { key: 'neg-inf', value: withRaw('kt-inf', 'TemperatureCPUPackage', '-1e400'), reason: /\(got -1e400\)$/ },
    { key: 'huge-int', value: withRaw('kt-inf', 'ClockCPUCoreOne', '123456789012345678901234567890'), reason: /\(got 123456789012345678901234567890\)$/ },
    { key: 'underflow', value: withRaw('kt-inf', 'LoadCPUTotal', '1e-200'), reason: /^LoadCPUTotal is too small to store: .*\(got 1e-200\)$/ },
    { key: 'nested-ok-depth', value: withRaw('kt-shape', 'LoadCPUTotal', '[[1,2],{"a":[3]}]'), reason: /LoadCPUTotal .*\(got an array of 2 items\)$/ },
    { key: 'huge-string', value: withRaw('kt-str', 'device', JSON.stringify('"\n' + 'y'.repeat(60_000))), reason: /^device must match .*\(got "\\"\\nyyy[^"]*"… \(60002 characters\)\)$/ },
    { key: 'non-utf8', value: nonUtf8, reason: /not valid UTF-8/ },
    { key: 'many-keys', value: `{${manyKeys},"uuid":"${randomUUID()}","device":"kt-keys","loading_datetime":"${new Date().toISOString()}","LoadCPUTotal":"bad"}`, reason: /^LoadCPUTotal must be a number from 0 to 100, or null \(got "bad"\)$/ }
  ]
  // One at a time: each is its own produce request, so the ~1 MB one is never batched past the broker's limit.
  for (const c of cases) await produce(p, topic, typeof c.value === 'string' ? Buffer.from(c.value) : c.value, c.key)
  const good = pcReading({ device: 'kt-after' })
  await produce(p, topic, good, 'good')

  const dlq = await consumeAll(dlqTopic, cases.length, 60_000)
  const byKey = new Map(dlq.map(m => [String(m.key), m]))
  for (const c of cases) {
    const m = byKey.get(c.key)
    t.match(header(m, 'dlq.reason'), c.reason, `${c.key}: dead-lettered with its reason`)
    t.ok((header(m, 'dlq.reason') ?? '').length < 300, `${c.key}: the reason is short`)
    t.equal(header(m, 'dlq.source.topic'), topic)
    t.match(header(m, 'dlq.source.offset'), /^\d+$/)
    if (c.key !== 'big') t.same(m?.value, typeof c.value === 'string' ? Buffer.from(c.value) : c.value, `${c.key}: the value as sent`)
  }
  const bigLetter = byKey.get('big')
  t.equal(header(bigLetter, 'dlq.truncated'), 'true', 'the ~1 MB value is dead-lettered truncated')
  t.equal(header(bigLetter, 'dlq.original.bytes'), String(Buffer.byteLength(big)))
  t.equal(bigLetter?.value?.length, DLQ_VALUE_MAX_BYTES)
  t.same(bigLetter?.value, Buffer.from(big).subarray(0, DLQ_VALUE_MAX_BYTES), 'its first bytes as sent')

  const stored = await waitUntil(async () => (await fetch(`${url}/devices/kt-after/status`)).status === 200, 30_000)
  t.ok(stored, 'a reading published after the bad ones is stored and shown')
  t.match(await (await fetch(`${url}/devices/kt-after/status`)).json(), { device: 'kt-after', uuid: good.uuid })
  t.equal(exitCode, undefined, `the process is still running (${server.output().slice(-2000)})`)
  t.equal(server.child.exitCode, null)
  t.equal((await fetch(`${url}/health`)).status, 200, 'and healthy')
})

t.test('a DLQ that refuses every message: each is logged once and skipped, offsets are committed, later readings are stored', { skip: noBroker }, async t => {
  const topic = unique('pc')
  const dlqTopic = unique('dlq-tiny')
  await createTopic(dlqTopic, { 'max.message.bytes': '64' })
  const group = unique('group')
  const lines: string[] = []
  const app = await build(t, {
    env: { KAFKA_BROKERS: brokers!, KAFKA_TOPICS: topic, KAFKA_GROUP_ID: group, KAFKA_DLQ_TOPIC: dlqTopic, COLLECTOR: 'off', LOG_LEVEL: 'warn' },
    logStream: { write: line => { lines.push(line) } }
  })
  const p = await producer(t)
  await produce(p, topic, 'not json at all, and longer than the DLQ takes', 'bad')
  await produce(p, topic, pcReading({ device: 'kt-refused', LoadCPUTotal: 1000 }), 'bad-2')
  const good = pcReading({ device: 'kt-refused' })
  await produce(p, topic, good, 'good')

  t.ok(await waitUntil(async () => (await app.inject('/devices/kt-refused/status')).statusCode === 200, 40_000), 'the good reading is stored')
  t.ok(await waitUntil(async () => (app.kafkaConsumer?.counters.dlqFailed ?? 0) === 2, 40_000), 'both dead letters failed')
  const skipped = lines.map(l => JSON.parse(l)).filter(l => l.msg === 'message could not be dead-lettered: skipped')
  t.equal(skipped.length, 2, 'one error line per message')
  t.equal(skipped[0]?.level, 50, 'at error level')
  t.match(skipped.map(l => l.reason).sort(), [/LoadCPUTotal must be/, /not JSON/])
  t.match(skipped[0], { source: { topic, partition: Number, offset: Number }, dlq: dlqTopic, err: /too large/i })
  t.notOk(lines.some(l => l.includes('longer than the DLQ takes')), 'the value is not logged')
  t.equal(app.kafkaConsumer?.counters.retries, 0, 'not treated as a table outage')
  t.ok(await waitUntil(async () => await committedTotal(topic, group) === 3, 20_000), 'the batch\'s offsets are committed')
  t.same(await consumeAll(dlqTopic, 1, 2000), [], 'nothing reached the DLQ')
})

t.test('a step that throws while a message is handled (here the model) dead-letters that message; the rest are stored', { skip: noBroker }, async t => {
  const topic = unique('pc')
  const dlqTopic = unique('dlq')
  const app = await build(t, {
    env: { KAFKA_BROKERS: brokers!, KAFKA_TOPICS: topic, KAFKA_GROUP_ID: unique('group'), KAFKA_DLQ_TOPIC: dlqTopic, COLLECTOR: 'off' },
    predictor: {
      predict: (_kind: string, reading: Record<string, unknown>) => {
        if (reading.device === 'kt-boom') throw new RangeError('the model exploded')
        return { probability: 0.25, prediction: 0 }
      }
    }
  })
  const p = await producer(t)
  await produce(p, topic, pcReading({ device: 'kt-boom' }), 'boom')
  const good = pcReading({ device: 'kt-fine' })
  await produce(p, topic, good, 'good')
  const [letter] = await consumeAll(dlqTopic, 1, 30_000)
  t.equal(header(letter, 'dlq.reason'), 'could not be processed: RangeError: the model exploded')
  t.ok(await waitUntil(async () => (await app.inject('/devices/kt-fine/status')).statusCode === 200, 20_000), 'the next reading is stored')
  const result = await app.ingest.ingest([pcReading({ device: 'kt-boom' }), pcReading({ device: 'kt-fine' })])
  t.same(result, { stored: 1, duplicates: 0, rejected: [{ index: 0, reasons: ['could not be processed: RangeError: the model exploded'] }] }, 'IngestService.ingest too')
})

t.test('a reading the table refuses (not an outage) is dead-lettered alone; the rest of its batch is stored, without a retry', { skip: noBroker }, async t => {
  const topic = unique('pc')
  const dlqTopic = unique('dlq')
  const db = await dynalite(t)
  const proxy = await dynamoProxy(t, db.endpoint)
  proxy.failWhen = (operation, request) => operation === 'BatchWriteItem' && request.includes('kt-refuse')
    ? { status: 400, type: 'ValidationException' }
    : undefined
  const app = await build(t, {
    env: { KAFKA_BROKERS: brokers!, KAFKA_TOPICS: topic, KAFKA_GROUP_ID: unique('group'), KAFKA_DLQ_TOPIC: dlqTopic, COLLECTOR: 'off', DYNAMODB_ENDPOINT: proxy.endpoint }
  })
  const p = await producer(t)
  const goods = [pcReading({ device: 'kt-table' }), pcReading({ device: 'kt-table' }, 1)]
  await Promise.all([produce(p, topic, goods[0]!, 'good'), produce(p, topic, pcReading({ device: 'kt-refuse' }), 'refused'), produce(p, topic, goods[1]!, 'good')])
  const [letter] = await consumeAll(dlqTopic, 1, 30_000)
  t.equal(String(letter?.key), 'refused')
  t.match(header(letter, 'dlq.reason'), /^could not be stored: ValidationException: injected by the test$/)
  t.ok(await waitUntil(async () => (await app.inject('/devices/kt-table')).json().length === 2, 20_000), 'the other readings are stored')
  t.equal(app.kafkaConsumer?.counters.retries, 0, 'not retried as an outage')
})

import { randomUUID } from 'node:crypto'
import t from 'tap'
import { runCli } from '../collector-helper.js'
import { freePort } from '../kafka-helper.js'
import Kafka from 'node-rdkafka'
import type { Message } from 'node-rdkafka'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { loadConfig } from '../../config.js'
import { rdkafkaCommon } from '../../kafka/config.js'
import { ReadingSchemaByKind, type DeviceKind } from '../../schemas/devices.js'
import { createPublisher } from '../../collector/publisher.js'

const brokers = process.env.KAFKA_BROKERS
const noBroker = brokers === undefined || brokers === '' ? 'KAFKA_BROKERS is not set: run through `npm test`, which starts a broker' : false

/** Reads a topic from the beginning until `count` messages came or `timeoutMs` passed. */
async function consume (topic: string, count: number, timeoutMs = 30_000): Promise<Message[]> {
  const settings = loadConfig({ ...process.env })
  const consumer = new Kafka.KafkaConsumer({
    ...rdkafkaCommon(settings, 'collector-test'),
    'group.id': `collector-test-${randomUUID()}`,
    'enable.auto.commit': false
  }, { 'auto.offset.reset': 'earliest' })
  await new Promise<void>((resolve, reject) => {
    consumer.connect({ timeout: 15_000 }, err => { if (err) reject(err); else resolve() })
  })
  consumer.subscribe([topic])
  const messages: Message[] = []
  const until = Date.now() + timeoutMs
  try {
    while (messages.length < count && Date.now() < until) {
      messages.push(...await new Promise<Message[]>(resolve => {
        consumer.consume(100, (err, batch) => { resolve(err ? [] : batch) })
      }))
    }
  } finally {
    await new Promise<void>(resolve => { consumer.disconnect(() => { resolve() }) })
  }
  return messages
}

t.test('the CLI publishes one reading keyed by the device id', { skip: noBroker }, async t => {
  const topic = `collector-test-${randomUUID()}`
  const run = await runCli(['--once', '--stdout', '--device', 'kafka-host', '--topic', topic], { KAFKA_BROKERS: brokers ?? '' })
  t.equal(run.code, 0, run.stderr)
  t.equal(run.stderr, '')
  const printed = JSON.parse(run.stdout) as Record<string, unknown>

  const [message, ...more] = await consume(topic, 1)
  t.ok(message, 'the reading is on the topic')
  t.equal(more.length, 0, 'once')
  if (message === undefined) return
  t.equal(message.key?.toString(), 'kafka-host', 'key = device id')
  const value = JSON.parse(message.value?.toString() ?? 'null') as Record<string, unknown>
  const check = TypeCompiler.Compile(ReadingSchemaByKind[value.kind as DeviceKind])
  t.ok(check.Check(value), JSON.stringify([...check.Errors(value)].map(e => `${e.path} ${e.message}`)))
  t.same(value, printed, 'the published reading is the printed one')
  t.equal(value.device, 'kafka-host')
})

t.test('the topic defaults to the device id', { skip: noBroker }, async t => {
  const device = `collector-dev-${randomUUID().slice(0, 8)}`
  const run = await runCli(['--once', '--device', device], { KAFKA_BROKERS: brokers ?? '' })
  t.equal(run.code, 0, run.stderr)
  t.equal(run.stdout, '', 'publishing without --stdout prints nothing')
  const messages = await consume(device, 1)
  t.equal(messages.length, 1)
  t.equal(messages[0]?.key?.toString(), device)
})

t.test('publish() resolves on delivery, one promise per message', { skip: noBroker }, async t => {
  const publisher = createPublisher(loadConfig({ ...process.env }), { clientId: 'collector-test' })
  t.teardown(() => publisher.close())
  const topic = `collector-test-${randomUUID()}`
  await Promise.all([1, 2, 3].map(n => publisher.publish(topic, `k${n}`, { n })))
  const messages = await consume(topic, 3)
  t.same(messages.map(m => JSON.parse(m.value?.toString() ?? '') as { n: number }).map(v => v.n).sort(), [1, 2, 3])
  await publisher.close()
  await t.rejects(publisher.publish(topic, 'k', {}), /not delivered to Kafka topic .*closed/, 'a closed publisher refuses')
})

t.test('a delivery the broker refuses rejects with the topic named', { skip: noBroker }, async t => {
  const publisher = createPublisher(loadConfig({ ...process.env }), { clientId: 'collector-test', deliveryTimeoutMs: 5000 })
  t.teardown(() => publisher.close())
  await t.rejects(publisher.publish('not a valid topic!', 'k', {}), /not delivered to Kafka topic "not a valid topic!"/)
})

t.test('with no broker listening --once fails within seconds and says the reading was not delivered', async t => {
  const port = await freePort()
  const run = await runCli(['--once', '--device', 'lonely-host'], { KAFKA_BROKERS: `127.0.0.1:${port}` })
  t.not(run.code, 0)
  t.ok(run.ms < 20_000, `gave up after ${run.ms} ms`)
  t.match(run.stderr, new RegExp(`not delivered to Kafka topic "lonely-host": Kafka brokers 127\\.0\\.0\\.1:${port} not reachable`))
  t.notMatch(run.stderr, /\n\s+at /, 'no stack trace')
})

// The broker started by tools/run-tests.mjs (KAFKA_BROKERS) is a real Kafka:
// a message produced with node-rdkafka to a fresh topic is consumed back through a consumer group.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import Kafka from 'node-rdkafka'

const brokers = process.env.KAFKA_BROKERS

type Client = InstanceType<typeof Kafka.Producer> | InstanceType<typeof Kafka.KafkaConsumer>

function connect (client: Client, timeoutMs = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    client.connect({ timeout: timeoutMs }, (err) => (err ? reject(err) : resolve()))
  })
}

function disconnect (client: Client): Promise<void> {
  return new Promise((resolve) => {
    if (!client.isConnected()) return resolve()
    const timer = setTimeout(resolve, 5000)
    client.disconnect(() => { clearTimeout(timer); resolve() })
  })
}

t.test('KAFKA_BROKERS is set by the test runner', async (t) => {
  t.ok(brokers, 'run the tests with `npm test` (or set KAFKA_BROKERS)')
})

t.test('produce to a fresh topic and consume the message back', { skip: !brokers, timeout: 45_000 }, async (t) => {
  const id = randomUUID()
  const topic = `kafka-broker-test-${id}`
  const key = `machine-${id.slice(0, 8)}`
  const value = JSON.stringify({ machineId: key, cpuTemp: 71.5, at: new Date().toISOString() })

  const producer = new Kafka.Producer({
    'metadata.broker.list': brokers!,
    'client.id': 'kafka-broker-test-producer',
    dr_cb: true
  }, { 'message.timeout.ms': 20_000 })
  t.teardown(() => disconnect(producer))
  await connect(producer)
  producer.setPollInterval(50)

  const report = await new Promise<Kafka.DeliveryReport>((resolve, reject) => {
    producer.once('delivery-report', (err, r) => (err ? reject(err) : resolve(r)))
    producer.produce(topic, null, Buffer.from(value), key, Date.now())
  })
  t.equal(report.topic, topic, 'delivered to the fresh topic (auto-created)')
  t.ok(report.offset >= 0, 'broker assigned an offset')

  const consumer = new Kafka.KafkaConsumer({
    'metadata.broker.list': brokers!,
    'group.id': `kafka-broker-test-${id}`,
    'client.id': 'kafka-broker-test-consumer',
    'enable.auto.commit': false
  }, { 'auto.offset.reset': 'earliest' })
  t.teardown(() => disconnect(consumer))
  await connect(consumer)
  consumer.setDefaultConsumeTimeout(500)
  consumer.subscribe([topic])

  const deadline = Date.now() + 25_000
  let message: Kafka.Message | undefined
  while (!message && Date.now() < deadline) {
    const batch = await new Promise<Kafka.Message[]>((resolve, reject) => {
      consumer.consume(10, (err, messages) => (err ? reject(err) : resolve(messages)))
    })
    message = batch.find((m) => m.topic === topic)
  }
  if (!message) {
    t.fail('no message consumed within 25 s')
    return
  }
  t.equal(message.key?.toString(), key, 'key round-trips')
  t.equal(message.value?.toString(), value, 'value round-trips')
  t.equal(message.partition, report.partition, 'same partition as delivered')
  t.equal(message.offset, report.offset, 'same offset as delivered')
})

t.test('cluster ids are Kafka Uuids the storage tool takes: 22 base64url characters, never a leading "-"', async (t) => {
  const { newClusterId } = await import(new URL('../../../tools/kafka-broker.mjs', import.meta.url).href) as { newClusterId: () => string }
  const ids = Array.from({ length: 5000 }, () => newClusterId())
  t.ok(ids.every(id => /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/.test(id)), '5,000 ids (one in 64 random ones would start with "-")')
  t.equal(new Set(ids).size, ids.length, 'all different')
})

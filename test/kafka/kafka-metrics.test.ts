import t from 'tap'
import { build, pcReading } from '../helper.js'
import { brokers, committedTotal, noBroker, produce, producer, unique, waitUntil } from '../kafka-helper.js'

// Issue 19: /metrics counts what the Kafka consumer does (stored, duplicate, rejected and
// dead-lettered messages) and shows its lag per topic and partition.

t.test('/metrics: readings through Kafka counted by result, and the consumer lag per partition', { skip: noBroker, timeout: 120_000 }, async t => {
  const topic = unique('metrics')
  const group = unique('group')
  const app = await build(t, {
    env: { KAFKA_BROKERS: brokers!, KAFKA_TOPICS: topic, KAFKA_GROUP_ID: group, KAFKA_DLQ_TOPIC: unique('dlq'), KAFKA_STALL_SECONDS: '4' }
  })
  const device = unique('pc')
  const good = [pcReading({ device }, 1), pcReading({ device }, 2)]
  const p = await producer(t)
  for (const r of good) await produce(p, topic, r, device)
  await produce(p, topic, good[0]!, device) // a redelivery
  await produce(p, topic, 'not json at all', device)
  await produce(p, topic, { device, uuid: 'x' }, device) // invalid
  t.ok(await waitUntil(async () => await committedTotal(topic, group) === 5, 60_000), 'all 5 messages committed')
  const value = (body: string, series: string): number => {
    const line = body.split('\n').find(l => l.startsWith(series + ' '))
    return line === undefined ? NaN : Number(line.slice(series.length + 1))
  }
  let body = ''
  t.ok(await waitUntil(async () => {
    body = (await app.inject('/metrics')).body
    return /sensors_kafka_consumer_lag\{topic="[^"]+",partition="\d+"\} 0/.test(body)
  }, 30_000), 'the lag per partition, from librdkafka\'s statistics')
  t.equal(value(body, 'sensors_ingest_messages_total{result="stored"}'), 2)
  t.equal(value(body, 'sensors_ingest_messages_total{result="duplicate"}'), 1)
  t.equal(value(body, 'sensors_ingest_messages_total{result="rejected"}'), 2)
  t.equal(value(body, 'sensors_ingest_messages_total{result="dead_lettered"}'), 2)
  t.match(body, new RegExp(`sensors_kafka_consumer_lag\\{topic="${topic}",partition="0"\\}`), 'the topic and partition labelled')
})

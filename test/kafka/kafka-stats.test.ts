import t from 'tap'
import { build } from '../helper.js'
import { brokers, committedTotal, noBroker, produceMany, producer, readings, unique, waitUntil } from '../kafka-helper.js'

// Issue 16 end to end: readings through Kafka into the rollups; a message delivered twice counted
// once; once the consumer has committed a batch's offsets its readings are in the stats.

t.test('readings from Kafka, some sent twice, are in /stats once each by the time their offsets are committed', { skip: noBroker }, async t => {
  const topic = unique('stats')
  const group = unique('group')
  const app = await build(t, {
    env: { KAFKA_BROKERS: brokers!, KAFKA_TOPICS: topic, KAFKA_GROUP_ID: group, KAFKA_DLQ_TOPIC: unique('dlq'), COLLECTOR: 'off' }
  })
  const device = unique('host')
  // 300 readings a second apart from 10:00:00: five whole minutes
  const sent = readings(device, 300, Date.parse('2024-05-02T10:00:00Z'))
  const p = await producer(t)
  await produceMany(p, topic, [...sent, ...sent.slice(0, 50)], v => (v as { device: string }).device)

  t.ok(await waitUntil(async () => await committedTotal(topic, group) === 350, 60_000), 'all 350 messages committed')
  // committed means stored and rolled up: no waiting past the commit
  const stats = (await app.inject(`/devices/${device}/stats?from=2024-05-02T10:00:00Z&to=2024-05-02T10:59:59Z&interval=1m`)).json()
  t.same(stats.buckets.map((b: { start: string, count: number }) => [b.start, b.count]), [
    ['2024-05-02T10:00:00.000Z', 60], ['2024-05-02T10:01:00.000Z', 60], ['2024-05-02T10:02:00.000Z', 60],
    ['2024-05-02T10:03:00.000Z', 60], ['2024-05-02T10:04:00.000Z', 60]
  ], 'each reading once, redelivered or not')
  const hour = (await app.inject(`/devices/${device}/stats?from=2024-05-02T10:00:00Z&to=2024-05-02T10:59:59Z&interval=1h`)).json()
  t.match(hour.buckets, [{ start: '2024-05-02T10:00:00.000Z', count: 300, fields: { TemperatureCPUPackage: { min: 40, max: 89 }, LoadCPUTotal: { min: 0, max: 99 } } }])
  t.equal(hour.buckets[0].fields.LoadCPUTotal.avg, 49.5, 'the mean of 0..99, three times')
})

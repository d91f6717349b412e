import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { IngestConsumer } from '../../kafka/consumer.js'

declare module 'fastify' {
  interface FastifyInstance {
    kafkaConsumer: IngestConsumer | null
  }
}

// The Kafka ingest: on when KAFKA_BROKERS is set (and the role is not "api").
export default fp(async function kafkaConsumer (fastify: FastifyInstance) {
  const { config } = fastify
  if (!config.kafkaEnabled) {
    fastify.decorate('kafkaConsumer', null)
    fastify.health.register('kafka', () => ({ status: 'disabled' }), { critical: false })
    return
  }
  // Loaded only here: node-rdkafka (a native addon) costs start-up time where Kafka is off.
  const { IngestConsumer } = await import('../../kafka/consumer.js').catch((err: unknown) => {
    // The log's err.message carries the cause's message after this one.
    throw new Error('KAFKA_BROKERS is set but the Kafka client (node-rdkafka) cannot be loaded', { cause: err })
  })
  const consumer = new IngestConsumer({
    settings: config,
    topics: config.topics,
    groupId: config.KAFKA_GROUP_ID,
    dlqTopic: config.KAFKA_DLQ_TOPIC,
    batchSize: config.KAFKA_BATCH_SIZE,
    maxReadingBytes: config.MAX_READING_BYTES,
    sessionTimeoutMs: config.KAFKA_SESSION_TIMEOUT_MS,
    stallMs: config.KAFKA_STALL_SECONDS * 1000,
    ingest: fastify.ingest,
    log: fastify.log.child({ component: 'kafka' }),
    drainTimeoutMs: Math.max(1000, config.SHUTDOWN_TIMEOUT_MS - 2000)
  })
  fastify.decorate('kafkaConsumer', consumer)
  // Fixed reasons only: the broker's address and librdkafka's messages are in the log.
  fastify.health.register('kafka', async () => {
    if (consumer.state !== 'connected') return { status: 'down', reason: consumer.state }
    const probe = await consumer.probe()
    if (probe !== 'ok') return { status: 'down', reason: probe }
    if (consumer.stalled()) return { status: 'down', reason: 'stalled' }
    return { status: 'up', reason: 'consuming' }
  })
  fastify.addHook('onReady', async () => { consumer.start() })
  // preClose runs before the HTTP server and DynamoDB close: the batch in hand is stored and committed first.
  fastify.addHook('preClose', async () => { await consumer.stop() })
}, { name: 'kafka-consumer', dependencies: ['ingest', 'health'] })

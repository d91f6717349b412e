import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { IngestResult } from '../../ingest/service.js'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Registry
  }
}

const THROTTLES = new Set(['ProvisionedThroughputExceededException', 'ThrottlingException', 'RequestLimitExceeded', 'ThrottledException'])

function isThrottle (err: unknown): boolean {
  return THROTTLES.has((err as { name?: string } | null)?.name ?? '')
}

/** `QueryCommand` → `Query` */
function operationOf (command: unknown): string {
  return typeof command === 'string' ? command.replace(/Command$/, '') : 'unknown'
}

/** Seconds: from a cached answer (well under a millisecond) to a slow export. */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

// GET /metrics (issue 19): Prometheus text. One registry per instance (tests build many apps in a
// process). The request histogram comes from a root-level onResponse hook: every answer, cached ones
// and 304s included, adds one. The other figures are read at scrape time from the services'
// own counters (collect), so nothing runs per reading or per request for them.
export default fp(async function metrics (fastify: FastifyInstance) {
  const registry = new Registry()
  fastify.decorate('metrics', registry)
  collectDefaultMetrics({ register: registry })

  const requests = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP requests: duration until the answer was sent, by method, route pattern and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: BUCKETS,
    registers: [registry]
  })
  fastify.addHook('onResponse', function countRequest (request, reply, done) {
    // Requests no route matched share one label: a scanner's paths must not grow the series.
    const route = request.routeOptions.url ?? 'unmatched'
    requests.observe({ method: request.method, route, status_code: reply.statusCode }, reply.elapsedTime / 1000)
    done()
  })

  // Readings through the in-process ingest (the collector) and through the Kafka consumer.
  const direct = { stored: 0, duplicate: 0, rejected: 0 }
  fastify.addHook('onReady', async function wrapIngest () {
    if (!fastify.hasDecorator('ingest')) return
    const service = fastify.ingest
    const ingest = service.ingest.bind(service)
    service.ingest = async function countedIngest (...args: Parameters<typeof ingest>): Promise<IngestResult> {
      const result = await ingest(...args)
      direct.stored += result.stored
      direct.duplicate += result.duplicates
      direct.rejected += result.rejected.length
      return result
    }
  })
  const consumer = () => fastify.hasDecorator('kafkaConsumer') ? fastify.kafkaConsumer : null
  new Counter({ // eslint-disable-line no-new
    name: 'sensors_ingest_messages_total',
    help: 'Readings ingested, by result: stored, duplicate (a redelivery, ignored), rejected (invalid or conflicting), dead_lettered (sent to KAFKA_DLQ_TOPIC)',
    labelNames: ['result'] as const,
    registers: [registry],
    collect () {
      const c = consumer()?.counters
      this.reset()
      this.inc({ result: 'stored' }, direct.stored + (c?.stored ?? 0))
      this.inc({ result: 'duplicate' }, direct.duplicate + (c?.duplicates ?? 0))
      // the consumer dead-letters what it rejects (dlqFailed: the DLQ refused them too)
      this.inc({ result: 'rejected' }, direct.rejected + (c === undefined ? 0 : c.deadLettered + c.dlqFailed))
      this.inc({ result: 'dead_lettered' }, c?.deadLettered ?? 0)
    }
  })
  new Gauge({ // eslint-disable-line no-new
    name: 'sensors_kafka_consumer_lag',
    help: 'Messages waiting for this consumer, per assigned topic and partition (librdkafka statistics)',
    labelNames: ['topic', 'partition'] as const,
    registers: [registry],
    collect () {
      this.reset()
      for (const p of consumer()?.partitionLag.values() ?? []) this.set({ topic: p.topic, partition: String(p.partition) }, p.lag)
    }
  })
  new Counter({ // eslint-disable-line no-new
    name: 'sensors_cache_requests_total',
    help: 'Lookups of the read-model caches, by cache (status, history) and result (hit: answered from memory, miss)',
    labelNames: ['cache', 'result'] as const,
    registers: [registry],
    collect () {
      this.reset()
      for (const [cache, decorator] of [['status', 'statusCache'], ['history', 'historyCache']] as const) {
        if (!fastify.hasDecorator(decorator)) continue
        const { counts } = fastify[decorator]
        this.inc({ cache, result: 'hit' }, counts.hits)
        this.inc({ cache, result: 'miss' }, counts.misses)
      }
    }
  })
  new Counter({ // eslint-disable-line no-new
    name: 'sensors_alert_notifications_total',
    help: 'Alert notifications, by channel and result: sent (the receiver took it), failed (given up after the retry window), retried (attempts that failed and were tried again)',
    labelNames: ['channel', 'result'] as const,
    registers: [registry],
    collect () {
      this.reset()
      const alerting = fastify.hasDecorator('alerting') ? fastify.alerting : null
      for (const [channel, c] of Object.entries(alerting?.metrics ?? {})) {
        this.inc({ channel, result: 'sent' }, c.sent)
        this.inc({ channel, result: 'failed' }, c.failed)
        this.inc({ channel, result: 'retried' }, c.retried)
      }
    }
  })
  new Gauge({ // eslint-disable-line no-new
    name: 'sensors_sse_clients',
    help: 'Open server-sent event streams',
    registers: [registry],
    collect () {
      this.set(fastify.hasDecorator('eventStreams') ? fastify.eventStreams.size : 0)
    }
  })

  // DynamoDB: each command's duration (retries included) and its outcome, from a middleware on the
  // client (the document client shares its stack). Throttles: the table refused for capacity.
  const dynamoRequests = new Histogram({
    name: 'sensors_dynamodb_request_duration_seconds',
    help: 'DynamoDB commands: duration including the SDK\'s retries, by operation and result (ok, error, throttled)',
    labelNames: ['operation', 'result'] as const,
    buckets: BUCKETS,
    registers: [registry]
  })
  const throttles = new Counter({
    name: 'sensors_dynamodb_throttles_total',
    help: 'DynamoDB attempts refused for capacity (throttling), retried ones included, by operation',
    labelNames: ['operation'] as const,
    registers: [registry]
  })
  fastify.addHook('onReady', async function measureDynamo () {
    if (!fastify.hasDecorator('dynamo')) return
    const stack = fastify.dynamo.client.middlewareStack
    stack.add((next, context) => async (args) => {
      const started = process.hrtime.bigint()
      let result = 'ok'
      try {
        return await next(args)
      } catch (err) {
        result = isThrottle(err) ? 'throttled' : 'error'
        throw err
      } finally {
        dynamoRequests.observe({ operation: operationOf(context.commandName), result }, Number(process.hrtime.bigint() - started) / 1e9)
      }
    }, { step: 'initialize', name: 'sensorsMetricsDuration' })
    // per attempt: after the retry middleware (finalizeRequest), before each response is read
    stack.add((next, context) => async (args) => {
      try {
        return await next(args)
      } catch (err) {
        if (isThrottle(err)) throttles.inc({ operation: operationOf(context.commandName) })
        throw err
      }
    }, { step: 'deserialize', name: 'sensorsMetricsThrottles' })
  })

  fastify.get('/metrics', {
    // Not in the OpenAPI document: for Prometheus, not for API clients (README, deploy/README.md).
    schema: { hide: true }
  }, async function scrape (_request, reply) {
    const text = await registry.metrics()
    return await reply.type(registry.contentType).header('cache-control', 'no-store').send(text)
  })
}, { name: 'metrics', dependencies: ['env'] })

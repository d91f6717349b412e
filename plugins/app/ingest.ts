import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { IngestService } from '../../ingest/service.js'

declare module 'fastify' {
  interface FastifyInstance {
    ingest: IngestService
  }
}

// validate -> predict -> write: the collector feeds it in-process, the Kafka consumer from topics.
export default fp(async function ingest (fastify: FastifyInstance) {
  fastify.decorate('ingest', new IngestService({
    repository: fastify.readings,
    predictor: fastify.predictor,
    legacyTimeZone: fastify.config.LEGACY_TIMEZONE,
    maxClockSkewMs: fastify.config.MAX_CLOCK_SKEW_SECONDS * 1000
  }))
}, { name: 'ingest', dependencies: ['readings', 'predictor'] })

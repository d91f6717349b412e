import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { StatusService } from '../../lib/status-service.js'

declare module 'fastify' {
  interface FastifyInstance {
    statuses: StatusService
  }
}

export default fp(async function status (fastify: FastifyInstance) {
  fastify.decorate('statuses', new StatusService({
    repository: fastify.readings,
    staleAfterSeconds: fastify.config.staleAfterSeconds,
    ttlMs: fastify.config.STATUS_CACHE_TTL_MS,
    // Requests keep answering from memory for up to two TTLs, then show the failure themselves.
    onRefreshError: err => { fastify.log.warn({ err }, 'refreshing cached statuses failed') }
  }))
}, { name: 'status', dependencies: ['readings'] })

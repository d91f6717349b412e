import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { StatusCache } from '../../read-model/status-cache.js'
import { StorageUnavailableError } from '../../storage/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    statusCache: StatusCache
  }
}

export default fp(async function status (fastify: FastifyInstance) {
  fastify.decorate('statusCache', new StatusCache({
    repository: fastify.readings,
    staleAfterSeconds: fastify.config.staleAfterSeconds,
    ttlMs: fastify.config.STATUS_CACHE_TTL_MS,
    // Requests keep answering from memory for up to two TTLs, then show the failure themselves.
    // An outage is logged once where the table client sees it (storage/outage.ts).
    onRefreshError: err => {
      if (err instanceof StorageUnavailableError) fastify.log.debug({ err }, 'refreshing cached statuses failed')
      else fastify.log.warn({ err }, 'refreshing cached statuses failed')
    }
  }))
}, { name: 'status-cache', dependencies: ['readings'] })

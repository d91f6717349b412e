import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { PageCache } from '../../lib/page-cache.js'

declare module 'fastify' {
  interface FastifyInstance {
    historyCache: PageCache
  }
}

export default fp(async function historyCache (fastify: FastifyInstance) {
  fastify.decorate('historyCache', new PageCache(fastify.config.HISTORY_CACHE_TTL_MS))
}, { name: 'history-cache', dependencies: ['env'] })

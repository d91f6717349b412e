import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { PageCache } from '../../lib/page-cache.js'

/** A first page as the route sends it: serialised once per read, not once per request. */
export interface CachedPage {
  body: Buffer
  etag: string
  link?: string
}

declare module 'fastify' {
  interface FastifyInstance {
    historyCache: PageCache<CachedPage>
  }
}

export default fp(async function historyCache (fastify: FastifyInstance) {
  fastify.decorate('historyCache', new PageCache<CachedPage>({
    ttlMs: fastify.config.HISTORY_CACHE_TTL_MS,
    revisions: fastify.statuses,
    maxBytes: fastify.config.HISTORY_CACHE_MB * 1024 * 1024,
    sizeOf: page => page.body.length + 200
  }))
}, { name: 'history-cache', dependencies: ['env', 'status'] })

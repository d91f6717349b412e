import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { HistoryCache } from '../../read-model/history-cache.js'
import type { Prepared } from '../../http/prepared.js'

/** A first page's answers as the route sends them: made (serialised, gzip-coded) once per read, not once per request. */
export interface CachedPage {
  etag: string
  identity: Prepared
  /** the body gzip-coded, for clients that accept it (small pages are not) */
  gzip: Prepared | undefined
  /** the 304 for clients that send `etag` in If-None-Match */
  notModified: Prepared
}

declare module 'fastify' {
  interface FastifyInstance {
    historyCache: HistoryCache<CachedPage>
  }
}

export default fp(async function historyCache (fastify: FastifyInstance) {
  fastify.decorate('historyCache', new HistoryCache<CachedPage>({
    ttlMs: fastify.config.HISTORY_CACHE_TTL_MS,
    revisions: fastify.statusCache,
    maxBytes: fastify.config.HISTORY_CACHE_MB * 1024 * 1024,
    sizeOf: page => (page.identity.body?.length ?? 0) + (page.gzip?.body?.length ?? 0) + 600
  }))
}, { name: 'history-cache', dependencies: ['env', 'status-cache'] })

import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { PageCache } from '../../lib/page-cache.js'

/** A first page as the route sends it: serialised (and gzip-coded) once per read, not once per request. */
export interface CachedPage {
  body: Buffer
  /** `body` gzip-coded, for clients that accept it (small pages are not) */
  gzip: Buffer | undefined
  etag: string
  link: string | undefined
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
    sizeOf: page => page.body.length + (page.gzip?.length ?? 0) + 200
  }))
}, { name: 'history-cache', dependencies: ['env', 'status'] })

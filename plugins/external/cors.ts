import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import cors from '@fastify/cors'

// CORS_ORIGINS (issue 19; default none: no CORS headers at all). Preflights are answered in
// @fastify/cors's onRequest hook, before the api-keys hook (a preflight never carries a key).
export default fp(async function corsOrigins (fastify: FastifyInstance) {
  const origins = fastify.config.corsOrigins
  if (origins.length === 0) return
  const allowed = new Set(origins)
  await fastify.register(cors, {
    // A function, not the list: for another origin it answers false, and @fastify/cors then adds
    // no CORS header at all (with a list it would still add the preflight's Allow-* headers).
    origin: (origin, cb) => { cb(null, origin !== undefined && allowed.has(origin)) },
    methods: ['GET', 'HEAD', 'POST', 'DELETE'],
    allowedHeaders: ['Authorization', 'X-API-Key', 'Content-Type', 'If-None-Match', 'X-Request-Id'],
    exposedHeaders: ['ETag', 'Link', 'Retry-After', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset', 'X-Request-Id'],
    maxAge: 600,
    hideOptionsRoute: true
  })
}, { name: 'cors', dependencies: ['env'] })

import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import rateLimit from '@fastify/rate-limit'

// RATE_LIMIT_PER_MINUTE (issue 19; 0: off): per API key name, or per client address without keys
// (request.ip: X-Forwarded-For as written by the ALB, server-options.ts trustProxy). Every route
// but /health, each request counted, answers from the caches included: its hook is added to each
// route registered after this plugin, and runs after the root-level api-keys hook that names the key.
export default fp(async function rateLimits (fastify: FastifyInstance) {
  const max = fastify.config.RATE_LIMIT_PER_MINUTE
  if (max === 0) return
  await fastify.register(rateLimit, {
    global: true,
    max,
    timeWindow: 60_000,
    keyGenerator: (request: FastifyRequest) => request.apiKeyName !== undefined ? `key:${request.apiKeyName}` : `ip:${request.ip}`,
    allowList: (request: FastifyRequest) => request.routeOptions.url === '/health',
    // RateLimit-Limit, -Remaining, -Reset (IETF draft 7) and Retry-After on a 429
    enableDraftSpec: true,
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
    addHeaders: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false, 'retry-after': true }
  })
}, { name: 'rate-limit', dependencies: ['env', 'api-keys'] })

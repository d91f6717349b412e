import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import helmet from '@fastify/helmet'

/**
 * The dashboard's policy: its own scripts and styles only (module scripts, no inline script),
 * style attributes allowed for uPlot's charts, data: images (uPlot's and Swagger UI's icons).
 * No upgrade-insecure-requests: a plain-HTTP test stack would break; behind the ALB HSTS does it.
 */
export const CSP_DIRECTIVES = {
  'default-src': ["'self'"],
  'base-uri': ["'self'"],
  'connect-src': ["'self'"],
  'font-src': ["'self'", 'data:'],
  'form-action': ["'self'"],
  'frame-ancestors': ["'none'"],
  'img-src': ["'self'", 'data:'],
  'object-src': ["'none'"],
  'script-src': ["'self'"],
  'script-src-attr': ["'none'"],
  'style-src': ["'self'", "'unsafe-inline'"],
  'upgrade-insecure-requests': null
}

// Security headers on every answer (issue 19): @fastify/helmet's onRequest hook writes them on the
// raw response, so they are on cached answers and on hijacked event streams too. HSTS only when the
// request came over HTTPS (X-Forwarded-Proto from the ALB, server-options.ts trustProxy).
export default fp(async function securityHeaders (fastify: FastifyInstance) {
  await fastify.register(helmet, {
    global: true,
    contentSecurityPolicy: { useDefaults: false, directives: CSP_DIRECTIVES },
    referrerPolicy: { policy: 'no-referrer' },
    crossOriginEmbedderPolicy: false,
    hsts: false
  })
  fastify.addHook('onRequest', function hsts (request, reply, done) {
    if (request.protocol === 'https') reply.header('strict-transport-security', 'max-age=31536000; includeSubDomains')
    done()
  })
}, { name: 'helmet', dependencies: ['env'] })

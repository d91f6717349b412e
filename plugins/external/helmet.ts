import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { IncomingMessage, ServerResponse } from 'node:http'
import helmet, { type HelmetOptions } from 'helmet'

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

const OPTIONS: Readonly<HelmetOptions> = {
  contentSecurityPolicy: { useDefaults: false, directives: CSP_DIRECTIVES },
  referrerPolicy: { policy: 'no-referrer' },
  crossOriginEmbedderPolicy: false,
  strictTransportSecurity: false
}

/**
 * The headers helmet sets with these options, asked of helmet once: they are constants (no nonce,
 * no directive computed per request), so there is no need to build its middleware per request,
 * which @fastify/helmet did (helmet(options) in every request's hook: the whole option parsing and
 * CSP serialisation, with two async hooks besides: the largest per-request cost of the access work).
 */
export function securityHeaders (): ReadonlyArray<readonly [string, string]> {
  const headers: Array<[string, string]> = []
  const res = {
    setHeader (name: string, value: string | number | readonly string[]) { headers.push([name.toLowerCase(), String(value)]) },
    removeHeader () {}
  }
  helmet(OPTIONS)({} as IncomingMessage, res as unknown as ServerResponse, () => {})
  return headers
}

// Security headers on every answer (issue 19), from a root-level onRequest hook that writes them
// on the raw response: on cached answers, 304s, errors and hijacked event streams too. HSTS only when
// the request came over HTTPS (X-Forwarded-Proto from the ALB, server-options.ts trustProxy).
export default fp(async function helmetHeaders (fastify: FastifyInstance) {
  const headers = securityHeaders()
  fastify.addHook('onRequest', function securityHeadersHook (request, reply, done) {
    const raw = reply.raw
    for (const [name, value] of headers) raw.setHeader(name, value)
    if (request.protocol === 'https') raw.setHeader('strict-transport-security', 'max-age=31536000; includeSubDomains')
    done()
  })
}, { name: 'helmet', dependencies: ['env'] })

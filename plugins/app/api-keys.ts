import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ApiKeys, presentedKey, sessionCookie } from '../../http/api-keys.js'

declare module 'fastify' {
  interface FastifyInstance {
    apiKeys: ApiKeys
  }
  interface FastifyRequest {
    /** the name of the API key the request presented (undefined when the service is open) */
    apiKeyName?: string
  }
}

/**
 * Open with keys on: /health (the ALB's check), the dashboard's pages and assets (so a browser
 * can load the page that asks for a key) and Swagger UI with its OpenAPI document (so its
 * Authorize button can be used). They hold no device data.
 */
export function isPublicRoute (url: string | undefined): boolean {
  if (url === undefined) return false
  return url === '/health' || url === '/' || url === '/docs' || url.startsWith('/docs/') || url.startsWith('/ui/')
}

/**
 * Where a browser cannot send a header: the event streams (EventSource) and the dashboard's CSV
 * download link. The session cookie is taken there, and only there.
 */
function takesSessionCookie (url: string | undefined): boolean {
  return url === '/fleet/events' || url === '/devices/:device/events' || url === '/devices/:device/export'
}

// API_KEYS (issue 19): a root-level onRequest hook, so every request passes it, answers from the
// caches and 304s included (ADR 0004). Registered before rate-limit, which keys on the name.
export default fp(async function apiKeys (fastify: FastifyInstance) {
  const keys = new ApiKeys(fastify.config.apiKeys)
  fastify.decorate('apiKeys', keys)
  fastify.decorateRequest('apiKeyName', undefined)
  if (!keys.enabled) {
    fastify.log.warn('API_KEYS is not set: the API is open to anyone who can reach it')
    return
  }
  fastify.log.info({ keys: fastify.config.apiKeys.map(k => k.name) }, 'API keys required (all routes but /health, the dashboard\'s pages and /docs)')

  fastify.addHook('onRequest', function checkApiKey (request: FastifyRequest, reply: FastifyReply, done: () => void) {
    const route = request.routeOptions.url
    if (isPublicRoute(route)) return done()
    const key = presentedKey(request.headers)
    let name = key === undefined ? undefined : keys.match(key)
    if (name === undefined && key === undefined && takesSessionCookie(route)) {
      const token = sessionCookie(request.headers.cookie)
      if (token !== undefined) name = keys.verify(token)
    }
    if (name === undefined) {
      reply.code(401).header('www-authenticate', 'Bearer realm="sensors-api"').send({
        statusCode: 401,
        error: 'Unauthorized',
        message: key === undefined ? 'An API key is required: Authorization: Bearer <key> or X-API-Key: <key>' : 'The API key is not valid'
      })
      return
    }
    request.apiKeyName = name
    // The key's name, never the key, on every later line of this request (Fastify's "request completed" included).
    request.log = request.log.child({ apiKey: name })
    reply.log = request.log
    done()
  })
}, { name: 'api-keys', dependencies: ['env'] })

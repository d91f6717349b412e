import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { FastAnswers } from '../lib/fast-answers.js'

declare module 'fastify' {
  interface FastifyInstance {
    fastAnswers: FastAnswers
  }
}

type Listener = (req: IncomingMessage, res: ServerResponse) => void

/**
 * Puts `FastAnswers` in front of Fastify's request handler. Off while requests are logged
 * (`LOG_REQUESTS` on and `LOG_LEVEL` info or below: Fastify writes two lines a request, which
 * answers from here would not), off from the start of shutdown, and off if the server is not the
 * plain one Fastify made (its one `request` listener being Fastify's handler).
 */
export default fp(async function fastAnswers (fastify: FastifyInstance) {
  const server = fastify.server
  const listeners = server.listeners('request') as Listener[]
  const routing = listeners.length === 1 ? listeners[0] : undefined
  const log = fastify.log as { isLevelEnabled?: (level: string) => boolean }
  const requestsLogged = fastify.config.logRequests && (log.isLevelEnabled?.('info') ?? true)
  const answers = new FastAnswers({ enabled: routing !== undefined && !requestsLogged })
  fastify.decorate('fastAnswers', answers)
  if (!answers.active || routing === undefined) return
  server.removeListener('request', routing)
  server.on('request', function front (req: IncomingMessage, res: ServerResponse) {
    if (!answers.answer(req, res)) routing.call(server, req, res)
  })
  // Fastify answers 503 (Connection: close) from the moment it starts closing: so must every request.
  fastify.addHook('preClose', async () => { answers.disable() })
}, { name: 'fast-answers', dependencies: ['env'] })

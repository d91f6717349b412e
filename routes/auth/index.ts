import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { ErrorSchema } from '../../schemas/common.js'
import { SESSION_COOKIE } from '../../http/api-keys.js'

// POST /auth/session (issue 19): the dashboard's event streams. An EventSource cannot send a
// header, so the dashboard trades its key (in the header, checked by the api-keys hook like any
// request) for a short-lived signed token in an HttpOnly, SameSite=Strict cookie (Secure over
// HTTPS), which the hook accepts on the event-stream routes only. DELETE ends it.

const error = (description: string) => Type.Ref(ErrorSchema, { description })
const SessionSchema = Type.Object({
  auth: Type.Union([Type.Literal('on'), Type.Literal('off')], { description: '`off`: the service has no API_KEYS, nothing to sign in to' }),
  name: Type.Optional(Type.String({ description: 'the API key\'s name' })),
  expires_in: Type.Optional(Type.Integer({ description: 'seconds the session is valid' }))
}, { examples: [{ auth: 'on', name: 'dashboard', expires_in: 3600 }] })

export default async function auth (fastify: FastifyInstance) {
  fastify.post('/session', {
    schema: {
      tags: ['operations'],
      summary: 'A session cookie for the event streams',
      description: 'Takes the API key in `Authorization: Bearer` or `X-API-Key` and sets an HttpOnly, SameSite=Strict cookie holding a signed token ' +
        'valid for an hour, accepted instead of the key on `/fleet/events` and `/devices/{device}/events` (an EventSource cannot send headers).',
      response: { 200: SessionSchema, 401: error('No valid API key') }
    }
  }, async function openSession (request, reply) {
    const keys = fastify.apiKeys
    if (!keys.enabled || request.apiKeyName === undefined) return { auth: 'off' as const }
    const secure = request.protocol === 'https' ? '; Secure' : ''
    reply.header('set-cookie', `${SESSION_COOKIE}=${keys.token(request.apiKeyName)}; Path=/; Max-Age=${keys.sessionSeconds}; HttpOnly; SameSite=Strict${secure}`)
    reply.header('cache-control', 'no-store')
    return { auth: 'on' as const, name: request.apiKeyName, expires_in: keys.sessionSeconds }
  })

  fastify.delete('/session', {
    schema: {
      tags: ['operations'],
      summary: 'Ends the session cookie',
      response: { 204: Type.Null({ description: 'The cookie is cleared' }), 401: error('No valid API key') }
    }
  }, async function closeSession (_request, reply) {
    reply.header('set-cookie', `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict`)
    return await reply.code(204).send()
  })
}

import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { ErrorSchema } from '../../schemas/common.js'
import { ALERTS_PAGE_DEFAULT, AlertsQuerySchema, AlertsSchema } from '../../schemas/alerts.js'

// GET /alerts (issue 18): the alert episodes in the table (alerts/store.ts), newest first.

const error = (description: string) => Type.Ref(ErrorSchema, { description })

export default async function alerts (fastifyBase: FastifyInstance) {
  const fastify = fastifyBase.withTypeProvider<TypeBoxTypeProvider>()

  fastify.get('/', {
    schema: {
      tags: ['alerts'],
      summary: 'Alert episodes, newest first',
      description: 'One item an episode of a rule of ALERTS_FILE on a device: `firing` while open, `resolved` once over. ' +
        'Filter by `state`, `device` and `rule`; pages by opaque cursor (pass `next_cursor` back as `cursor` with the same filters). Empty when alerting is off.',
      querystring: AlertsQuerySchema,
      response: {
        200: Type.Ref(AlertsSchema, { description: 'A page of alert episodes' }),
        400: error('Bad Request: `state`, `device`, `rule`, `limit` or `cursor` is invalid (the message names it)'),
        500: error('Internal Server Error (no details)'),
        503: error('Service Unavailable: the table does not answer; try again shortly')
      }
    }
  }, async function listAlerts (request, reply) {
    const q = request.query
    const page = await fastify.alerts.list({ state: q.state, device: q.device, rule: q.rule, limit: q.limit ?? ALERTS_PAGE_DEFAULT, cursor: q.cursor })
    reply.header('cache-control', 'no-cache')
    return { alerts: page.alerts, ...(page.next !== undefined ? { next_cursor: page.next } : {}) }
  })
}

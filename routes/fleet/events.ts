import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { ErrorSchema } from '../../schemas/common.js'
import { SSE_TYPE, statusFrame } from '../../http/sse.js'
import { eventStreamResponse } from '../../schemas/fleet.js'

// GET /fleet/events (issue 16): server-sent events, `event: status` a device whose status changed.

const error = (description: string) => Type.Ref(ErrorSchema, { description })

export default async function fleetEvents (fastify: FastifyInstance) {
  fastify.get('/events', {
    schema: {
      tags: ['fleet'],
      summary: 'Status events of every device (server-sent events)',
      description: 'Fed by the fleet view: while anyone listens it reads the fleet index every `STATUS_CACHE_TTL_MS`, so readings stored by any process show within about that long.',
      response: {
        200: eventStreamResponse('any device'),
        500: error('Internal Server Error (no details)')
      }
    }
  }, async function streamFleetEvents (request, reply) {
    if (request.method === 'HEAD') return reply.type(SSE_TYPE).header('cache-control', 'no-cache').send('')
    // Every root-level hook has run; from here the stream is written on the raw response.
    reply.hijack()
    const stream = fastify.eventStreams.open(reply.raw, reply.getHeaders())
    stream.onClose(fastify.fleetView.subscribe(event => { stream.write(statusFrame(event)) }))
  })
}

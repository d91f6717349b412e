import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import createError from 'http-errors'
import { DeviceParamsSchema } from '../../schemas/readings.js'
import { ErrorSchema } from '../../schemas/common.js'
import { SSE_TYPE, statusFrame } from '../../http/sse.js'
import { eventStreamResponse } from '../../schemas/fleet.js'

// GET /devices/{device}/events (issue 16): the fleet's status events of one device.

const error = (description: string) => Type.Ref(ErrorSchema, { description })

export default async function deviceEvents (fastifyBase: FastifyInstance) {
  const fastify = fastifyBase.withTypeProvider<TypeBoxTypeProvider>()

  fastify.get('/:device/events', {
    schema: {
      tags: ['devices'],
      summary: 'Status events of one device (server-sent events)',
      description: '404 when the device has no status (no reading yet); 503 when the table does not answer before the stream starts.',
      params: DeviceParamsSchema,
      response: {
        200: eventStreamResponse('the device'),
        400: error('Bad Request: the device id is invalid'),
        404: error('Not Found: the device has no readings'),
        414: error('URI Too Long: a path segment is longer than 100 characters'),
        500: error('Internal Server Error (no details)'),
        503: error('Service Unavailable: the table does not answer; try again shortly')
      }
    }
  }, async function streamDeviceEvents (request, reply) {
    const { device } = request.params
    if (await fastify.statusCache.record(device) === null) throw new createError.NotFound(`No readings for device "${device}"`)
    if (request.method === 'HEAD') return reply.type(SSE_TYPE).header('cache-control', 'no-cache').send('')
    reply.hijack()
    const stream = fastify.eventStreams.open(reply.raw, reply.getHeaders())
    stream.onClose(fastify.fleetView.subscribe(event => { if (event.device === device) stream.write(statusFrame(event)) }))
  })
}

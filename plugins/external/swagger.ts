import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { PcReadingSchema, RaspberryReadingSchema } from '../../schemas/devices.js'
import { AllReadingsSchema, ReadingListSchema, ReadingSchema, StatusSchema, ThrottledFlagsSchema } from '../../schemas/readings.js'
import { ErrorSchema, HealthSchema } from '../../schemas/common.js'

// Shared schemas are added once here, so routes can $ref them and the OpenAPI document names them
// as components: the device models are documented, not just used.
export const sharedSchemas = [
  ThrottledFlagsSchema, PcReadingSchema, RaspberryReadingSchema, ReadingSchema, ReadingListSchema,
  AllReadingsSchema, StatusSchema, ErrorSchema, HealthSchema
]

export default fp(async function swaggerDocs (fastify: FastifyInstance) {
  for (const schema of sharedSchemas) fastify.addSchema(schema)

  await fastify.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Sensors API',
        description: [
          'Hardware telemetry of a fleet of PCs and Raspberry Pis: readings, per-device history and each device\'s latest status ',
          '(stressed = throttling or burning out, predicted per reading).\n\n',
          '| Sensor type | Unit |\n|---|---|\n| Temperature | °C |\n| Power | W |\n| Load | % |\n| Voltage | V |\n| Fan | CFM |\n',
          '| Clock (PC) | MHz |\n| Frequency (Raspberry Pi) | Hz |\n| Memory | bytes |'
        ].join(''),
        version: '1.0.0'
      },
      tags: [
        { name: 'devices', description: 'Readings and statuses of the devices' },
        { name: 'operations', description: 'Health of the service' }
      ]
    },
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (json.$id as string | undefined) ?? `def-${i}`
    }
  })
  await fastify.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list', deepLinking: true } })
}, { name: 'swagger', dependencies: ['env'] })

import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'

// The OpenAPI document (/docs/json) and Swagger UI (/docs), generated from the route schemas and
// the shared schemas (plugins/app/schemas.ts). Registered before the routes: it collects them as
// they are added.
export default fp(async function swaggerDocs (fastify: FastifyInstance) {
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
      ],
      // API_KEYS (issue 19): Swagger UI's Authorize button takes either form of the key.
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'An API key of API_KEYS: `Authorization: Bearer <key>`' },
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'An API key of API_KEYS' }
        }
      },
      ...(fastify.config.apiKeys.length > 0 ? { security: [{ bearer: [] }, { apiKey: [] }] } : {})
    },
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (json.$id as string | undefined) ?? `def-${i}`
    }
  })
  await fastify.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list', deepLinking: true, persistAuthorization: false } })
}, { name: 'swagger', dependencies: ['env', 'schemas'] })

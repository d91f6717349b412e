import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'

export default async function health (fastify: FastifyInstance) {
  fastify.get('/', {
    schema: {
      tags: ['operations'],
      // open with API_KEYS too (the ALB's health check)
      security: [],
      summary: 'Health of the service and its components',
      description: '200 when DynamoDB answers and, where enabled, the Kafka consumer is connected; 503 otherwise. The body names each component\'s state.',
      response: {
        200: Type.Ref('Health'),
        503: Type.Ref('Health')
      }
    }
  }, async function getHealth (_request, reply) {
    const health = await fastify.health.check()
    return await reply.code(health.status === 'ok' ? 200 : 503).header('cache-control', 'no-store').send(health)
  })
}

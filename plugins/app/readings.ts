import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { ReadingsRepository } from '../../storage/readings-repository.js'

declare module 'fastify' {
  interface FastifyInstance {
    readings: ReadingsRepository
  }
}

export default fp(async function readings (fastify: FastifyInstance) {
  const repository = new ReadingsRepository({
    doc: fastify.dynamo.doc,
    table: fastify.config.DYNAMODB_TABLE,
    retentionDays: fastify.config.RETENTION_DAYS,
    rollupRetentionDays: fastify.config.ROLLUP_RETENTION_DAYS,
    onUnreadableStatus: (device, item) => {
      fastify.log.warn({ device, attributes: Object.keys(item) }, 'a status item this service cannot read: the device reads as having no status until its next reading')
    }
  })
  fastify.decorate('readings', repository)
  fastify.health.register('dynamodb', async () => {
    await repository.ping()
    return { status: 'up' }
  })
}, { name: 'readings', dependencies: ['dynamodb', 'health'] })

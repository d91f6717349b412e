import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { AlertStore } from '../../alerts/store.js'

declare module 'fastify' {
  interface FastifyInstance {
    alerts: AlertStore
  }
}

// The alert episodes, state and outbox in the table (alerts/store.ts): GET /alerts reads them
// (api and all roles), alerting writes them (ingest and all roles).
export default fp(async function alerts (fastify: FastifyInstance) {
  fastify.decorate('alerts', new AlertStore(fastify.dynamo.doc, fastify.config.DYNAMODB_TABLE))
}, { name: 'alerts', dependencies: ['env', 'dynamodb'] })

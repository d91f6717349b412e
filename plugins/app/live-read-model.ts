import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'

// ROLE=all only: readings this process stores move its own read model at once (the status moves
// forward, the device's cached first pages are dropped, the fleet view moves and sends its events), instead of waiting for a TTL. Separate
// API tasks learn of them from the table (the batched status read and its revision).
export default fp(async function liveReadModel (fastify: FastifyInstance) {
  fastify.ingest.onStored(readings => {
    fastify.statusCache.observe(readings)
    fastify.fleetView.observe(readings)
    fastify.historyCache.invalidate(new Set(readings.map(r => r.device)))
  })
}, { name: 'live-read-model', dependencies: ['ingest', 'status-cache', 'history-cache', 'fleet-view'] })

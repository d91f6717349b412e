import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { FleetView } from '../../read-model/fleet-view.js'
import { EventStreams } from '../../http/sse.js'
import { StorageUnavailableError } from '../../storage/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    fleetView: FleetView
    eventStreams: EventStreams
  }
}

// The fleet's statuses in memory (GET /fleet) and the status event streams it feeds (api and all
// roles); docs/adr/0005-fleet-access-path.md.
export default fp(async function fleetView (fastify: FastifyInstance) {
  const { config } = fastify
  const view = new FleetView({
    repository: fastify.readings,
    staleAfterSeconds: config.staleAfterSeconds,
    ttlMs: config.STATUS_CACHE_TTL_MS,
    // Requests wait for the table once the view is two TTLs old and see its error; the streams
    // stay open and resume with the next read that answers. An outage is logged by storage/outage.ts.
    onRefreshError: err => {
      if (err instanceof StorageUnavailableError) fastify.log.debug({ err }, 'reading the fleet index failed')
      else fastify.log.warn({ err }, 'reading the fleet index failed')
    }
  })
  const streams = new EventStreams({
    heartbeatMs: config.SSE_HEARTBEAT_SECONDS * 1000,
    maxBufferBytes: config.SSE_BUFFER_KB * 1024,
    onDropped: () => { fastify.log.info({ limitKb: config.SSE_BUFFER_KB }, 'event stream dropped: its client does not keep up') }
  })
  fastify.decorate('fleetView', view)
  fastify.decorate('eventStreams', streams)
  // Before the HTTP server closes: open streams would hold it until SHUTDOWN_TIMEOUT_MS.
  fastify.addHook('preClose', async () => {
    streams.closeAll()
    view.close()
  })
}, { name: 'fleet-view', dependencies: ['env', 'readings'] })

import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Alerter } from '../../alerts/alerter.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** null when ALERTS_FILE is unset; its `metrics` are the notifications sent, failed and retried per channel */
    alerting: Alerter | null
  }
}

// Where readings are ingested (ingest and all roles): the rules on every stored reading (recorded
// before the batch is acknowledged), the stale check by lease, and the outbox's delivery.
export default fp(async function alerting (fastify: FastifyInstance) {
  const { config } = fastify
  if (config.alerts === undefined) {
    fastify.decorate('alerting', null)
    return
  }
  const log = fastify.log.child({ component: 'alerting' })
  const alerter = new Alerter({
    store: fastify.alerts,
    config: config.alerts,
    staleAfterMs: config.staleAfterSeconds * 1000,
    statuses: () => fastify.readings.fleetStatuses(),
    publicUrl: config.PUBLIC_URL,
    tickMs: config.ALERTS_TICK_SECONDS * 1000,
    log
  })
  fastify.decorate('alerting', alerter)
  fastify.ingest.onAccepted(readings => alerter.onReadings(readings))
  fastify.addHook('onReady', async () => { alerter.start() })
  fastify.addHook('onClose', async () => { await alerter.close() })
  log.info({ rules: config.alerts.rules.length, channels: config.alerts.channels.length }, 'alerting on')
}, { name: 'alerting', dependencies: ['env', 'alerts', 'ingest', 'readings'] })

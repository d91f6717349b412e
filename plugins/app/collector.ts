import fp from 'fastify-plugin'
import { StorageUnavailableError } from '../../storage/errors.js'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../app.js'
import type { SensorReader } from '../../collector/reader.js'

// This host's collector, feeding the ingest service in-process (no Kafka needed): on by default
// when KAFKA_BROKERS is unset, so `npm start` alone shows live readings.
export default fp(async function collector (fastify: FastifyInstance, opts: AppOptions) {
  const { config } = fastify
  if (!config.collectorEnabled) {
    fastify.health.register('collector', () => ({ status: 'disabled' }), { critical: false })
    return
  }
  const reader = opts.sensorReader ?? await hostReader(config.deviceName)
  const periodMs = config.COLLECT_INTERVAL_SECONDS * 1000
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> | undefined
  let stopped = false
  let lastOk = 0
  let lastError: string | undefined

  async function collectOnce (): Promise<void> {
    try {
      const reading = await reader.read()
      const result = await fastify.ingest.ingest([reading])
      if (result.rejected.length > 0) {
        lastError = `reading rejected: ${result.rejected[0]!.reasons.join('; ')}`
        fastify.log.warn({ reasons: result.rejected[0]!.reasons }, 'collector reading rejected')
      } else {
        lastOk = Date.now()
        lastError = undefined
      }
    } catch (err) {
      lastError = (err as Error).message
      // A table outage is logged once where the table client sees it (storage/outage.ts).
      if (err instanceof StorageUnavailableError) fastify.log.debug({ err }, 'collector reading not stored')
      else fastify.log.warn({ err }, 'collector failed')
    }
  }

  function schedule (delay: number): void {
    if (stopped) return
    timer = setTimeout(() => {
      running = collectOnce().finally(() => schedule(periodMs))
    }, delay)
  }

  fastify.health.register('collector', () => {
    const fresh = Date.now() - lastOk < 3 * periodMs
    return fresh
      ? { status: 'up', reason: 'reading' }
      : { status: 'down', reason: lastError === undefined ? 'no reading yet' : 'reading failed' }
  }, { critical: false })

  fastify.addHook('onReady', async () => { schedule(0) })
  fastify.addHook('onClose', async () => {
    stopped = true
    clearTimeout(timer)
    await running
  })
  fastify.log.info({ device: reader.device, kind: reader.kind, intervalSeconds: config.COLLECT_INTERVAL_SECONDS }, 'collector on')
}, { name: 'collector', dependencies: ['ingest', 'health'] })

/** This host's sensors. reader.js is loaded only here: systeminformation is large. */
async function hostReader (device: string): Promise<SensorReader> {
  const { createSensorReader } = await import('../../collector/reader.js')
  return await createSensorReader({ device })
}

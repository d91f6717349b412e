// first, as in server.ts: the service's V8 flags
import '../../v8-flags.js'
import Fastify, { type FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import app from '../../app.js'
import { loadConfig } from '../../config.js'
import { serverOptions } from '../../server-options.js'
import { DeviceParamsSchema, ListQuerySchema, StatusSchema, type Reading, type Status } from '../../schemas/readings.js'
import { ErrorSchema } from '../../schemas/common.js'
import { deviceName, flavourOf, itemOf, lcg, rawReading, validator, type Flavour } from './data.js'
import { answerRunner } from './ipc.js'

// The server under test: the real app built exactly as server.ts builds it (same server options,
// same plugin, configured from the environment), plus the bench's ceiling routes. Talks to the
// bench runner over IPC: "ready" once listening, counters of the Kafka consumer on request.

const config = loadConfig()
const fastify = Fastify(serverOptions(config))

const errors = { 400: Type.Ref(ErrorSchema), 500: Type.Ref(ErrorSchema), 503: Type.Ref(ErrorSchema) }

/**
 * Ceilings: the same URL shapes, params, querystring and response schemas as the real device
 * routes, answering constants, so the ratio real / ceiling is what the data access costs.
 * The constants are what the real routes answer for three bench devices, read from the table
 * once at start (a PC with a GPU, one without, a Raspberry Pi: bench devices have their flavour
 * in their number), so both sides serialise the very same objects (shapes, sizes, values). A
 * device asked for gets the constant of its flavour. With an empty table (the ingest run) the
 * constants are generated readings of the same flavours.
 */
async function ceilings (instance: FastifyInstance): Promise<void> {
  const { toReading } = await validator()
  const statuses = {} as Record<Flavour, Status>
  const lists = {} as Record<Flavour, unknown[]>
  for (const [flavour, i] of [['pc1', 0], ['pc2', 1], ['raspberry', 3]] as const) {
    const device = deviceName(i)
    const page = await fastify.readings.listDevice(device, { limit: 100 })
    const record = (await fastify.readings.getStatuses([device])).get(device) ?? null
    if (page.items.length === 100 && record !== null) {
      lists[flavour] = page.items
      statuses[flavour] = fastify.statusCache.toStatus(record)
      continue
    }
    const rnd = lcg(i + 1)
    const end = Date.now() - 1000
    // newest first, as the history route answers
    const readings: Reading[] = Array.from({ length: 100 }, (_, k) => toReading(rawReading(device, end - k * 1000, rnd)))
    lists[flavour] = readings.map(itemOf)
    statuses[flavour] = fastify.statusCache.toStatus(readings[0]!)
  }

  instance.get('/:device/status', {
    schema: {
      hide: true,
      params: DeviceParamsSchema,
      headers: Type.Object({ 'if-none-match': Type.Optional(Type.String()) }),
      response: { 200: Type.Ref(StatusSchema), 404: Type.Ref(ErrorSchema), ...errors }
    }
  }, async function statusCeiling (request) {
    return statuses[flavourOf((request.params as { device: string }).device)]
  })

  instance.get('/:device', {
    schema: {
      hide: true,
      params: DeviceParamsSchema,
      querystring: ListQuerySchema,
      response: { 200: Type.Ref('ReadingList'), ...errors }
    }
  }, async function historyCeiling (request) {
    return lists[flavourOf((request.params as { device: string }).device)]
  })
}

let readyAt = 0
try {
  await fastify.register(app, { config })
  await fastify.register(ceilings, { prefix: '/__bench/devices' })
  // after the app's own onReady hooks: the Kafka consumer (if any) has just been started
  fastify.addHook('onReady', async () => { readyAt = Date.now() })
  await fastify.listen({ port: config.PORT, host: '127.0.0.1' })
} catch (err) {
  process.stderr.write(`bench server could not start: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
}

const address = fastify.server.address()
const port = typeof address === 'object' && address !== null ? address.port : config.PORT
// the memory Node.js sized V8's heap for: a cgroup's limit, if the runner started it in one
const constrained = process.constrainedMemory()
process.send?.({ type: 'ready', port, readyAt, pid: process.pid, constrainedMib: constrained > 0 && constrained < 2 ** 53 ? Math.round(constrained / 2 ** 20) : null })

answerRunner()

// "watch": tell the runner the moment the consumer has stored `target` readings (checked every 10 ms)
let watcher: NodeJS.Timeout | undefined
process.on('message', (msg: { type: string, target?: number }) => {
  const counters = () => ({ ...(fastify.kafkaConsumer?.counters ?? {}), state: fastify.kafkaConsumer?.state, at: Date.now() })
  if (msg.type === 'counters') process.send?.({ type: 'counters', ...counters() })
  if (msg.type === 'watch') {
    clearInterval(watcher)
    watcher = setInterval(() => {
      const c = fastify.kafkaConsumer?.counters
      if (c !== undefined && c.stored + c.deadLettered >= (msg.target ?? 0)) {
        clearInterval(watcher)
        process.send?.({ type: 'stored', ...counters() })
      }
    }, 10)
  }
})

let closing = false
async function shutdown (): Promise<void> {
  if (closing) return
  closing = true
  clearInterval(watcher)
  const timer = setTimeout(() => { process.exit(1) }, 20_000)
  await fastify.close().catch(() => {})
  clearTimeout(timer)
  process.exit(0)
}
process.once('SIGTERM', () => { shutdown().catch(() => { process.exit(1) }) })
process.once('SIGINT', () => { shutdown().catch(() => { process.exit(1) }) })
process.once('disconnect', () => { shutdown().catch(() => { process.exit(1) }) })

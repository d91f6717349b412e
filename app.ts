import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type {
  FastifyInstance, FastifyPluginAsync, FastifyPluginOptions, FastifyError, FastifyReply, FastifyRequest, RouteOptions
} from 'fastify'
import AutoLoad from '@fastify/autoload'
import fp from 'fastify-plugin'
import env from './plugins/external/env.js'
import swagger from './plugins/external/swagger.js'
import cors from './plugins/external/cors.js'
import helmet from './plugins/external/helmet.js'
import rateLimit from './plugins/external/rate-limit.js'
import apiKeys from './plugins/app/api-keys.js'
import metrics from './plugins/app/metrics.js'
import schemas from './plugins/app/schemas.js'
import health from './plugins/app/health.js'
import dynamodb from './plugins/app/dynamodb.js'
import readings from './plugins/app/readings.js'
import statusCache from './plugins/app/status-cache.js'
import historyCache from './plugins/app/history-cache.js'
import predictor from './plugins/app/predictor.js'
import ingest from './plugins/app/ingest.js'
import liveReadModel from './plugins/app/live-read-model.js'
import fleetView from './plugins/app/fleet-view.js'
import collector from './plugins/app/collector.js'
import kafkaConsumer from './plugins/app/kafka-consumer.js'
import alerts from './plugins/app/alerts.js'
import alerting from './plugins/app/alerting.js'
import type { Config } from './config.js'
import type { Dynamo } from './storage/client.js'
import type { Predictor } from './ingest/service.js'
import type { SensorReader } from './collector/reader.js'
import { quote } from './http/quote.js'
import { nodeHttp } from './http/node-http.js'
import { checkWritten, numericFields } from './http/query-numbers.js'

const here = fileURLToPath(new URL('.', import.meta.url))

/** Test seams: a test passes its own clients through these options instead of mocking modules. */
export interface AppOptions extends FastifyPluginOptions {
  config: Config
  /** an already connected DynamoDB (the caller closes it) */
  dynamo?: Dynamo
  predictor?: Predictor
  sensorReader?: SensorReader
}

type Plugin = FastifyPluginAsync<AppOptions>

/**
 * Issue 19, in every role and before any route (their hooks are root-level, or added to each route
 * registered after them): metrics (every answer counted), CORS (preflights answered before the key
 * check), security headers, the API-key check, then rate limits (keyed on the key's name).
 */
const access: Plugin[] = [metrics, cors, helmet, apiKeys, rateLimit]

/**
 * What each role builds, in registration order: its services (plugins) and its route folders
 * (each autoloaded under its own prefix). The one place a role is defined.
 * - api: the read side. No consumer, no collector, no ingest service or model.
 * - ingest: the write side (Kafka consumer, and the collector if on) and /health only: no status
 *   or history caches, no read routes, no OpenAPI document.
 * - all: both, and the link between them (readings stored here move this process's read model).
 */
export const ROLES: Record<Config['ROLE'], { plugins: Plugin[], routes: string[] }> = {
  api: {
    plugins: [
      env, schemas, ...access, swagger, health, dynamodb,
      readings, statusCache, historyCache, fleetView, alerts
    ],
    routes: ['auth', 'dashboard', 'devices', 'fleet', 'health', 'alerts']
  },
  ingest: {
    plugins: [
      env, schemas, ...access, health, dynamodb, readings,
      predictor, ingest, alerts, alerting, collector, kafkaConsumer
    ],
    routes: ['health']
  },
  all: {
    plugins: [
      env, schemas, ...access, swagger, health, dynamodb,
      readings, statusCache, historyCache, fleetView, predictor,
      ingest, liveReadModel, alerts, alerting, collector, kafkaConsumer
    ],
    routes: ['auth', 'dashboard', 'devices', 'fleet', 'health', 'alerts']
  }
}

// The app is a plugin that never listens: server.ts and the tests register it on an instance.
async function app (fastify: FastifyInstance, opts: AppOptions): Promise<void> {
  fastify.setErrorHandler(function errorHandler (error: FastifyError, request, reply) {
    const code = error.statusCode ?? 500
    const status = code >= 400 && code <= 599 ? code : 500
    if (error.validation !== undefined) {
      return reply.code(400).send({ statusCode: 400, error: 'Bad Request', message: bounded(error.message) })
    }
    if (status >= 500) {
      const unavailable = status === 503
      // An outage is logged once by storage/outage.ts, not by each request it fails.
      if (unavailable) request.log.debug({ err: error }, 'request failed: storage unavailable')
      else request.log.error({ err: error }, 'request failed')
      return reply.code(status).send({
        statusCode: status,
        error: unavailable ? 'Service Unavailable' : 'Internal Server Error',
        message: unavailable ? 'Storage is unavailable, try again shortly' : 'Internal Server Error'
      })
    }
    return reply.code(status).send({ statusCode: status, error: httpError(status), message: bounded(error.message) })
  })

  fastify.setNotFoundHandler(function notFound (request, reply) {
    return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `Route ${request.method} ${quote(pathOf(request))} not found` })
  })

  // Every answer names its request (the client's X-Request-Id when sane, else the generated id),
  // prepared and cached ones included: set first, before any hook or route can answer.
  fastify.addHook('onRequest', function requestId (request, reply, done) {
    reply.header('x-request-id', request.id)
    done()
  })

  // A path that exists with other methods: 405 with their list in Allow (RFC 9110 15.5.6), found by
  // Fastify's router. In onRequest, so a body is neither read nor parsed first.
  fastify.addHook('onRequest', function methodNotAllowed (request, reply, done) {
    if (!request.is404) return done()
    const allow = fastify.supportedMethods.filter(method => method !== request.method && fastify.findRoute({ method, url: request.url }) !== null)
    if (allow.length === 0) return done()
    reply.code(405).header('allow', allow.join(', ')).send({
      statusCode: 405, error: 'Method Not Allowed', message: `Method ${request.method} is not allowed on ${quote(pathOf(request))}: use ${allow.join(', ')}`
    })
  })

  // Numbers in the URL as written, for every route whose schema declares one (http/query-numbers.ts).
  fastify.addHook('onRoute', function checkNumbers (route: RouteOptions) {
    const fields = numericFields(route.schema as Record<string, unknown> | undefined, ref => fastify.getSchema(ref.replace(/#$/, '')))
    if (fields === undefined) return
    const existing = route.preValidation === undefined ? [] : Array.isArray(route.preValidation) ? route.preValidation : [route.preValidation]
    // The HEAD route Fastify derives from a GET route comes with its hooks.
    if (existing.some(hook => (hook as { numbersAsWritten?: true }).numbersAsWritten === true)) return
    const hook = Object.assign(function numbersAsWritten (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) {
      try {
        checkWritten(fields, request)
      } catch (err) {
        return done(err as Error)
      }
      done()
    }, { numbersAsWritten: true as const })
    route.preValidation = [hook, ...existing]
  })

  const role = ROLES[opts.config.ROLE]
  for (const plugin of role.plugins) await fastify.register(plugin, opts)
  for (const folder of role.routes) {
    await fastify.register(AutoLoad, {
      dir: join(here, 'routes', folder),
      options: { ...opts, prefix: folder === 'dashboard' ? '' : `/${folder}` },
      autoHooks: false,
      dirNameRoutePrefix: false,
      // Every file of a route folder is a plugin of its own (routes/devices/index.ts, export.ts, …):
      // by default autoload takes a folder with an index file for that one plugin and skips the rest.
      indexPattern: /^$/
    })
  }
}

function httpError (status: number): string {
  return nodeHttp.STATUS_CODES[status] ?? 'Error'
}

/** 4xx messages are ours, Ajv's or Fastify's: bounded all the same. */
function bounded (message: string, max = 240): string {
  return message.length > max ? `${message.slice(0, max)}...` : message
}

function pathOf (request: FastifyRequest): string {
  const url = request.url
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

// Not encapsulated, so the instance that registers it (server.ts, the tests) sees its decorators.
export default fp(app, { name: 'sensors-api' })

import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, FastifyPluginOptions, FastifyError } from 'fastify'
import AutoLoad from '@fastify/autoload'
import fp from 'fastify-plugin'
import fastAnswers from './plugins/fast-answers.js'
import type { Config } from './lib/config.js'
import type { Dynamo } from './lib/dynamo/client.js'
import type { Predictor } from './lib/ingest.js'
import type { SensorReader } from './collector/reader.js'

const here = fileURLToPath(new URL('.', import.meta.url))

/** Test seams: a test passes its own clients through these options instead of mocking modules. */
export interface AppOptions extends FastifyPluginOptions {
  config: Config
  /** an already connected DynamoDB (the caller closes it) */
  dynamo?: Dynamo
  predictor?: Predictor
  sensorReader?: SensorReader
}

// The app is a plugin that never listens: server.ts and the tests register it on an instance.
async function app (fastify: FastifyInstance, opts: AppOptions): Promise<void> {
  fastify.setErrorHandler(function errorHandler (error: FastifyError, request, reply) {
    const status = error.statusCode ?? 500
    if (error.validation !== undefined) {
      return reply.code(400).send({ statusCode: 400, error: 'Bad Request', message: error.message })
    }
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed')
      const unavailable = status === 503
      return reply.code(status).send({
        statusCode: status,
        error: unavailable ? 'Service Unavailable' : 'Internal Server Error',
        message: unavailable ? 'Storage is unavailable, try again shortly' : 'Internal Server Error'
      })
    }
    return reply.code(status).send({ statusCode: status, error: httpError(status), message: error.message })
  })

  fastify.setNotFoundHandler(function notFound (request, reply) {
    return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `Route ${request.method} ${request.url.split('?')[0] ?? ''} not found` })
  })

  // Third-party plugins, then the app's own services (each declaring its dependencies), then routes.
  await fastify.register(AutoLoad, { dir: join(here, 'plugins/external'), options: opts, encapsulate: false })
  // Before the services: its preClose hook must run first (Fastify answers 503 from the start of close).
  await fastify.register(fastAnswers)
  await fastify.register(AutoLoad, { dir: join(here, 'plugins/app'), options: opts, encapsulate: false })
  await fastify.register(AutoLoad, {
    dir: join(here, 'routes'),
    options: opts,
    autoHooks: false,
    // The ingest role serves only /health (for the container health check).
    ignoreFilter: (path) => opts.config.ROLE === 'ingest' && !path.includes('health')
  })
}

function httpError (status: number): string {
  switch (status) {
    case 400: return 'Bad Request'
    case 404: return 'Not Found'
    case 405: return 'Method Not Allowed'
    case 406: return 'Not Acceptable'
    case 413: return 'Payload Too Large'
    case 415: return 'Unsupported Media Type'
    case 429: return 'Too Many Requests'
    default: return 'Error'
  }
}

// Not encapsulated, so the instance that registers it (server.ts, the tests) sees its decorators.
export default fp(app, { name: 'sensors-api' })

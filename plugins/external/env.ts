import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../app.js'
import type { Config } from '../../config.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
  }
}

// server.ts validates the environment before the instance exists (it needs PORT and LOG_LEVEL);
// this plugin exposes that one validated, typed config to every plugin and route.
export default fp(async function env (fastify: FastifyInstance, opts: AppOptions) {
  fastify.decorate('config', opts.config)
}, { name: 'env' })

import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../app.js'
import type { Predictor } from '../../ingest/service.js'
import { createPredictor } from '../../prediction/predictor.js'

declare module 'fastify' {
  interface FastifyInstance {
    predictor: Predictor
  }
}

export default fp(async function predictor (fastify: FastifyInstance, opts: AppOptions) {
  // Models are loaded once at start, from MODELS_DIR; a missing or broken model file stops start-up.
  fastify.decorate('predictor', opts.predictor ?? await createPredictor({ modelsDir: opts.config.modelsDir }))
}, { name: 'predictor' })

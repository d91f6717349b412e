/**
 * The logger the code outside Fastify takes: what it calls of pino's API, so the app passes its
 * own (`fastify.log.child(…)`) and nothing below the plugins imports Fastify for a type.
 */
export interface Log {
  debug: (obj: object, msg?: string) => void
  info: (obj: object, msg?: string) => void
  warn: (obj: object, msg?: string) => void
  error: (obj: object, msg?: string) => void
}

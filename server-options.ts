import { randomUUID } from 'node:crypto'
import { LogController, type FastifyError, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import type { Config } from './config.js'
import { quote } from './http/quote.js'

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/**
 * Idle keep-alive connections are kept longer than the ALB keeps them (its idle timeout, 60 s in
 * deploy/alb.tf): the ALB closes them first, so it never sends a request down a connection the
 * task is closing at that moment (which the client would see as a 502).
 */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000

/** A path segment (a device id) longer than this is a 414 from the router, before any schema. */
export const MAX_PARAM_LENGTH = 100

/**
 * Errors of the router, before any route (bad percent-encoding, a segment over MAX_PARAM_LENGTH):
 * in the service's error shape, echoing at most a short, escaped part of the path.
 */
function frameworkErrors (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const path = quote((request.raw.url ?? '').split('?')[0] ?? '')
  if (error.code === 'FST_ERR_BAD_URL') {
    reply.code(400).send({ statusCode: 400, error: 'Bad Request', message: `The path is not valid percent-encoded UTF-8: ${path}` })
  } else if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    reply.code(414).send({ statusCode: 414, error: 'URI Too Long', message: `A path segment is longer than ${MAX_PARAM_LENGTH} characters: ${path}` })
  } else {
    request.log.error({ err: error }, 'request failed in the router')
    reply.code(500).send({ statusCode: 500, error: 'Internal Server Error', message: 'Internal Server Error' })
  }
}

/** The one set of server options: production (server.ts) and the test helper both use it. */
export function serverOptions (config: Pick<Config, 'LOG_LEVEL' | 'logRequests'>): FastifyServerOptions {
  return {
    logger: {
      level: config.LOG_LEVEL,
      // Never log credentials, even if a client sends them.
      redact: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["x-api-key"]']
    },
    // Fastify's two lines a request (LOG_REQUESTS). Through a LogController: the top-level
    // `disableRequestLogging` is deprecated (FSTDEP023, a warning at every start).
    logController: new LogController({ disableRequestLogging: !config.logRequests }),
    // Behind the ALB: the client's address and protocol come from X-Forwarded-*, as written by
    // proxies on private addresses (the ALB's nodes in the VPC). Not `true`: that trusts every
    // hop, so a client's own X-Forwarded-For would name its address in the logs.
    trustProxy: 'loopback, linklocal, uniquelocal',
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: MAX_PARAM_LENGTH },
    frameworkErrors,
    // Not `requestIdHeader`: Fastify would take the header's value as it comes, any length and any
    // characters, into every log line of the request. genReqId reads it and keeps only sane ids.
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id']
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
    },
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    return503OnClosing: true,
    ajv: { customOptions: { coerceTypes: 'array', useDefaults: true, removeAdditional: true, allErrors: false } }
  }
}

import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import fastifyStatic from '@fastify/static'
import { Type } from '@sinclair/typebox'
import { DeviceParamsSchema } from '../../schemas/readings.js'
import { packageRoot } from '../../paths.js'

// The dashboard: static pages and scripts of ui/ (no build step), uPlot from its own package, and
// `/`: the fleet view for browsers, a small index of the API for every other client (a 200, as
// the original's Swagger page at `/` was). Everything is served from here: no CDN.
const UI = join(packageRoot, 'ui')
const UPLOT = dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'))

function wantsHtml (accept: string | undefined): boolean {
  return accept !== undefined && /\btext\/html\b/.test(accept)
}

export default async function dashboard (fastify: FastifyInstance) {
  await fastify.register(fastifyStatic, { root: UI, prefix: '/ui/assets/', index: false, cacheControl: true, maxAge: 60_000 })
  await fastify.register(fastifyStatic, { root: UPLOT, prefix: '/ui/vendor/uplot/', index: false, decorateReply: false, maxAge: 86_400_000, immutable: true })

  fastify.get('/', {
    schema: {
      hide: true,
      headers: Type.Object({ accept: Type.Optional(Type.String()) })
    }
  }, async function home (request, reply) {
    if (wantsHtml(request.headers.accept)) return await reply.header('cache-control', 'no-cache').sendFile('index.html', UI)
    return { name: 'sensors-api', dashboard: '/', docs: '/docs', openapi: '/docs/json', fleet: '/fleet', devices: '/devices/', health: '/health' }
  })

  fastify.get('/ui/devices/:device', {
    schema: { hide: true, params: DeviceParamsSchema }
  }, async function devicePage (_request, reply) {
    return await reply.header('cache-control', 'no-cache').sendFile('device.html', UI)
  })
}

import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { ErrorSchema } from '../../schemas/common.js'
import { FLEET_CSV_COLUMNS, FLEET_PAGE_DEFAULT, FleetQuerySchema, FleetSchema, type FleetFormat } from '../../schemas/fleet.js'
import { CSV_TYPE, csvRow } from '../../http/csv.js'
import { preferredType } from '../../http/accept.js'
import type { FleetPage, FleetState } from '../../read-model/fleet-view.js'
import type { Status } from '../../schemas/readings.js'

// GET /fleet (issue 16): every device's latest status from the fleet view (read-model/fleet-view.ts):
// one read of the fleet index per TTL however many ask; sorted, filtered and paged in memory.

const error = (description: string) => Type.Ref(ErrorSchema, { description })

function stateOf (status: Status): FleetState {
  return status.stale ? 'stale' : status.stressed ? 'stressed' : 'ok'
}

function csvOf (page: FleetPage): string {
  let out = csvRow(FLEET_CSV_COLUMNS)
  for (const status of page.devices) {
    const row: Record<string, unknown> = { ...status, state: stateOf(status) }
    out += csvRow(FLEET_CSV_COLUMNS.map(c => row[c]))
  }
  return out
}

function nextLink (requestUrl: string, cursor: string): string {
  const url = new URL(requestUrl, 'http://localhost')
  url.searchParams.set('cursor', cursor)
  return `<${url.pathname}?${url.searchParams.toString()}>; rel="next"`
}

export default async function fleet (fastifyBase: FastifyInstance) {
  const fastify = fastifyBase.withTypeProvider<TypeBoxTypeProvider>()

  fastify.get('/', {
    schema: {
      tags: ['fleet'],
      summary: 'Every device that has sent a reading, with its latest status',
      description: 'Each device as `GET /devices/{device}/status` answers it; `counts` cover every device of the `kind` asked (not only this page, whatever `state`). ' +
        'Pages by opaque cursor: pass `next_cursor` back as `cursor` with the same `sort` (a `Link: <…>; rel="next"` header too). ' +
        'Served from memory: the fleet index is read once per `STATUS_CACHE_TTL_MS` however many ask (16 Queries, never a Scan), so a status is at most about two TTLs old. ' +
        'CSV (`format=csv`, or `Accept` preferring text/csv): RFC 4180, a header row, then one row a device; `throttled_flags` its JSON in one quoted cell.',
      querystring: FleetQuerySchema,
      response: {
        200: {
          description: 'A page of the fleet',
          headers: { link: { type: 'string', description: '`<…&cursor=…>; rel="next"` while more devices remain' } },
          content: {
            'application/json': { schema: Type.Ref(FleetSchema) },
            'text/csv': { schema: Type.String({ description: `RFC 4180 CSV, UTF-8: the header row (${FLEET_CSV_COLUMNS.join(',')}), then one row a device` }) }
          }
        },
        400: error('Bad Request: `state`, `kind`, `sort`, `limit`, `format` or `cursor` is invalid (the message names it)'),
        500: error('Internal Server Error (no details)'),
        503: error('Service Unavailable: the table does not answer; try again shortly')
      }
    }
  }, async function listFleet (request, reply) {
    const query = request.query
    const format: FleetFormat = query.format ?? (preferredType(request.headers.accept, ['application/json', 'text/csv']) === 'text/csv' ? 'csv' : 'json')
    const page = await fastify.fleetView.page({
      states: query.state === undefined ? undefined : new Set(query.state.split(',') as FleetState[]),
      kind: query.kind,
      sort: query.sort ?? 'risk',
      limit: query.limit ?? FLEET_PAGE_DEFAULT,
      cursor: query.cursor
    })
    reply.header('cache-control', 'no-cache').header('vary', 'accept')
    if (page.next !== undefined) reply.header('link', nextLink(request.url, page.next))
    if (format === 'csv') return reply.type(CSV_TYPE).send(csvOf(page))
    reply.type('application/json; charset=utf-8')
    return { devices: page.devices, counts: page.counts, ...(page.next !== undefined ? { next_cursor: page.next } : {}) }
  })
}

import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import createError from 'http-errors'
import { DeviceParamsSchema } from '../../schemas/readings.js'
import {
  DEFAULT_MAX_BUCKETS, MAX_BUCKETS, MAX_STATS_DAYS, ROLLUP_FIELDS_BY_KIND, StatsQuerySchema, StatsSchema,
  type StatsBucket, type StatsFormat
} from '../../schemas/stats.js'
import { ErrorSchema } from '../../schemas/common.js'
import { queryRange } from '../../http/range.js'
import { CSV_TYPE, csvRow } from '../../http/csv.js'
import { preferredType } from '../../http/accept.js'
import { bucketCount, defaultInterval } from '../../storage/rollups.js'
import type { DeviceKind } from '../../schemas/devices.js'

// GET /devices/{device}/stats (issue 16): a device's readings summarised per time bucket, served
// from the rollups ingest keeps (docs/adr/0006-history-rollups.md): one Query, O(buckets).

const error = (description: string) => Type.Ref(ErrorSchema, { description })

function csv (kind: DeviceKind, buckets: StatsBucket[]): string {
  const fields = ROLLUP_FIELDS_BY_KIND[kind]
  let out = csvRow(['start', 'count', 'stressed', ...fields.flatMap(f => [`${f}_min`, `${f}_max`, `${f}_avg`])])
  for (const b of buckets) {
    const stats = b.fields as Record<string, { min: number, max: number, avg: number } | undefined>
    out += csvRow([b.start, b.count, b.stressed, ...fields.flatMap(f => {
      const s = stats[f]
      return s === undefined ? [undefined, undefined, undefined] : [s.min, s.max, s.avg]
    })])
  }
  return out
}

export default async function deviceStats (fastifyBase: FastifyInstance) {
  const fastify = fastifyBase.withTypeProvider<TypeBoxTypeProvider>()

  fastify.get('/:device/stats', {
    schema: {
      tags: ['devices'],
      summary: 'A device\'s readings summarised per time bucket: count, stressed count, and min/max/avg of every numeric field',
      description: 'Served from rollups kept at ingest time (one table query, whatever the number of readings). ' +
        `\`from\` and \`to\` are inclusive (default: the last 24 hours; \`to\` at most ${MAX_STATS_DAYS} days after \`from\`); ` +
        'buckets start on multiples of the interval since the epoch (UTC), from the one holding `from` to the one holding `to`; ' +
        `buckets without readings are left out. Without \`interval\`, the finest giving at most ${DEFAULT_MAX_BUCKETS} buckets. ` +
        'The format is `format`, else CSV when `Accept` prefers text/csv, else JSON. CSV (RFC 4180, CRLF): ' +
        '`start,count,stressed,<field>_min,<field>_max,<field>_avg,…` for every numeric field of the device\'s kind (of its newest reading), ' +
        'in the Reading schema\'s order; a field no reading of the bucket carries is three empty cells.',
      params: DeviceParamsSchema,
      querystring: StatsQuerySchema,
      response: {
        200: {
          description: 'The buckets, oldest first',
          content: {
            'application/json': { schema: Type.Ref(StatsSchema) },
            'text/csv': { schema: Type.String({ description: 'RFC 4180 CSV, UTF-8: a header row, then one row a bucket' }) }
          }
        },
        400: error('Bad Request: `from`, `to`, `interval` or `format` is invalid, `from` is after `to`, the range is longer than 400 days, ' +
          `or the interval would give more than ${MAX_BUCKETS} buckets (the message names the parameter)`),
        404: error('Not Found: the device has no readings'),
        414: error('URI Too Long: a path segment is longer than 100 characters'),
        500: error('Internal Server Error (no details)'),
        503: error('Service Unavailable: the table does not answer; try again shortly')
      }
    }
  }, async function deviceStatsHandler (request, reply) {
    const { device } = request.params
    const range = queryRange(request.query, Date.now(), MAX_STATS_DAYS, 'ask for a longer span in parts')
    const interval = request.query.interval ?? defaultInterval(range.fromMs, range.toMs)
    const buckets = bucketCount(range.fromMs, range.toMs, interval)
    if (buckets > MAX_BUCKETS) {
      throw new createError.BadRequest(`querystring/interval ${interval} gives ${buckets} buckets over this range, more than ${MAX_BUCKETS}: ` +
        'choose a coarser interval or a shorter range')
    }
    const format: StatsFormat = request.query.format ?? (preferredType(request.headers.accept, ['application/json', 'text/csv']) === 'text/csv' ? 'csv' : 'json')
    // The status item says whether the device has readings (404), and its kind.
    const status = await fastify.statusCache.record(device)
    if (status === null) throw new createError.NotFound(`No readings for device "${device}"`)
    const found = await fastify.readings.rollupsBetween(device, interval, range.fromMs, range.toMs)
    reply.header('vary', 'accept')
    if (format === 'csv') return reply.type(CSV_TYPE).send(csv(status.kind, found))
    return reply.type('application/json; charset=utf-8').send({ device, kind: status.kind, interval, from: range.from, to: range.to, buckets: found })
  })
}

import { Readable } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import createError from 'http-errors'
import { DeviceParamsSchema, type Reading } from '../../schemas/readings.js'
import { EXPORT_COLUMNS, ExportQuerySchema, MAX_EXPORT_DAYS, exportedReading, type ExportFormat } from '../../schemas/export.js'
import { ErrorSchema } from '../../schemas/common.js'
import { queryRange } from '../../http/range.js'
import { CSV_TYPE, csvRow } from '../../http/csv.js'
import { preferredType } from '../../http/accept.js'
import { StorageUnavailableError } from '../../storage/errors.js'

// GET /devices/{device}/export (issue 16): every reading of a time range, oldest first, streamed.
// A page of the table (one Query) is read only when the client has taken the one before (the
// stream's backpressure), so an export of any length holds about two pages in memory.

const NDJSON_TYPE = 'application/x-ndjson'
const TYPES: Record<ExportFormat, { type: string, ext: string }> = {
  ndjson: { type: NDJSON_TYPE, ext: 'ndjson' },
  csv: { type: CSV_TYPE, ext: 'csv' }
}

const error = (description: string) => Type.Ref(ErrorSchema, { description })

interface Range { from: string, to: string }

/** `pc1-20261129T000000.000Z-20261129T235959.999Z.csv`: ISO 8601 basic times, no `:` (not allowed in Windows names). */
function filename (device: string, range: Range, ext: string): string {
  const compact = (iso: string): string => iso.replace(/[-:]/g, '')
  // Device ids are letters, digits, `_`, `.` and `-` (the params schema): nothing to escape.
  return `${device}-${compact(range.from)}-${compact(range.to)}.${ext}`
}

type Encode = (page: Reading[]) => string

function ndjson (page: Reading[]): string {
  let out = ''
  for (const item of page) out += JSON.stringify(exportedReading(item as unknown as Record<string, unknown>)) + '\n'
  return out
}

function csvRows (columns: readonly string[]): Encode {
  return page => {
    let out = ''
    for (const item of page) {
      const reading = exportedReading(item as unknown as Record<string, unknown>)
      out += csvRow(columns.map(c => reading[c]))
    }
    return out
  }
}

export default async function deviceExport (fastifyBase: FastifyInstance) {
  const fastify = fastifyBase.withTypeProvider<TypeBoxTypeProvider>()

  fastify.get('/:device/export', {
    schema: {
      tags: ['devices'],
      summary: 'Every reading of one device in a time range, oldest first, as a download (NDJSON or CSV)',
      description: 'Streamed, with no page limit: `Content-Disposition: attachment` names the file `<device>-<from>-<to>.<ndjson|csv>`. ' +
        `\`from\` and \`to\` are inclusive; default: the last 24 hours; \`to\` at most ${MAX_EXPORT_DAYS} days after \`from\`. ` +
        'The format is `format`, else `csv` when `Accept` prefers text/csv, else `ndjson`. ' +
        'NDJSON: one Reading (as the other routes serve it) a line. CSV (RFC 4180, CRLF): a header row of every field of the device\'s kind ' +
        '(of its newest reading), in the Reading schema\'s order, then one row a reading; a sensor the reading lacks is an empty cell, ' +
        '`throttled_flags` its JSON object in one quoted cell. A device with readings but none in the range: 200 with an empty body (CSV: the header row). ' +
        'Should the table fail after the answer has started, the connection is closed before the answer\'s end: a client that sees the body end without ' +
        'the chunked terminator knows the file is incomplete.',
      params: DeviceParamsSchema,
      querystring: ExportQuerySchema,
      response: {
        200: Type.Unsafe({
          description: 'The readings, oldest first (chunked; no Content-Length)',
          headers: {
            'content-disposition': { type: 'string', description: 'attachment; filename="<device>-<from>-<to>.<ext>" (times in ISO 8601 basic format)' }
          },
          content: {
            [NDJSON_TYPE]: { schema: Type.String({ description: 'One JSON Reading a line, each line ended by LF' }) },
            'text/csv': { schema: Type.String({ description: 'RFC 4180 CSV, UTF-8: the header row of the device kind\'s columns, then one row a reading' }) }
          }
        }),
        400: error('Bad Request: `from`, `to` or `format` is invalid, `from` is after `to`, or the range is longer than 400 days (the message names the parameter)'),
        404: error('Not Found: the device has no readings'),
        414: error('URI Too Long: a path segment is longer than 100 characters'),
        500: error('Internal Server Error (no details)'),
        503: error('Service Unavailable: the table does not answer; try again shortly')
      }
    }
  }, async function exportReadings (request, reply) {
    const { device } = request.params
    const range = queryRange(request.query, Date.now(), MAX_EXPORT_DAYS, 'export a longer span in parts')
    const format: ExportFormat = request.query.format ?? (preferredType(request.headers.accept, [NDJSON_TYPE, 'text/csv']) === 'text/csv' ? 'csv' : 'ndjson')
    // Before any byte is sent, so that an unknown device is a 404 and a table that does not answer
    // a 503, in the error shape: the status item says whether the device has readings, and its kind.
    const status = await fastify.statusCache.record(device)
    if (status === null) throw new createError.NotFound(`No readings for device "${device}"`)
    const { type, ext } = TYPES[format]
    const headers = {
      'content-type': type,
      'content-disposition': `attachment; filename="${filename(device, range, ext)}"`,
      'cache-control': 'no-store',
      vary: 'accept'
    }
    // HEAD: the headers only (Fastify would read a stream to its end to throw it away).
    if (request.method === 'HEAD') return reply.headers(headers).send(Readable.from([]))
    const pages = fastify.readings.readingsBetween(device, range)
    // The first page too, for the same reason (and the headers after it: an error answer is JSON).
    // The pages after it are read as the client takes the ones before.
    const first = await pages.next()
    const head = format === 'csv' ? csvRow(EXPORT_COLUMNS[status.kind]) : ''
    const encode = format === 'csv' ? csvRows(EXPORT_COLUMNS[status.kind]) : ndjson
    return reply.headers(headers).send(Readable.from(body(request, reply, device, pages, first, head, encode), { objectMode: false }))
  })
}

/**
 * The answer's chunks: one a page. A page that fails once the answer has started ends it: logged
 * once here, and the connection destroyed, so the client sees the answer cut short (no chunked
 * terminator) rather than a complete-looking file or a connection left hanging.
 */
async function * body (
  request: FastifyRequest, reply: FastifyReply, device: string,
  pages: AsyncGenerator<Reading[], void, undefined>, first: IteratorResult<Reading[], void>, head: string, encode: Encode
): AsyncGenerator<string, void, undefined> {
  let page = first
  let sent = 0
  let prefix = head
  try {
    while (page.done !== true) {
      yield prefix + encode(page.value)
      prefix = ''
      sent += page.value.length
      try {
        page = await pages.next()
      } catch (err) {
        const storage = err instanceof StorageUnavailableError
        const message = `export of device "${device}" cut short after ${sent} readings: ${storage ? 'the table does not answer' : 'reading the table failed'}`
        if (storage) request.log.warn({ err, device, readings: sent }, message)
        else request.log.error({ err, device, readings: sent }, message)
        reply.raw.destroy()
        return
      }
    }
    if (prefix !== '') yield prefix
  } finally {
    // The client went away (the stream was destroyed) or the export ended: no more pages.
    await pages.return()
  }
}

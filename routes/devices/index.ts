import { createHash } from 'node:crypto'
import { promisify } from 'node:util'
import { gzip } from 'node:zlib'
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { DEFAULT_PAGE_SIZE, DeviceParamsSchema, ListQuerySchema, StatusSchema, type ListQuery } from '../../schemas/readings.js'
import { ErrorSchema } from '../../schemas/common.js'
import { parseTime } from '../../ingest/time.js'
import { acceptsGzip } from '../../http/accept-encoding.js'
import { noneMatch } from '../../http/conditional.js'
import createError from 'http-errors'
import type { StatusRecord } from '../../storage/readings-repository.js'
import type { CachedPage } from '../../plugins/app/history-cache.js'
import { prepared, type Prepared } from '../../http/prepared.js'
import { pageKey } from '../../read-model/history-cache.js'
import { READING_TIME_MAX } from '../../storage/table.js'

const error = (description: string) => Type.Ref(ErrorSchema, { description })
const errors = {
  400: error('Bad Request: a query or path parameter is invalid (the message names it)'),
  500: error('Internal Server Error (no details)'),
  503: error('Service Unavailable: the table does not answer; try again shortly')
}
/** Routes with a path parameter: the router answers 414 for a segment over MAX_PARAM_LENGTH characters. */
const tooLong = { 414: error('URI Too Long: a path segment is longer than 100 characters') }

const TIME_MAX_MS = Date.parse(READING_TIME_MAX)

function timeBounds (query: ListQuery): { from?: string, to?: string } {
  const out: { from?: string, to?: string } = {}
  const ms: { from?: number, to?: number } = {}
  for (const key of ['from', 'to'] as const) {
    const text = query[key]
    if (text === undefined) continue
    const parsed = parseTime(text)
    if (parsed === null) throw new createError.BadRequest(`querystring/${key} must be an ISO 8601 date or date-time from 1970 to 9999`)
    // A bare date as `to` means the whole day.
    const at = key === 'to' && /^\d{4}-\d{2}-\d{2}$/.test(text) ? parsed.ms + 86_399_999 : parsed.ms
    // 9999-12-31T23:00-14:00 is in year 10000, whose ISO form (+010000-…) would not sort as a time.
    if (at > TIME_MAX_MS) throw new createError.BadRequest(`querystring/${key} must not be after ${READING_TIME_MAX}`)
    ms[key] = at
    out[key] = new Date(at).toISOString()
  }
  if (ms.from !== undefined && ms.to !== undefined && ms.from > ms.to) throw new createError.BadRequest('querystring/from must not be after querystring/to')
  return out
}

const IfNoneMatch = Type.Object({
  'if-none-match': Type.Optional(Type.String({ description: 'The ETag of a previous answer (or a list of them, or `*`; compared weakly): 304 while it is still the answer' }))
})

/** Sends an answer made earlier (body serialised by the route's own serialiser). */
function replyWith (reply: FastifyReply, answer: Prepared): FastifyReply {
  return reply.code(answer.code).headers(answer.headers).send(answer.body)
}

const JSON_TYPE = 'application/json; charset=utf-8'
type Serialize = (value: unknown) => string

const gzipAsync = promisify(gzip)
/** Smaller bodies are sent as they are: compressing them saves next to nothing. */
const GZIP_MIN_BYTES = 1024

/**
 * The next page's `Link`: the request's own query with the cursor; for a cached first page, which
 * every client of it gets, only the page's own validated query (limit and time bounds), never
 * parameters the first client added (whatever they carry would go to every other client).
 */
function nextLink (requestUrl: string, cursor: string, page?: { limit: number, from?: string, to?: string }): string {
  const url = new URL(requestUrl, 'http://localhost')
  const search = page === undefined ? url.searchParams : new URLSearchParams({ limit: String(page.limit) })
  if (page?.from !== undefined) search.set('from', page.from)
  if (page?.to !== undefined) search.set('to', page.to)
  search.set('cursor', cursor)
  return `<${url.pathname}?${search.toString()}>; rel="next"`
}

export default async function devices (fastifyBase: FastifyInstance) {
  const fastify = fastifyBase.withTypeProvider<TypeBoxTypeProvider>()

  fastify.get('/', {
    schema: {
      tags: ['devices'],
      summary: 'Readings of all devices, newest first',
      description: 'Pages by opaque cursor: pass `next_cursor` back as `cursor`. Each page costs one index query, whatever the table size.',
      querystring: ListQuerySchema,
      response: { 200: Type.Ref('AllReadings'), ...errors }
    }
  }, async function listAllReadings (request, reply) {
    const page = await fastify.readings.listAll({ limit: request.query.limit ?? DEFAULT_PAGE_SIZE, cursor: request.query.cursor, ...timeBounds(request.query) })
    if (page.next !== undefined) reply.header('link', nextLink(request.url, page.next))
    return { Items: page.items, Count: page.items.length, ...(page.next !== undefined ? { next_cursor: page.next } : {}) }
  })

  // The route's own response serialiser, taken from the first request: cached first pages are
  // serialised with it once per read of the table instead of once per request.
  let serializeList: Serialize | undefined

  fastify.get('/:device', {
    schema: {
      tags: ['devices'],
      summary: 'Readings of one device, newest first',
      description: 'A JSON array, as in the original API. While more readings remain, a `Link: <…>; rel="next"` header gives the next page. ' +
        'First pages (no `cursor`) carry an `ETag`: pollers that send it back in `If-None-Match` get a bodiless 304 while no reading of the device has been stored. ' +
        'First pages are sent gzip-coded (`Content-Encoding: gzip`, compressed once per read of the table) to clients whose `Accept-Encoding` allows it.',
      params: DeviceParamsSchema,
      querystring: ListQuerySchema,
      headers: IfNoneMatch,
      response: {
        200: Type.Ref('ReadingList'),
        304: Type.Null({ description: 'Not Modified: the first page is still the one of the given ETag' }),
        ...errors,
        ...tooLong
      }
    }
  }, function listDeviceReadings (request, reply) {
    const { device } = request.params
    const options = { limit: request.query.limit ?? DEFAULT_PAGE_SIZE, cursor: request.query.cursor, ...timeBounds(request.query) }
    if (options.cursor !== undefined) {
      return fastify.readings.listDevice(device, options).then(page => {
        if (page.next !== undefined) reply.header('link', nextLink(request.url, page.next))
        return page.items
      })
    }
    const serialize = serializeList ??= reply.getSerializationFunction('200') as Serialize
    const key = pageKey(device, `${options.limit}|${options.from ?? ''}|${options.to ?? ''}`)
    const url = request.url
    const load = async (): Promise<CachedPage> => {
      const page = await fastify.readings.listDevice(device, options)
      const body = Buffer.from(serialize(page.items))
      // in libuv's thread pool, off the event loop
      const gzipped = body.length >= GZIP_MIN_BYTES ? await gzipAsync(body) : undefined
      // Weak: the gzip-coded answer is the same representation, so it shares the tag.
      const etag = `W/"${createHash('sha1').update(body).digest('base64url')}"`
      const link = page.next !== undefined ? nextLink(url, page.next, options) : undefined
      const headers = { ...(link !== undefined ? { link } : {}), etag, 'cache-control': 'no-cache', vary: 'accept-encoding' }
      return {
        etag,
        identity: prepared(200, { ...headers, 'content-type': JSON_TYPE }, body),
        gzip: gzipped !== undefined ? prepared(200, { ...headers, 'content-type': JSON_TYPE, 'content-encoding': 'gzip' }, gzipped) : undefined,
        notModified: prepared(304, headers)
      }
    }
    // Not async: a page in memory (the pollers' case) is answered without a promise.
    const hit = fastify.historyCache.peek(key, load)
    if (hit !== undefined) {
      replyWith(reply, pageAnswer(hit, request.headers))
      return
    }
    return fastify.historyCache.get(key, load).then(page => { replyWith(reply, pageAnswer(page, request.headers)) })
  })

  function pageAnswer (page: CachedPage, headers: IncomingHttpHeaders): Prepared {
    if (noneMatch(headers['if-none-match'], page.etag)) return page.notModified
    if (page.gzip !== undefined && acceptsGzip(headers['accept-encoding'])) return page.gzip
    return page.identity
  }

  fastify.get('/:device/status', {
    schema: {
      tags: ['devices'],
      summary: 'Latest status of one device',
      description: '"The device is stressed" or "The device is OK" from the newest reading\'s prediction; "The device is not reporting" (with `stale: true`) when the newest reading is older than the staleness window. 404 when the device has no reading.',
      params: DeviceParamsSchema,
      headers: IfNoneMatch,
      response: {
        200: Type.Ref(StatusSchema),
        304: Type.Null({ description: 'Not Modified: the newest reading is still the one of the given ETag' }),
        404: error('Not Found: the device has no readings'),
        ...errors,
        ...tooLong
      }
    }
  }, function getDeviceStatus (request, reply) {
    const { device } = request.params
    const serialize = serializeStatus ??= reply.getSerializationFunction('200') as Serialize
    // Not async: a status in memory (the pollers' case) is answered without a promise.
    const hit = fastify.statusCache.peek(device)
    if (hit !== undefined) {
      sendStatus(request, reply, device, hit.record, serialize)
      return
    }
    return fastify.statusCache.record(device).then(record => { sendStatus(request, reply, device, record, serialize) })
  })

  function sendStatus (request: FastifyRequest, reply: FastifyReply, device: string, record: StatusRecord | null, serialize: Serialize): void {
    if (record === null) throw new createError.NotFound(`No readings for device "${device}"`)
    replyWith(reply, statusAnswer(record, request.headers, serialize))
  }

  // A status answer changes with its record, with age_seconds (a tenth of a second) and with
  // staleness: pollers within one tenth share one serialised answer.
  interface Answers { ms: number, tenths: number, stale: boolean, etag: string, ok: Prepared, notModified: Prepared }
  const answers = new WeakMap<StatusRecord, Answers>()
  let serializeStatus: Serialize | undefined

  function statusAnswer (record: StatusRecord, headers: IncomingHttpHeaders, serialize: Serialize): Prepared {
    let answer = answers.get(record)
    const ms = answer?.ms ?? Date.parse(record.loading_datetime)
    const age = fastify.statusCache.age(ms)
    const { tenths, stale } = age
    if (answer === undefined || answer.tenths !== tenths || answer.stale !== stale) {
      const status = fastify.statusCache.toStatus(record, age)
      // The ETag names the reading (and staleness), not the body: age_seconds changes every tenth.
      const etag = `W/"${status.uuid}${status.stale ? '-stale' : ''}"`
      const common = { etag, 'cache-control': 'no-cache' }
      answer = {
        ms,
        tenths,
        stale,
        etag,
        ok: prepared(200, { ...common, 'content-type': JSON_TYPE }, Buffer.from(serialize(status))),
        notModified: answer?.etag === etag ? answer.notModified : prepared(304, common)
      }
      answers.set(record, answer)
    }
    return noneMatch(headers['if-none-match'], answer.etag) ? answer.notModified : answer.ok
  }
}

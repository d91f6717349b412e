import createError from 'http-errors'
import { parseTime } from '../ingest/time.js'
import { READING_TIME_MAX } from '../storage/table.js'

const DAY_MS = 86_400_000
const TIME_MAX_MS = Date.parse(READING_TIME_MAX)

export interface TimeRange { from: string, to: string, fromMs: number, toMs: number }

/**
 * A route's `from` and `to` as the history route reads them (a bare date as `to` is the whole day),
 * with defaults: `to` now, `from` the 24 hours up to `to` (so `to=2026-11-30` alone is that day),
 * `to` at most `maxDays` after `from` (`tooLong` says what to do instead). 400s name the parameter.
 */
export function queryRange (query: { from?: string | undefined, to?: string | undefined }, now: number, maxDays: number, tooLong: string): TimeRange {
  const ms = { from: undefined as number | undefined, to: undefined as number | undefined }
  for (const key of ['from', 'to'] as const) {
    const text = query[key]
    if (text === undefined) continue
    const parsed = parseTime(text)
    if (parsed === null) throw new createError.BadRequest(`querystring/${key} must be an ISO 8601 date or date-time from 1970 to 9999`)
    const at = key === 'to' && /^\d{4}-\d{2}-\d{2}$/.test(text) ? parsed.ms + DAY_MS - 1 : parsed.ms
    if (at > TIME_MAX_MS) throw new createError.BadRequest(`querystring/${key} must not be after ${READING_TIME_MAX}`)
    ms[key] = at
  }
  const to = ms.to ?? now
  const from = ms.from ?? Math.max(0, to - DAY_MS + 1)
  if (from > to) {
    throw new createError.BadRequest(`querystring/from must not be after querystring/to${query.to === undefined ? ' (which defaults to now)' : ''}`)
  }
  if (to - from > maxDays * DAY_MS) {
    const defaulted = query.to === undefined ? ' (to defaults to now)' : ''
    throw new createError.BadRequest(`querystring/to must be at most ${maxDays} days after querystring/from${defaulted}: ${tooLong}`)
  }
  return { from: new Date(from).toISOString(), to: new Date(to).toISOString(), fromMs: from, toMs: to }
}

// Reading times: ISO 8601 (zone optional) or the original producers' `YYYY-MM-DD@HH:MM:SS`. A time
// written without a zone is wall-clock time in `zone` (readings: LEGACY_TIMEZONE; UTC when not
// given, as for the HTTP query bounds). Everything is stored and served as `Date#toISOString()`,
// whose fixed width makes lexicographic order equal time order (the table's sort keys rely on
// this), so results outside years 1970-9999 UTC are rejected, also when a zone moves them there.

const LEGACY = /^(\d{4})-(\d{2})-(\d{2})@(\d{2}):(\d{2}):(\d{2})$/
const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/i

const MIN_MS = Date.UTC(1970, 0, 1)
const MAX_MS = Date.UTC(10000, 0, 1) - 1
const DAY_MS = 86_400_000

export interface ParsedTime {
  iso: string
  ms: number
}

export interface ParseOptions {
  /** IANA time zone of a time written without one (default UTC); check it first with isTimeZone */
  zone?: string
}

const formatters = new Map<string, Intl.DateTimeFormat>()

function formatter (zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone)
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric'
    })
    formatters.set(zone, f)
  }
  return f
}

/** Whether Intl knows this time zone (IANA names such as `UTC`, `Europe/Berlin`). */
export function isTimeZone (zone: string): boolean {
  try {
    formatter(zone)
    return true
  } catch {
    return false
  }
}

/** The zone's offset from UTC at the instant `ms`, in ms (wall clock minus UTC). */
function offsetAt (f: Intl.DateTimeFormat, ms: number): number {
  const p: Record<string, number> = {}
  for (const part of f.formatToParts(ms)) if (part.type !== 'literal') p[part.type] = Number(part.value)
  const wall = Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!)
  return wall - (ms - (((ms % 1000) + 1000) % 1000))
}

/**
 * The instant at which the zone's clocks show `wall` (a wall-clock time written as if it were UTC).
 * Across a DST change, as Temporal's "compatible": a time that occurs twice is the earlier, a time
 * skipped by the change is read with the offset before it (so 02:30 in a 02:00→03:00 gap is 03:30).
 */
function fromWallClock (wall: number, zone: string): number {
  if (zone === 'UTC') return wall
  const f = formatter(zone)
  // Offsets change at most once within two days in every zone.
  const before = offsetAt(f, wall - DAY_MS)
  const after = offsetAt(f, wall + DAY_MS)
  let best: number | undefined
  for (const offset of before === after ? [before] : [before, after]) {
    const ms = wall - offset
    if (offsetAt(f, ms) === offset && (best === undefined || ms < best)) best = ms
  }
  return best ?? wall - before
}

function build (y: string, mo: string, d: string, h = '00', mi = '00', s = '00', frac = '', zone: string | undefined, local: string): number {
  const year = Number(y)
  const month = Number(mo)
  const day = Number(d)
  const hour = Number(h)
  const minute = Number(mi)
  const second = Number(s)
  if (year < 1970 || year > 9999 || month < 1 || month > 12 || day < 1 || day > 31 ||
    hour > 23 || minute > 59 || second > 59) return NaN
  let ms = Date.UTC(year, month - 1, day, hour, minute, second, Number((frac + '000').slice(0, 3)))
  // Date.UTC rolls 2024-02-30 over into March: reject instead.
  if (new Date(ms).getUTCDate() !== day) return NaN
  if (zone === undefined) {
    ms = fromWallClock(ms, local)
  } else if (zone.toUpperCase() !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1
    const digits = zone.slice(1).replace(':', '')
    const offset = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || '0')
    if (offset > 14 * 60) return NaN
    ms -= sign * offset * 60_000
  }
  return ms < MIN_MS || ms > MAX_MS ? NaN : ms
}

export function parseTime (text: string, options: ParseOptions = {}): ParsedTime | null {
  const local = options.zone ?? 'UTC'
  let m = LEGACY.exec(text)
  const ms = m !== null
    ? build(m[1]!, m[2]!, m[3]!, m[4], m[5], m[6], '', undefined, local)
    : (m = ISO.exec(text)) !== null
        ? build(m[1]!, m[2]!, m[3]!, m[4], m[5], m[6], m[7] ?? '', m[8], local)
        : NaN
  return Number.isNaN(ms) ? null : { iso: new Date(ms).toISOString(), ms }
}

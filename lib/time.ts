// Reading times: ISO 8601 (zone optional, a zoneless time is UTC) or the original producers'
// `YYYY-MM-DD@HH:MM:SS`. Everything is stored and served as `Date#toISOString()`, whose fixed
// width makes lexicographic order equal time order (the table's sort keys rely on this).

const LEGACY = /^(\d{4})-(\d{2})-(\d{2})@(\d{2}):(\d{2}):(\d{2})$/
const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/i

export interface ParsedTime {
  iso: string
  ms: number
  /** true when the text carried no zone and was read as UTC */
  zoneless: boolean
}

function build (y: string, mo: string, d: string, h = '00', mi = '00', s = '00', frac = '', zone = 'Z'): number {
  const year = Number(y)
  const month = Number(mo)
  const day = Number(d)
  const hour = Number(h)
  const minute = Number(mi)
  const second = Number(s)
  if (year < 1970 || year > 9999 || month < 1 || month > 12 || day < 1 || day > 31 ||
    hour > 23 || minute > 59 || second > 59) return NaN
  const ms = Date.UTC(year, month - 1, day, hour, minute, second, Number((frac + '000').slice(0, 3)))
  // Date.UTC rolls 2024-02-30 over into March: reject instead.
  if (new Date(ms).getUTCDate() !== day) return NaN
  if (zone.toUpperCase() === 'Z') return ms
  const sign = zone[0] === '-' ? -1 : 1
  const digits = zone.slice(1).replace(':', '')
  const offset = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || '0')
  if (offset > 14 * 60) return NaN
  return ms - sign * offset * 60_000
}

export function parseTime (text: string): ParsedTime | null {
  let m = LEGACY.exec(text)
  if (m !== null) {
    const ms = build(m[1]!, m[2]!, m[3]!, m[4], m[5], m[6])
    return Number.isNaN(ms) ? null : { iso: new Date(ms).toISOString(), ms, zoneless: true }
  }
  m = ISO.exec(text)
  if (m === null) return null
  const ms = build(m[1]!, m[2]!, m[3]!, m[4], m[5], m[6], m[7] ?? '', m[8] ?? 'Z')
  return Number.isNaN(ms) ? null : { iso: new Date(ms).toISOString(), ms, zoneless: m[8] === undefined }
}

/**
 * Whether a request's `Accept-Encoding` allows a gzip-coded answer (RFC 9110 §12.5.3): `gzip`
 * (or `x-gzip`) with a non-zero weight, or `*` with a non-zero weight when gzip is not named.
 * Absent header: no (identity only, as clients that never asked for compression expect).
 */
export function acceptsGzip (header: string | string[] | undefined): boolean {
  if (header === undefined) return false
  const text = Array.isArray(header) ? header.join(',') : header
  const known = cache.get(text)
  if (known !== undefined) return known
  let gzip: boolean | undefined
  let star: boolean | undefined
  for (const part of text.split(',')) {
    const [name = '', ...params] = part.split(';')
    const coding = name.trim().toLowerCase()
    if (coding !== 'gzip' && coding !== 'x-gzip' && coding !== '*') continue
    let q = 1
    for (const param of params) {
      const [key = '', value = ''] = param.split('=')
      if (key.trim().toLowerCase() === 'q') q = Number(value.trim())
    }
    const ok = Number.isFinite(q) && q > 0
    if (coding === '*') star = ok
    else gzip = gzip === true || ok
  }
  const result = gzip ?? star ?? false
  // Clients send the same few headers again and again: remember their answers (bounded).
  if (cache.size >= 256) cache.clear()
  cache.set(text, result)
  return result
}

const cache = new Map<string, boolean>()

/**
 * Whether a request's `If-None-Match` matches an answer's entity tag (RFC 9110 §13.1.2): `*`, or
 * a comma-separated list of tags compared weakly (`W/"x"` and `"x"` are the same tag). Pollers
 * send back the one tag they were given, which is checked first; a list or `*` (caches, browsers)
 * is parsed.
 */
export function noneMatch (header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false
  if (header === etag) return true
  const text = Array.isArray(header) ? header.join(',') : header
  const opaque = weak(etag)
  for (const part of text.split(',')) {
    const tag = part.trim()
    if (tag === '*' || (tag !== '' && weak(tag) === opaque)) return true
  }
  return false
}

function weak (tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag
}

/**
 * An answer made once (headers, serialised body, gzip, 304) and sent as it is by a route through
 * Fastify's reply: the pollers' repeated requests cost a lookup and a write, inside the lifecycle.
 */
export interface Prepared {
  code: number
  /** lower-case names, as Fastify sends them; `content-length` included */
  headers: Record<string, string>
  /** none for a 304 */
  body: Buffer | undefined
}

export function prepared (code: number, headers: Record<string, string>, body?: Buffer): Prepared {
  return { code, headers: body === undefined ? headers : { ...headers, 'content-length': String(body.length) }, body }
}

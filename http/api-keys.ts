import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import type { ApiKey } from '../config.js'

// API keys (issue 19) without Fastify: matching a presented key in constant time, and the
// short-lived signed session token the dashboard's event streams use (an EventSource cannot send
// a header). The token is `name.expiresAtSeconds.signature`, HMAC-SHA256 under a secret derived
// from every configured key: each task behind the ALB derives the same one, and changing the keys
// ends every session.

function digest (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

export class ApiKeys {
  private readonly digests: Array<{ name: string, digest: Buffer }>
  private readonly secret: Buffer

  constructor (keys: ApiKey[], readonly sessionSeconds = 3600) {
    this.digests = keys.map(k => ({ name: k.name, digest: digest(k.key) }))
    this.secret = createHash('sha256').update('sensors-api session v1\0').update(keys.map(k => `${k.name}:${k.key}`).join('\0')).digest()
  }

  get enabled (): boolean {
    return this.digests.length > 0
  }

  /**
   * The name of the key presented, or undefined. Both sides are SHA-256 digests of equal length,
   * compared with timingSafeEqual against every key (no early exit): the time taken says nothing
   * about how much of a key matched, nor which.
   */
  match (presented: string): string | undefined {
    const given = digest(presented)
    let found: string | undefined
    for (const { name, digest } of this.digests) {
      if (timingSafeEqual(given, digest) && found === undefined) found = name
    }
    return found
  }

  /** A session token for `name`, valid sessionSeconds from `now` (ms). */
  token (name: string, now = Date.now()): string {
    const body = `${name}.${Math.floor(now / 1000) + this.sessionSeconds}`
    return `${body}.${this.sign(body)}`
  }

  /** The key name a valid, unexpired token was made for, or undefined. */
  verify (token: string, now = Date.now()): string | undefined {
    const parts = token.split('.')
    if (parts.length < 3 || token.length > 200) return undefined
    const signature = parts.pop()!
    const expires = Number(parts.pop())
    const name = parts.join('.')
    const body = `${name}.${expires}`
    const expected = Buffer.from(this.sign(body))
    const given = Buffer.from(signature)
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined
    if (!Number.isInteger(expires) || expires * 1000 <= now) return undefined
    return this.digests.some(d => d.name === name) ? name : undefined
  }

  private sign (body: string): string {
    return createHmac('sha256', this.secret).update(body).digest('base64url')
  }
}

/** The key a request presents: `Authorization: Bearer <key>` or `X-API-Key: <key>`. */
export function presentedKey (headers: Record<string, string | string[] | undefined>): string | undefined {
  const auth = headers.authorization
  if (typeof auth === 'string') {
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(auth)
    if (m !== null) return m[1]
  }
  const key = headers['x-api-key']
  return typeof key === 'string' && key !== '' ? key : undefined
}

export const SESSION_COOKIE = 'sensors_session'

/** The session cookie's value from a Cookie header, or undefined. */
export function sessionCookie (cookie: string | undefined): string | undefined {
  if (cookie === undefined) return undefined
  for (const part of cookie.split(';')) {
    const at = part.indexOf('=')
    if (at !== -1 && part.slice(0, at).trim() === SESSION_COOKIE) return part.slice(at + 1).trim()
  }
  return undefined
}

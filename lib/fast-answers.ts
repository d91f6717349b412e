import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'

/** The answer to a request from memory, made from its headers; undefined leaves it to Fastify. */
export type FastAnswer = (headers: IncomingHttpHeaders) => Prepared | undefined

/**
 * Answers for exact request URLs that Fastify has already routed and validated once, given before
 * Fastify sees the request: the pollers' requests (the same few URLs again and again) cost a map
 * lookup and a write instead of routing, validation, hooks, a reply object and a child logger.
 * A route remembers an answer for `request.url` only after its own schema accepted that URL, and
 * the answer gives way (undefined) whenever it cannot answer exactly as the route would: the route
 * then runs as usual. Only GET requests without a body are answered, and none once `disable`d
 * (from the start of shutdown: Fastify's own 503 applies then). Hooks do not run for these answers.
 */
export class FastAnswers {
  private readonly answers = new Map<string, FastAnswer>()
  private readonly maxEntries: number
  private enabled: boolean

  constructor (options: { enabled: boolean, maxEntries?: number }) {
    this.enabled = options.enabled
    this.maxEntries = options.maxEntries ?? 10_000
  }

  /** Whether requests may be answered here at all (false: every request goes through Fastify). */
  get active (): boolean {
    return this.enabled
  }

  has (url: string): boolean {
    return this.answers.has(url)
  }

  /**
   * Remembers how to answer `url`, a URL the route has just validated (a URL already known keeps
   * its answer, which is the same); the oldest goes first when full.
   */
  remember (url: string, answer: FastAnswer): void {
    if (!this.enabled || this.answers.has(url)) return
    if (this.answers.size >= this.maxEntries) this.answers.delete(this.answers.keys().next().value as string)
    this.answers.set(url, answer)
  }

  /** From now on every request goes through Fastify. */
  disable (): void {
    this.enabled = false
    this.answers.clear()
  }

  /** Answers the request if an answer is kept for its URL and can answer it; false otherwise. */
  answer (req: IncomingMessage, res: ServerResponse): boolean {
    if (!this.enabled || req.method !== 'GET' || req.url === undefined) return false
    const answer = this.answers.get(req.url)
    if (answer === undefined) return false
    // A GET with a body is unusual: let Fastify handle it as it would.
    if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) return false
    const prepared = answer(req.headers)
    if (prepared === undefined) return false
    res.writeHead(prepared.code, prepared.headers)
    res.end(prepared.body)
    return true
  }
}

/** An answer made once and sent as it is, through Fastify (`reply`) or by `FastAnswers` (`res`). */
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

import type { ServerResponse } from 'node:http'

/** Headers as the reply held them (Fastify's `reply.getHeaders()`). */
export type Headers = Record<string, string | number | string[] | undefined>

// Server-sent events (text/event-stream) on a response the route has taken over from Fastify
// (`reply.hijack()`, after every root-level hook has run): the headers those hooks set on the reply
// are passed in and written here, since Fastify sends nothing for a hijacked reply.

export const SSE_TYPE = 'text/event-stream; charset=utf-8'

export interface EventStreamsOptions {
  /** a comment line at least this often, so proxies and clients see the stream alive */
  heartbeatMs: number
  /** a client whose unsent data passes this is dropped (it does not read, or too slowly) */
  maxBufferBytes: number
  /** a client dropped for it */
  onDropped?: (stream: EventStream) => void
}

/** One event's wire form, made once whatever the number of streams it goes to. */
export function eventFrame (event: string, id: number | string, data: string): string {
  // `data` is JSON (no line breaks); the field names are ours.
  return `id: ${id}\nevent: ${event}\ndata: ${data}\n\n`
}

export class EventStream {
  closed = false
  private readonly onEnd: Array<() => void> = []
  private readonly heartbeat: NodeJS.Timeout
  private pending = ''

  constructor (readonly res: ServerResponse, private readonly owner: EventStreams, headers: Headers) {
    res.writeHead(200, {
      ...headers,
      'content-type': SSE_TYPE,
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // nginx and the like: pass events on as they come
      'x-accel-buffering': 'no'
    })
    res.socket?.setNoDelay(true)
    // The first bytes at once: the client knows the stream is open before the first event.
    res.write(': open\n\n')
    this.heartbeat = setInterval(() => { this.write(': heartbeat\n\n') }, owner.heartbeatMs)
    this.heartbeat.unref()
    res.on('close', () => { this.end() })
  }

  /** Called once when the stream ends, whichever side ends it. */
  onClose (fn: () => void): void {
    if (this.closed) fn()
    else this.onEnd.push(fn)
  }

  /**
   * Queues a frame, sent with the others of this turn of the event loop in one write (a read of the
   * index that found many changes is one write a client, not one per event). A client with more
   * than the buffer allows still unsent from before this turn is dropped: a burst of one turn alone,
   * which no client could have taken yet, drops nobody.
   */
  write (frame: string): void {
    if (this.closed) return
    if (this.pending === '') {
      if (this.res.writableLength > this.owner.maxBufferBytes) {
        this.owner.dropped(this)
        this.res.destroy()
        this.end()
        return
      }
      this.owner.queue(this)
    }
    this.pending += frame
  }

  /** @internal Sends what this turn queued. */
  flush (): void {
    const data = this.pending
    this.pending = ''
    if (!this.closed && data !== '') this.res.write(data)
  }

  /** Ends the stream (server shutdown): the client sees the response end. */
  close (): void {
    if (this.closed) return
    this.flush()
    this.res.end()
    this.end()
  }

  private end (): void {
    if (this.closed) return
    this.closed = true
    clearInterval(this.heartbeat)
    this.owner.forget(this)
    for (const fn of this.onEnd.splice(0)) fn()
  }
}

/** The open event streams of a process: each with its heartbeat and buffer limit; all ended at shutdown. */
export class EventStreams {
  readonly heartbeatMs: number
  readonly maxBufferBytes: number
  private readonly streams = new Set<EventStream>()
  private readonly onDropped: (stream: EventStream) => void
  droppedCount = 0
  private queued: EventStream[] = []

  constructor (options: EventStreamsOptions) {
    this.heartbeatMs = options.heartbeatMs
    this.maxBufferBytes = options.maxBufferBytes
    this.onDropped = options.onDropped ?? (() => {})
  }

  get size (): number {
    return this.streams.size
  }

  open (res: ServerResponse, headers: Headers): EventStream {
    const stream = new EventStream(res, this, headers)
    this.streams.add(stream)
    return stream
  }

  /** Ends every stream, so that a closing server is not held open by them. */
  closeAll (): void {
    for (const stream of [...this.streams]) stream.close()
  }

  /** @internal A stream with frames to send at the end of this turn. */
  queue (stream: EventStream): void {
    if (this.queued.length === 0) setImmediate(() => { this.flush() })
    this.queued.push(stream)
  }

  private flush (): void {
    const streams = this.queued
    this.queued = []
    for (const stream of streams) stream.flush()
  }

  /** @internal */
  forget (stream: EventStream): void {
    this.streams.delete(stream)
  }

  /** @internal */
  dropped (stream: EventStream): void {
    this.droppedCount++
    this.onDropped(stream)
  }
}

const frames = new WeakMap<object, string>()

/** A status event's frame (`event: status`, its id, the status JSON), made once per event. */
export function statusFrame (event: { id: number, status: unknown }): string {
  let frame = frames.get(event)
  if (frame === undefined) {
    frame = eventFrame('status', event.id, JSON.stringify(event.status))
    frames.set(event, frame)
  }
  return frame
}

import type { DynamoDBClient } from '@aws-sdk/client-dynamodb'
import type { Log } from '../log.js'

export interface OutageOptions {
  log: Pick<Log, 'error' | 'warn' | 'info'>
  /** how often, at most, a line with the counts so far is written while an outage lasts */
  summaryEveryMs?: number
  now?: () => number
}

const UNAVAILABLE = new Set([
  'ProvisionedThroughputExceededException', 'ThrottlingException', 'RequestLimitExceeded',
  'InternalServerError', 'ServiceUnavailable', 'TimeoutError', 'RequestTimeout', 'LimitExceededException',
  'ResourceNotFoundException'
])

/** An answer that says the table cannot be used now (network, 5xx, throttling, a missing table), not a bad request. */
export function isUnavailable (err: unknown): boolean {
  const e = err as { name?: string, code?: string, $metadata?: { httpStatusCode?: number } } | undefined
  if (e === undefined || e === null) return false
  const status = e.$metadata?.httpStatusCode
  const network = typeof e.code === 'string' && /^E[A-Z]+/.test(e.code)
  return UNAVAILABLE.has(e.name ?? '') || network || status === undefined || status >= 500
}

/**
 * Logs a DynamoDB outage as an operator wants to read it: one line when it starts (with the first
 * error), a line with the counts at most every `summaryEveryMs` while it lasts, and one when it
 * ends (with its length and how many calls failed). Every caller of the table (requests, the
 * consumer, health checks, cache refreshes) goes through the SDK client this watches, so none of
 * them needs to log a failure of its own; a 503 is logged at debug.
 */
export class OutageTracker {
  private startedAt: number | undefined
  private failed = 0
  private lastSummaryAt = 0
  private readonly summaryEveryMs: number
  private readonly now: () => number

  constructor (private readonly options: OutageOptions) {
    this.summaryEveryMs = options.summaryEveryMs ?? 10_000
    this.now = options.now ?? Date.now
  }

  get inOutage (): boolean { return this.startedAt !== undefined }

  failure (err: unknown, operation: string): void {
    const now = this.now()
    this.failed++
    if (this.startedAt === undefined) {
      this.startedAt = now
      this.lastSummaryAt = now
      this.options.log.error({ err, operation }, 'DynamoDB outage started: requests answer 503 and ingest retries until it ends')
    } else if (now - this.lastSummaryAt >= this.summaryEveryMs) {
      this.lastSummaryAt = now
      this.options.log.warn({ failed: this.failed, seconds: Math.round((now - this.startedAt) / 1000), operation }, 'DynamoDB outage continues')
    }
  }

  success (): void {
    if (this.startedAt === undefined) return
    const seconds = Math.round((this.now() - this.startedAt) / 100) / 10
    this.options.log.info({ failed: this.failed, seconds }, 'DynamoDB outage ended')
    this.startedAt = undefined
    this.failed = 0
  }

  /** Watches every command the client sends, after the SDK's own retries. */
  watch (client: DynamoDBClient): void {
    client.middlewareStack.add((next, context) => async (args) => {
      try {
        const output = await next(args)
        this.success()
        return output
      } catch (err) {
        if (isUnavailable(err)) this.failure(err, context.commandName ?? 'unknown')
        else this.success()
        throw err
      }
    }, { step: 'initialize', name: 'outageTracker', priority: 'high', override: true })
  }
}

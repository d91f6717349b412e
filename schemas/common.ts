import { Type, type Static } from '@sinclair/typebox'

export const ErrorSchema = Type.Object({
  statusCode: Type.Integer(),
  error: Type.String(),
  message: Type.String()
}, {
  $id: 'Error',
  title: 'Error',
  description: 'Every error answer has this shape; 5xx answers never carry internal details',
  examples: [{ statusCode: 404, error: 'Not Found', message: 'No readings for device "pc9"' }]
})
export type ErrorBody = Static<typeof ErrorSchema>

export const errorResponses = {
  400: Type.Ref(ErrorSchema),
  500: Type.Ref(ErrorSchema),
  503: Type.Ref(ErrorSchema)
}

/**
 * Why a component is in its state, from a fixed list: addresses and error messages go to the log,
 * never into the answer (it is served to anyone who can reach /health).
 */
export const HEALTH_REASONS = [
  'consuming', 'connecting', 'unreachable', 'timeout', 'stalled', 'stopping', 'stopped',
  'reading', 'no reading yet', 'reading failed', 'failed'
] as const
export type HealthReason = typeof HEALTH_REASONS[number]

export const ComponentStateSchema = Type.Object({
  status: Type.Union([Type.Literal('up'), Type.Literal('down'), Type.Literal('disabled')]),
  reason: Type.Optional(Type.Union(HEALTH_REASONS.map(r => Type.Literal(r)), {
    description: 'consuming: the Kafka consumer is connected and keeping up; connecting, stopping, stopped: its lifecycle; ' +
      'unreachable: the component refused or failed the check; timeout: no answer within 2 s (a frozen broker or table); ' +
      'stalled: the consumer has lag and has committed nothing for KAFKA_STALL_SECONDS; ' +
      'reading, no reading yet, reading failed: the collector; failed: any other error (logged)'
  }))
})
export type ComponentState = Static<typeof ComponentStateSchema>

export const HealthSchema = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  components: Type.Record(Type.String(), ComponentStateSchema, { description: 'State of each component: dynamodb, kafka, collector' })
}, {
  $id: 'Health',
  title: 'Health',
  examples: [{ status: 'ok', components: { dynamodb: { status: 'up' }, kafka: { status: 'up', reason: 'consuming' }, collector: { status: 'up', reason: 'reading' } } }]
})
export type Health = Static<typeof HealthSchema>

/**
 * The `from`/`to` query of the routes that take a time range (export, stats): ISO 8601 strings the
 * route parses (http/range.ts), `to` at most `maxDays` after `from`. `fromNote` says what `from`
 * means to the route beyond that.
 */
export function rangeQueryProperties (maxDays: number, fromNote = '') {
  return {
    from: Type.Optional(Type.String({
      minLength: 1,
      maxLength: 40,
      description: `First time of the range (ISO 8601, inclusive; without a zone: UTC)${fromNote}. Default: the 24 hours up to \`to\``,
      examples: ['2026-11-29T00:00:00Z']
    })),
    to: Type.Optional(Type.String({
      minLength: 1,
      maxLength: 40,
      description: `Last time of the range (ISO 8601, inclusive; a bare date is the whole day). Default: now. At most ${maxDays} days after \`from\``,
      examples: ['2026-11-30']
    }))
  }
}

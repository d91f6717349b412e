import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { rangeQueryProperties } from './common.js'
import { PC_FIELDS, RASPBERRY_FIELDS, type DeviceKind } from './devices.js'
import { ReadingSchema } from './readings.js'

/** The bucket lengths of the history rollups, finest first; each is a whole number of the one before. */
export const INTERVALS = ['1m', '5m', '15m', '1h', '6h', '1d'] as const
export type Interval = typeof INTERVALS[number]

/** Without `interval`: the finest one giving at most this many buckets over the range. */
export const DEFAULT_MAX_BUCKETS = 300
/** An explicit `interval` may not span more buckets than this over the range (a 400 names a coarser one). */
export const MAX_BUCKETS = 10_000
/** The longest range one request may cover: `to` at most this many days after `from`. */
export const MAX_STATS_DAYS = 400

/** Numeric reading fields that are no measurement: the model's threshold is a setting of the model, not of the device. */
const NOT_ROLLED_UP = new Set(['threshold'])

/**
 * Every numeric field of a stored reading but NOT_ROLLED_UP, in the Reading schema's order: the sensors of both kinds
 * and `probability` (`prediction` is counted as `stressed`). Derived from the schema, never listed by hand.
 */
export const ROLLUP_FIELDS: readonly string[] = Object.entries(ReadingSchema.properties)
  .filter(([name, schema]) => (schema as TSchema).type === 'number' && !NOT_ROLLED_UP.has(name))
  .map(([name]) => name)

const pcOnly = new Set<string>(PC_FIELDS)
const piOnly = new Set<string>(RASPBERRY_FIELDS)

/** The fields a device kind's readings can carry, in the schema's order (the CSV columns). */
export const ROLLUP_FIELDS_BY_KIND: Record<DeviceKind, readonly string[]> = {
  pc: ROLLUP_FIELDS.filter(f => !piOnly.has(f)),
  raspberry: ROLLUP_FIELDS.filter(f => !pcOnly.has(f))
}

export const STATS_FORMATS = ['json', 'csv'] as const
export type StatsFormat = typeof STATS_FORMATS[number]

export const StatsQuerySchema = Type.Object({
  ...rangeQueryProperties(MAX_STATS_DAYS, '; the bucket holding it is the first'),
  interval: Type.Optional(Type.Unsafe<Interval>({
    type: 'string',
    enum: [...INTERVALS],
    description: `Bucket length. Default: the finest giving at most ${DEFAULT_MAX_BUCKETS} buckets over the range (else 1d); ` +
      `an explicit one may span at most ${MAX_BUCKETS} buckets`
  })),
  format: Type.Optional(Type.Unsafe<StatsFormat>({
    type: 'string',
    enum: [...STATS_FORMATS],
    description: '`json` or `csv` (text/csv). Default: `csv` when `Accept` prefers text/csv, else `json`'
  }))
}, { additionalProperties: false })
export type StatsQuery = Static<typeof StatsQuerySchema>

export const FieldStatsSchema = Type.Object({
  min: Type.Number(),
  max: Type.Number(),
  avg: Type.Number({ description: 'Mean over the bucket\'s readings that carry the field' })
}, { $id: 'FieldStats', title: 'FieldStats', description: 'One field\'s minimum, maximum and mean in a bucket' })

export const StatsBucketSchema = Type.Object({
  start: Type.String({ description: 'Start of the bucket, ISO 8601 UTC (a multiple of the interval since the epoch)' }),
  count: Type.Integer({ minimum: 1, description: 'Readings in the bucket' }),
  stressed: Type.Integer({ minimum: 0, description: 'Readings predicted stressed (prediction 1)' }),
  fields: Type.Object(
    Object.fromEntries(ROLLUP_FIELDS.map(f => [f, Type.Optional(Type.Ref(FieldStatsSchema))])),
    { additionalProperties: false, description: 'Every numeric field at least one reading of the bucket carries' }
  )
}, { $id: 'StatsBucket', title: 'StatsBucket' })
export type StatsBucket = Static<typeof StatsBucketSchema>

export const StatsSchema = Type.Object({
  device: Type.String(),
  kind: Type.Unsafe<DeviceKind>({ type: 'string', enum: ['pc', 'raspberry'] }),
  interval: Type.Unsafe<Interval>({ type: 'string', enum: [...INTERVALS] }),
  from: Type.String({ description: 'The range asked for (defaults applied), ISO 8601 UTC' }),
  to: Type.String(),
  buckets: Type.Array(Type.Ref(StatsBucketSchema), { description: 'Buckets with readings, oldest first (buckets without any are left out)' })
}, {
  $id: 'Stats',
  title: 'Stats',
  description: 'A device\'s readings summarised per time bucket (history rollups)',
  examples: [{
    device: 'pc1',
    kind: 'pc',
    interval: '1h',
    from: '2026-11-29T00:00:00.000Z',
    to: '2026-11-29T23:59:59.999Z',
    buckets: [{ start: '2026-11-29T00:00:00.000Z', count: 720, stressed: 3, fields: { TemperatureCPUPackage: { min: 41, max: 78.5, avg: 52.3 } } }]
  }]
})
export type Stats = Static<typeof StatsSchema>

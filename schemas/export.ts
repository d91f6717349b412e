import { Type, type Static } from '@sinclair/typebox'
import { rangeQueryProperties } from './common.js'
import { PC_FIELDS, RASPBERRY_FIELDS, type DeviceKind } from './devices.js'
import { ReadingSchema, ThrottledFlagsSchema } from './readings.js'

/** The longest range one export may cover: `to` at most this many days after `from`. */
export const MAX_EXPORT_DAYS = 400

export const EXPORT_FORMATS = ['ndjson', 'csv'] as const
export type ExportFormat = typeof EXPORT_FORMATS[number]

export const ExportQuerySchema = Type.Object({
  ...rangeQueryProperties(MAX_EXPORT_DAYS),
  // A string enum: any other value is a 400 naming querystring/format and the allowed values.
  format: Type.Optional(Type.Unsafe<ExportFormat>({
    type: 'string',
    enum: [...EXPORT_FORMATS],
    description: '`ndjson` (application/x-ndjson) or `csv` (text/csv). Default: `csv` when `Accept` prefers text/csv, else `ndjson`'
  }))
}, { additionalProperties: false })
export type ExportQuery = Static<typeof ExportQuerySchema>

/** A reading's fields as served, in the Reading schema's order (storage attributes are not among them). */
export const READING_FIELDS = Object.keys(ReadingSchema.properties) as ReadonlyArray<keyof typeof ReadingSchema.properties>
const FLAG_NAMES = Object.keys(ThrottledFlagsSchema.properties)

const pcOnly = new Set<string>(PC_FIELDS)
const piOnly = new Set<string>([...RASPBERRY_FIELDS, 'throttled_flags'])

/**
 * The CSV columns of a device kind: every Reading field a reading of that kind can carry, in the
 * Reading schema's order (base fields, the kind's sensors, then the prediction). `throttled_flags`
 * is one column holding its JSON object (a quoted cell), as the JSON answers carry it.
 */
export const EXPORT_COLUMNS: Record<DeviceKind, readonly string[]> = {
  pc: READING_FIELDS.filter(f => !piOnly.has(f)),
  raspberry: READING_FIELDS.filter(f => !pcOnly.has(f))
}

/**
 * A stored item as one exported reading: the Reading fields it has (absent and null ones left
 * out, as the JSON answers do), in the schema's order, `throttled_flags` in its schema's order.
 */
export function exportedReading (item: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const field of READING_FIELDS) {
    const value = item[field]
    if (value === undefined || value === null) continue
    if (field === 'throttled_flags' && typeof value === 'object') {
      const flags: Record<string, unknown> = {}
      for (const name of FLAG_NAMES) if ((value as Record<string, unknown>)[name] !== undefined) flags[name] = (value as Record<string, unknown>)[name]
      out[field] = flags
    } else {
      out[field] = value
    }
  }
  return out
}

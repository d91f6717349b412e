import { Type, type Static, type TOptional, type TSchema, type TUnsafe } from '@sinclair/typebox'
import { DeviceIdSchema, PcSensorFields, RaspberrySensorFields, ReadingBaseFields } from './devices.js'

type StoredField<F> = F extends TOptional<infer U> ? U extends { anyOf: Array<infer B> } ? TOptional<Exclude<B, { type: 'null' }> & TSchema> : F : F

/**
 * A device model's sensor fields as stored and served: ingest drops nulls (a sensor the host lacks
 * is absent), so a stored field is the non-null branch with the model's description and example.
 * Plain types also serialise without the per-field branch tests an `anyOf` costs.
 */
function stored<T extends Record<string, TSchema>> (fields: T): { [K in keyof T]: StoredField<T[K]> } {
  const out: Record<string, TSchema> = {}
  for (const [name, field] of Object.entries(fields)) {
    const { anyOf, description, examples } = field as TSchema & { anyOf: TSchema[] }
    const branch = anyOf.find(b => b.type !== 'null')!
    out[name] = Type.Optional({ ...branch, description, examples } as TSchema)
  }
  return out as { [K in keyof T]: StoredField<T[K]> }
}

export const ThrottledFlagsSchema = Type.Object({
  under_voltage: Type.Boolean({ description: 'bit 0: under-voltage now' }),
  arm_frequency_capped: Type.Boolean({ description: 'bit 1: ARM frequency capped now' }),
  throttled: Type.Boolean({ description: 'bit 2: throttled now' }),
  soft_temperature_limit: Type.Boolean({ description: 'bit 3: soft temperature limit active now' }),
  under_voltage_occurred: Type.Boolean({ description: 'bit 16: under-voltage has occurred since boot' }),
  arm_frequency_capped_occurred: Type.Boolean({ description: 'bit 17: ARM frequency capping has occurred since boot' }),
  throttled_occurred: Type.Boolean({ description: 'bit 18: throttling has occurred since boot' }),
  soft_temperature_limit_occurred: Type.Boolean({ description: 'bit 19: soft temperature limit has occurred since boot' })
}, { $id: 'ThrottledFlags', title: 'ThrottledFlags', description: 'The Raspberry Pi `throttled` bit mask, decoded' })
export type ThrottledFlags = Static<typeof ThrottledFlagsSchema>

export const ReasonSchema = Type.Object({
  field: Type.String({ description: 'The reading field the reason rests on' }),
  value: Type.Union([Type.Number(), Type.String()], { description: 'That field\'s value in the reading' }),
  effect: Type.String({ description: 'Its weight: signed log-odds against a healthy reading for the model (e.g. "+3.1"), or the hardware\'s report in words' })
}, { $id: 'Reason', title: 'Reason', description: 'One contribution to a verdict' })
export interface Reason { field: string, value: number | string, effect: string }

/** Why a verdict is what it is; optional, so readings stored before they existed stay valid. */
export const VerdictFields = {
  source: Type.Optional(Type.Unsafe<'hardware' | 'model'>({
    type: 'string',
    enum: ['hardware', 'model'],
    description: '`hardware` when the device\'s own throttling report decided (Pi `throttled` "now" bits, ThrottleEventsCPU > 0, a GPU slowdown reason), `model` otherwise'
  })),
  // The static types are declared, so that Reading's type stays shallow enough for tsc.
  reasons: Type.Optional(Type.Array(Type.Ref(ReasonSchema), { description: 'The top contributions to the verdict, largest first' }) as unknown as TUnsafe<Reason[]>),
  missing: Type.Optional(Type.Array(Type.String(), {
    description: 'Model inputs the reading lacked; they are imputed with healthy values and never raise the probability'
  }) as unknown as TUnsafe<string[]>),
  // Last, so that the CSV export gains a column at the end (added after source, reasons and missing).
  threshold: Type.Optional(Type.Number({
    minimum: 0,
    maximum: 1,
    description: 'When the model decided (`source: "model"`): the model\'s threshold at the time; stressed means `probability` above it. Absent for hardware evidence and on readings stored before it existed',
    examples: [0.3]
  }))
}

export const PredictionFields = {
  prediction: Type.Unsafe<0 | 1>({ type: 'integer', enum: [0, 1], description: '1 when the device was predicted stressed (throttling or burning out)' }),
  probability: Type.Number({ minimum: 0, maximum: 1, description: 'Probability that the device is stressed' })
}

// One flat shape for both kinds: absent sensors are skipped when serialised, as the original did,
// and a flat object serialises much faster than a union.
export const ReadingSchema = Type.Object({
  ...ReadingBaseFields,
  kind: Type.Unsafe<'pc' | 'raspberry'>({ type: 'string', enum: ['pc', 'raspberry'], description: 'Device kind' }),
  ...stored(PcSensorFields),
  ...stored(RaspberrySensorFields),
  throttled_flags: Type.Optional(Type.Ref(ThrottledFlagsSchema)),
  ...PredictionFields,
  ...VerdictFields
}, {
  $id: 'Reading',
  title: 'Reading',
  description: 'A stored reading: the device model\'s fields (see PcReading and RaspberryReading) plus the prediction. `loading_datetime` is ISO 8601 UTC.'
})
export type Reading = Static<typeof ReadingSchema>

export const ReadingListSchema = Type.Array(Type.Ref(ReadingSchema), {
  $id: 'ReadingList',
  description: 'Readings, newest first'
})

export const AllReadingsSchema = Type.Object({
  Items: Type.Array(Type.Ref(ReadingSchema), { description: 'Readings of all devices, newest first' }),
  Count: Type.Integer({ description: 'Number of items in this page' }),
  next_cursor: Type.Optional(Type.String({ description: 'Pass as `cursor` to get the next page; absent on the last page' }))
}, { $id: 'AllReadings', title: 'AllReadings', description: 'A page of readings of all devices (the original `Scan` response shape)' })

export const StatusMessage = {
  stressed: 'The device is stressed',
  ok: 'The device is OK',
  stale: 'The device is not reporting'
} as const

export const StatusSchema = Type.Object({
  // Response-only: a string enum serialises without the branch tests an anyOf of literals costs.
  msg: Type.Unsafe<typeof StatusMessage[keyof typeof StatusMessage]>({
    type: 'string',
    enum: [StatusMessage.stressed, StatusMessage.ok, StatusMessage.stale],
    description: 'The original status text; "The device is not reporting" when the newest reading is stale'
  }),
  device: DeviceIdSchema,
  kind: Type.Unsafe<'pc' | 'raspberry'>({ type: 'string', enum: ['pc', 'raspberry'] }),
  stressed: Type.Boolean({ description: 'The newest reading\'s prediction' }),
  probability: Type.Number({ minimum: 0, maximum: 1 }),
  loading_datetime: Type.String({ description: 'Time of the newest reading, ISO 8601 UTC' }),
  uuid: Type.String({ description: 'uuid of the newest reading' }),
  age_seconds: Type.Number({ description: 'Seconds since the newest reading was taken' }),
  stale: Type.Boolean({ description: 'true when the newest reading is older than the staleness window' }),
  throttled_flags: Type.Optional(Type.Ref(ThrottledFlagsSchema)),
  ...VerdictFields
}, {
  $id: 'Status',
  title: 'Status',
  description: 'The latest status of a device',
  examples: [{
    msg: 'The device is OK',
    device: 'pc1',
    kind: 'pc',
    stressed: false,
    probability: 0.0312,
    loading_datetime: '2026-11-29T10:15:00.000Z',
    uuid: '0f8e5c2a-3b7d-4c1e-9a52-6d4b8e1f2a3c',
    age_seconds: 2.4,
    stale: false,
    source: 'model',
    reasons: [{ field: 'TemperatureCPUPackage', value: 48, effect: '-2.6' }, { field: 'PowerCPUPackage', value: 30, effect: '-1.2' }],
    missing: [],
    threshold: 0.3
  }]
})
export type Status = Static<typeof StatusSchema>

export const DEFAULT_PAGE_SIZE = 100

export const ListQuerySchema = Type.Object({
  // Optional: the OpenAPI document must not mark it required (Ajv fills the default in).
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: DEFAULT_PAGE_SIZE, description: 'Page size, in plain decimal digits' })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'Opaque cursor from the previous page' })),
  from: Type.Optional(Type.String({ minLength: 1, maxLength: 40, description: 'Only readings at or after this time (ISO 8601)', examples: ['2026-11-29T00:00:00Z'] })),
  to: Type.Optional(Type.String({ minLength: 1, maxLength: 40, description: 'Only readings at or before this time (ISO 8601)', examples: ['2026-11-30'] }))
}, { additionalProperties: false })
export type ListQuery = Static<typeof ListQuerySchema>

export const DeviceParamsSchema = Type.Object({ device: DeviceIdSchema })

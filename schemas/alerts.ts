import { Type, type Static } from '@sinclair/typebox'
import { DEVICE_ID_PATTERN } from './devices.js'
import { StatusSchema } from './readings.js'

export const ALERTS_PAGE_MAX = 1000
export const ALERTS_PAGE_DEFAULT = 100

export const AlertsQuerySchema = Type.Object({
  state: Type.Optional(Type.Unsafe<'firing' | 'resolved'>({ type: 'string', enum: ['firing', 'resolved'], description: 'Only episodes in this state. Default: both' })),
  device: Type.Optional(Type.String({ pattern: DEVICE_ID_PATTERN, description: 'Only this device\'s episodes', examples: ['pc1'] })),
  rule: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$', description: 'Only this rule\'s episodes (its name in ALERTS_FILE)', examples: ['stressed'] })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: ALERTS_PAGE_MAX, default: ALERTS_PAGE_DEFAULT, description: 'Page size, in plain decimal digits' })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'Opaque cursor from the previous page (`next_cursor`), with the same filters' }))
}, { additionalProperties: false })
export type AlertsQueryString = Static<typeof AlertsQuerySchema>

export const AlertSchema = Type.Object({
  id: Type.String({ description: 'The episode\'s id' }),
  rule: Type.String({ description: 'The rule\'s name in ALERTS_FILE' }),
  device: Type.String({ pattern: DEVICE_ID_PATTERN }),
  state: Type.Unsafe<'firing' | 'resolved'>({ type: 'string', enum: ['firing', 'resolved'] }),
  since: Type.String({ description: 'When the condition began to hold, ISO 8601 UTC' }),
  resolved_at: Type.Optional(Type.String({ description: 'When the episode resolved, ISO 8601 UTC (resolved episodes only)' })),
  last_status: Type.Ref(StatusSchema, { description: 'The device\'s status at the episode\'s latest transition' })
}, { $id: 'Alert', title: 'Alert', description: 'One alert episode of one rule and one device' })

export const AlertsSchema = Type.Object({
  alerts: Type.Array(Type.Ref(AlertSchema)),
  next_cursor: Type.Optional(Type.String({ description: 'Pass back as `cursor` for the next page; absent on the last page' }))
}, {
  $id: 'Alerts',
  title: 'Alerts',
  description: 'Alert episodes, newest first (by `since`)',
  examples: [{ alerts: [] }]
})

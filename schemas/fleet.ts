import { Type, type Static } from '@sinclair/typebox'
import { StatusSchema } from './readings.js'

/** The most devices one page of GET /fleet holds, and the default. */
export const FLEET_PAGE_MAX = 1000
export const FLEET_PAGE_DEFAULT = 100

export const FLEET_FORMATS = ['json', 'csv'] as const
export type FleetFormat = typeof FLEET_FORMATS[number]

export const FleetQuerySchema = Type.Object({
  state: Type.Optional(Type.String({
    pattern: '^(ok|stressed|stale)(,(ok|stressed|stale))*$',
    maxLength: 64,
    description: 'Only devices in this state, or in any of a comma-separated list: `ok`, `stressed` (newest prediction 1), `stale` (newest reading older than the staleness window). Default: all',
    examples: ['stressed,stale']
  })),
  kind: Type.Optional(Type.Unsafe<'pc' | 'raspberry'>({ type: 'string', enum: ['pc', 'raspberry'], description: 'Only devices of this kind (the counts too)' })),
  sort: Type.Optional(Type.Unsafe<'risk' | 'device'>({
    type: 'string',
    enum: ['risk', 'device'],
    description: '`risk` (default): stale and stressed devices first, then the highest probability, then the device id; `device`: by device id'
  })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: FLEET_PAGE_MAX, default: FLEET_PAGE_DEFAULT, description: 'Page size, in plain decimal digits' })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'Opaque cursor from the previous page (`next_cursor`), with the same `sort`' })),
  format: Type.Optional(Type.Unsafe<FleetFormat>({
    type: 'string',
    enum: [...FLEET_FORMATS],
    description: '`json` or `csv` (text/csv). Default: `csv` when `Accept` prefers text/csv, else `json`'
  }))
}, { additionalProperties: false })
export type FleetQueryString = Static<typeof FleetQuerySchema>

export const FleetCountsSchema = Type.Object({
  total: Type.Integer({ description: 'Devices of the kind asked (every kind when none), whatever their state: ok + stressed + stale' }),
  ok: Type.Integer(),
  stressed: Type.Integer(),
  stale: Type.Integer()
}, { description: 'Over every device of the kind asked, not only this page, and not filtered by `state`' })

export const FleetSchema = Type.Object({
  devices: Type.Array(Type.Ref(StatusSchema), { description: 'This page\'s devices, each as GET /devices/{device}/status answers' }),
  counts: FleetCountsSchema,
  next_cursor: Type.Optional(Type.String({ description: 'Pass as `cursor` to get the next page; absent on the last page' }))
}, {
  $id: 'Fleet',
  title: 'Fleet',
  description: 'Every device that has sent a reading, with its latest status',
  examples: [{
    devices: [{
      msg: 'The device is stressed',
      device: 'pc7',
      kind: 'pc',
      stressed: true,
      probability: 0.91,
      loading_datetime: '2026-11-29T10:15:00.000Z',
      uuid: '0f8e5c2a-3b7d-4c1e-9a52-6d4b8e1f2a3c',
      age_seconds: 2.4,
      stale: false
    }],
    counts: { total: 12, ok: 10, stressed: 1, stale: 1 },
    next_cursor: 'WyJyIiwwLDAuOTEsInBjNyJd'
  }]
})
export type Fleet = Static<typeof FleetSchema>

/** The CSV columns of GET /fleet?format=csv: a status a row, with its state. */
export const FLEET_CSV_COLUMNS = [
  'device', 'kind', 'state', 'msg', 'stressed', 'probability', 'loading_datetime', 'uuid', 'age_seconds', 'stale', 'throttled_flags'
] as const

/** The events routes' 200 (the two differ only in which devices they carry). */
export const eventStreamResponse = (what: string) => ({
  description: `A stream that never ends by itself (text/event-stream): \`event: status\`, an \`id\` and \`data\` (the Status JSON, as GET /devices/{device}/status answers) each time ${what} gets a newer reading or turns stale; ` +
    'a comment line at least every `SSE_HEARTBEAT_SECONDS`. While the table does not answer the stream stays open (heartbeats go on) and events resume when it answers again. ' +
    'A client that does not take the events as fast as they come (more than `SSE_BUFFER_KB` unsent) is disconnected.',
  content: { 'text/event-stream': { schema: Type.String({ description: 'id: <n>\\nevent: status\\ndata: <Status JSON>\\n\\n, and `: heartbeat` comments' }) } }
})

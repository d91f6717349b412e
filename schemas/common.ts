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

export const ComponentStateSchema = Type.Object({
  status: Type.Union([Type.Literal('up'), Type.Literal('down'), Type.Literal('disabled')]),
  detail: Type.Optional(Type.String())
})

export const HealthSchema = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  components: Type.Record(Type.String(), ComponentStateSchema, { description: 'State of each component: dynamodb, kafka, collector' })
}, {
  $id: 'Health',
  title: 'Health',
  examples: [{ status: 'ok', components: { dynamodb: { status: 'up' }, kafka: { status: 'disabled' }, collector: { status: 'up' } } }]
})
export type Health = Static<typeof HealthSchema>

import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { PcReadingSchema, RaspberryReadingSchema } from '../../schemas/devices.js'
import { AllReadingsSchema, ReadingListSchema, ReadingSchema, ReasonSchema, StatusSchema, ThrottledFlagsSchema } from '../../schemas/readings.js'
import { ErrorSchema, HealthSchema } from '../../schemas/common.js'
import { FieldStatsSchema, StatsBucketSchema, StatsSchema } from '../../schemas/stats.js'
import { FleetSchema } from '../../schemas/fleet.js'
import { AlertSchema, AlertsSchema } from '../../schemas/alerts.js'

// Shared schemas are added once here, so routes can $ref them and the OpenAPI document (where the
// role serves one) names them as components: the device models are documented, not just used.
export const sharedSchemas = [
  ThrottledFlagsSchema, ReasonSchema, PcReadingSchema, RaspberryReadingSchema, ReadingSchema, ReadingListSchema,
  AllReadingsSchema, StatusSchema, FleetSchema, ErrorSchema, HealthSchema,
  FieldStatsSchema, StatsBucketSchema, StatsSchema, AlertSchema, AlertsSchema
]

export default fp(async function schemas (fastify: FastifyInstance) {
  for (const schema of sharedSchemas) fastify.addSchema(schema)
}, { name: 'schemas' })

import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../app.js'
import { createDynamo, type Dynamo } from '../../storage/client.js'
import { ensureTable } from '../../storage/table.js'
import { OutageTracker } from '../../storage/outage.js'

declare module 'fastify' {
  interface FastifyInstance {
    dynamo: Dynamo
  }
}

export default fp(async function dynamodb (fastify: FastifyInstance, opts: AppOptions) {
  const { config } = fastify
  const dynamo = opts.dynamo ?? await createDynamo({
    mode: config.dynamoMode,
    endpoint: config.DYNAMODB_ENDPOINT,
    region: config.AWS_REGION,
    requestTimeoutMs: config.DYNAMODB_TIMEOUT_MS,
    dataDir: config.dataDir
  })
  if (opts.dynamo === undefined) fastify.addHook('onClose', async () => { await dynamo.close() })
  // Checked at boot: a missing table is a deployment error an operator must see at once.
  // In AWS the table belongs to Terraform; locally it is created on first start.
  const table = await ensureTable(dynamo.client, config.DYNAMODB_TABLE, dynamo.mode !== 'aws', config.RETENTION_DAYS !== undefined)
  fastify.log.info({ endpoint: dynamo.endpoint, mode: dynamo.mode, table: config.DYNAMODB_TABLE, state: table }, 'DynamoDB ready')
  // From here on an outage is logged once when it starts and once when it ends; its 503s at debug.
  new OutageTracker({ log: fastify.log.child({ component: 'dynamodb' }) }).watch(dynamo.client)
  fastify.decorate('dynamo', dynamo)
}, { name: 'dynamodb', dependencies: ['env'] })

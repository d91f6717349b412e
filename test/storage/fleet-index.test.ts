import t from 'tap'
import { CreateTableCommand, DescribeTableCommand, ListTablesCommand, waitUntilTableExists } from '@aws-sdk/client-dynamodb'
import { PutCommand } from '@aws-sdk/lib-dynamodb'
import { build, dynalite, dynamoClient, pcReading, uniqueTable } from '../helper.js'
import { ensureTable, fleetShard, FLEET_INDEX, FLEET_SHARDS, STATUS_SK } from '../../storage/table.js'
import { ReadingsRepository } from '../../storage/readings-repository.js'

// The sparse fleet index (docs/adr/0005-fleet-access-path.md): status items only, 16 shards; a
// local table made before it gains it at start, its data kept; an AWS table without it is refused.

t.test('shards: f0 to f15, stable per device, spread over every shard', async t => {
  t.equal(FLEET_SHARDS.length, 16)
  t.equal(fleetShard('pc1'), fleetShard('pc1'))
  const used = new Set(Array.from({ length: 1000 }, (_, i) => fleetShard(`device-${i}`)))
  t.same([...used].sort(), [...FLEET_SHARDS].sort(), '1,000 devices use every shard')
})

t.test('only status items carry the shard: the index holds one item per device', async t => {
  const app = await build(t)
  await app.ingest.ingest([pcReading({ device: 'a' }), pcReading({ device: 'a' }), pcReading({ device: 'b' })])
  const repository = new ReadingsRepository({ doc: app.dynamo.doc, table: app.config.DYNAMODB_TABLE })
  const statuses = await repository.fleetStatuses()
  t.same(statuses.map(s => s.device).sort(), ['a', 'b'])
  const readings = (await app.inject('/devices/a')).json()
  t.equal(readings.length, 2)
  t.notOk('fleet' in readings[0], 'readings are not in the index')
})

t.test('a local table made before the index: migrated at start, every item kept, old statuses in the fleet', async t => {
  const db = await dynalite(t)
  const dynamo = await dynamoClient(t, db.endpoint)
  const table = uniqueTable()
  // the table as the service made it before issue 16: no fleet index, statuses without `fleet`
  await dynamo.client.send(new CreateTableCommand({
    TableName: table,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [{ AttributeName: 'device', AttributeType: 'S' }, { AttributeName: 'sk', AttributeType: 'S' }, { AttributeName: 'feed', AttributeType: 'S' }],
    KeySchema: [{ AttributeName: 'device', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' }],
    GlobalSecondaryIndexes: [{
      IndexName: 'all-readings-index',
      KeySchema: [{ AttributeName: 'feed', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' }],
      Projection: { ProjectionType: 'ALL' }
    }]
  }))
  await waitUntilTableExists({ client: dynamo.client, maxWaitTime: 20, minDelay: 1, maxDelay: 2 }, { TableName: table })
  const old = pcReading({ device: 'legacy', loading_datetime: '2026-11-01T10:00:00.000Z' }) as Record<string, unknown>
  const sk = `2026-11-01T10:00:00.000Z#${String(old.uuid)}`
  await dynamo.doc.send(new PutCommand({ TableName: table, Item: { ...old, kind: 'pc', prediction: 0, probability: 0.1, sk, feed: 'all' } }))
  await dynamo.doc.send(new PutCommand({
    TableName: table,
    Item: { device: 'legacy', sk: STATUS_SK, latest_sk: sk, rev: 'x.1', kind: 'pc', uuid: old.uuid, loading_datetime: old.loading_datetime, prediction: 0, probability: 0.1 }
  }))

  await t.rejects(ensureTable(dynamo.client, table, false), { message: /lacks the index "fleet-index".*Terraform/ }, 'AWS (no create): a clear error')

  const app = await build(t, { env: { DYNAMODB_ENDPOINT: db.endpoint, DYNAMODB_TABLE: table } })
  const described = await dynamo.client.send(new DescribeTableCommand({ TableName: table }))
  t.ok(described.Table?.GlobalSecondaryIndexes?.some(i => i.IndexName === FLEET_INDEX.name), 'the table has the index now')
  const fleet = (await app.inject('/fleet')).json()
  t.same(fleet.devices.map((d: { device: string }) => d.device), ['legacy'], 'the status written before is in the fleet')
  t.equal((await app.inject('/devices/legacy')).json()[0].uuid, old.uuid, 'its reading kept')
  t.equal((await app.inject('/devices/legacy/status')).json().uuid, old.uuid)
  const tables = (await dynamo.client.send(new ListTablesCommand({}))).TableNames ?? []
  t.notOk(tables.some(n => n.startsWith(`${table}.`)), 'the copy made for the migration is gone')
  t.equal(await ensureTable(dynamo.client, table, true), 'exists', 'the next start finds it as it should be')
})

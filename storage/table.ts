import { createHash } from 'node:crypto'
import {
  BatchWriteItemCommand, CreateTableCommand, DeleteTableCommand, DescribeTableCommand, ResourceNotFoundException, ScanCommand,
  UpdateTimeToLiveCommand, waitUntilTableExists, waitUntilTableNotExists, type AttributeValue, type DynamoDBClient, type WriteRequest
} from '@aws-sdk/client-dynamodb'
import { QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'

// Key design (docs/adr/0002-table-key-design.md):
//   readings:  device (hash) + sk = `<ISO time>#<uuid>` (range)  -> one device's readings in time order
//   all:       GSI all-readings-index, feed = "all" (hash) + sk   -> every device's readings in time order
//   status:    device + sk = "status"                             -> a device's latest status, one GetItem
//   claim:     device + sk = `uuid#<uuid>` (no feed: not indexed)  -> which reading holds that uuid
//   fleet:     GSI fleet-index, fleet = `f<0..15>` (hash) + device  -> every status item, 16 shards
//              (sparse: only status items carry `fleet`; docs/adr/0005-fleet-access-path.md)
// The same reading always maps to the same key, so a redelivered reading overwrites itself.
export const TABLE_KEYS = { hash: 'device', range: 'sk' } as const
export const ALL_INDEX = { name: 'all-readings-index', hash: 'feed', range: 'sk', value: 'all' } as const
export const STATUS_SK = 'status'
export const FLEET_INDEX = { name: 'fleet-index', hash: 'fleet', range: 'device', shards: 16 } as const

/** The fleet shard of a device (`f0`…`f15`): a hash of its id, so shards fill evenly whatever the names. */
export function fleetShard (device: string): string {
  return `f${createHash('sha1').update(device).digest()[0]! % FLEET_INDEX.shards}`
}

/** Every shard's hash key, `f0` to `f15`. */
export const FLEET_SHARDS: readonly string[] = Array.from({ length: FLEET_INDEX.shards }, (_, i) => `f${i}`)
export const TTL_ATTRIBUTE = 'expires_at'

export function readingSk (iso: string, uuid: string): string {
  return `${iso}#${uuid.toLowerCase()}`
}

/** The times a reading key can hold: `parseTime` accepts years 1970 to 9999 (4-digit ISO years sort as time). */
export const READING_TIME_MAX = '9999-12-31T23:59:59.999Z'

/**
 * Every reading sort key (`<ISO time>#<uuid>`) lies in this range: from below any 4-digit year up to
 * the latest time's key (`~` sorts after the uuid's characters); other items of a device ("status",
 * keys starting with a letter) sort after it.
 */
export const READING_SK_RANGE = { lo: '0', hi: `${READING_TIME_MAX}#~` } as const

/** A uuid's claim item: sorts after "status" and every reading, so reading queries never see it. */
export const CLAIM_SK_PREFIX = 'uuid#'

export function claimSk (uuid: string): string {
  return `${CLAIM_SK_PREFIX}${uuid.toLowerCase()}`
}

/**
 * Every page of one device's reading items (its status excluded), oldest first, following
 * `LastEvaluatedKey`; `count` asks DynamoDB for the number of items only. For checks and the
 * bench: the service's own reads page by cursor instead.
 */
export async function * deviceReadingPages (
  doc: DynamoDBDocumentClient, table: string, device: string, { count = false } = {}
): AsyncGenerator<{ items: Array<Record<string, unknown>>, count: number }> {
  let start: Record<string, unknown> | undefined
  do {
    const out = await doc.send(new QueryCommand({
      TableName: table,
      KeyConditionExpression: 'device = :d AND sk BETWEEN :lo AND :hi',
      ExpressionAttributeValues: { ':d': device, ':lo': READING_SK_RANGE.lo, ':hi': READING_SK_RANGE.hi },
      ...(count ? { Select: 'COUNT' as const } : {}),
      ExclusiveStartKey: start
    }))
    yield { items: out.Items ?? [], count: out.Count ?? 0 }
    start = out.LastEvaluatedKey
  } while (start !== undefined)
}

export async function createTable (client: DynamoDBClient, table: string): Promise<void> {
  await client.send(new CreateTableCommand({
    TableName: table,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: TABLE_KEYS.hash, AttributeType: 'S' },
      { AttributeName: TABLE_KEYS.range, AttributeType: 'S' },
      { AttributeName: ALL_INDEX.hash, AttributeType: 'S' },
      { AttributeName: FLEET_INDEX.hash, AttributeType: 'S' }
    ],
    KeySchema: [
      { AttributeName: TABLE_KEYS.hash, KeyType: 'HASH' },
      { AttributeName: TABLE_KEYS.range, KeyType: 'RANGE' }
    ],
    GlobalSecondaryIndexes: [{
      IndexName: ALL_INDEX.name,
      KeySchema: [
        { AttributeName: ALL_INDEX.hash, KeyType: 'HASH' },
        { AttributeName: ALL_INDEX.range, KeyType: 'RANGE' }
      ],
      Projection: { ProjectionType: 'ALL' }
    }, {
      IndexName: FLEET_INDEX.name,
      KeySchema: [
        { AttributeName: FLEET_INDEX.hash, KeyType: 'HASH' },
        { AttributeName: FLEET_INDEX.range, KeyType: 'RANGE' }
      ],
      // Status items only (sparse): ALL costs no more than a list of their attributes, and a status
      // attribute added later needs no new index.
      Projection: { ProjectionType: 'ALL' }
    }]
  }))
  await waitUntilTableExists({ client, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { TableName: table })
}

/**
 * Checks that the table exists with the keys and index the service needs; creates it when
 * `create` is set (embedded and local endpoints), otherwise fails with a message an operator can act on.
 */
export async function ensureTable (client: DynamoDBClient, table: string, create: boolean, ttl = false): Promise<'exists' | 'created' | 'migrated'> {
  let described
  try {
    described = await client.send(new DescribeTableCommand({ TableName: table }))
  } catch (err) {
    if (!(err instanceof ResourceNotFoundException)) throw err
    if (!create) {
      throw new Error(`DynamoDB table "${table}" does not exist: create it with the Terraform in deploy/ or set DYNAMODB_TABLE`)
    }
    await createTable(client, table)
    if (ttl) await enableTtl(client, table)
    // A migration stopped after the table was dropped: its copy holds the data.
    if (await exists(client, backupName(table))) {
      await copyTable(client, backupName(table), table)
      await dropTable(client, backupName(table))
      return 'migrated'
    }
    return 'created'
  }
  const keys = described.Table?.KeySchema ?? []
  const hash = keys.find(k => k.KeyType === 'HASH')?.AttributeName
  const range = keys.find(k => k.KeyType === 'RANGE')?.AttributeName
  const index = described.Table?.GlobalSecondaryIndexes?.find(i => i.IndexName === ALL_INDEX.name)
  if (hash !== TABLE_KEYS.hash || range !== TABLE_KEYS.range || index === undefined) {
    throw new Error(`DynamoDB table "${table}" has another key design: expected hash "${TABLE_KEYS.hash}", range "${TABLE_KEYS.range}" and index "${ALL_INDEX.name}"`)
  }
  if (described.Table?.GlobalSecondaryIndexes?.some(i => i.IndexName === FLEET_INDEX.name) !== true) {
    if (!create) {
      throw new Error(`DynamoDB table "${table}" lacks the index "${FLEET_INDEX.name}" (GET /fleet): apply the Terraform in deploy/ ` +
        '(docs/adr/0005-fleet-access-path.md says how to backfill the status items written before it)')
    }
    await addFleetIndex(client, table, ttl)
    return 'migrated'
  }
  // Created again with the index, stopped while the copy came back: finish it.
  if (create && await exists(client, backupName(table))) {
    await copyTable(client, backupName(table), table)
    await dropTable(client, backupName(table))
    return 'migrated'
  }
  return 'exists'
}

function backupName (table: string): string {
  return `${table.slice(0, 240)}.pre-fleet`
}

async function exists (client: DynamoDBClient, table: string): Promise<boolean> {
  try {
    await client.send(new DescribeTableCommand({ TableName: table }))
    return true
  } catch (err) {
    if (err instanceof ResourceNotFoundException) return false
    throw err
  }
}

async function dropTable (client: DynamoDBClient, table: string): Promise<void> {
  await client.send(new DeleteTableCommand({ TableName: table }))
  await waitUntilTableNotExists({ client, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { TableName: table })
}

/**
 * A local table (embedded or a local endpoint) created before the fleet index: dynalite cannot add
 * an index to a table (it ignores UpdateTable's index creation), and one added by UpdateTable would
 * miss the status items written before (they lack `fleet`). So the table is copied aside, created
 * again with every index and copied back, each status item gaining its shard. The copy is kept until
 * the table is whole again: a start interrupted midway resumes from it. A one-off Scan, local only.
 */
async function addFleetIndex (client: DynamoDBClient, table: string, ttl: boolean): Promise<void> {
  const backup = backupName(table)
  if (await exists(client, backup)) await dropTable(client, backup) // a copy never finished: the table is still whole
  await client.send(new CreateTableCommand({
    TableName: backup,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [{ AttributeName: TABLE_KEYS.hash, AttributeType: 'S' }, { AttributeName: TABLE_KEYS.range, AttributeType: 'S' }],
    KeySchema: [{ AttributeName: TABLE_KEYS.hash, KeyType: 'HASH' }, { AttributeName: TABLE_KEYS.range, KeyType: 'RANGE' }]
  }))
  await waitUntilTableExists({ client, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { TableName: backup })
  await copyTable(client, table, backup)
  await dropTable(client, table)
  await createTable(client, table)
  if (ttl) await enableTtl(client, table)
  await copyTable(client, backup, table)
  await dropTable(client, backup)
}

/** Every item of `from` into `to` (Scan pages, BatchWriteItem of 25), status items with their fleet shard. */
async function copyTable (client: DynamoDBClient, from: string, to: string): Promise<void> {
  let start: Record<string, AttributeValue> | undefined
  do {
    const page = await client.send(new ScanCommand({ TableName: from, ExclusiveStartKey: start, ConsistentRead: true }))
    const items = page.Items ?? []
    for (let i = 0; i < items.length; i += 25) {
      let requests: WriteRequest[] = items.slice(i, i + 25).map(item => {
        const status = item.sk?.S === STATUS_SK && item.device?.S !== undefined
        return { PutRequest: { Item: status ? { ...item, [FLEET_INDEX.hash]: { S: fleetShard(item.device!.S!) } } : item } }
      })
      while (requests.length > 0) {
        const out = await client.send(new BatchWriteItemCommand({ RequestItems: { [to]: requests } }))
        requests = out.UnprocessedItems?.[to] ?? []
      }
    }
    start = page.LastEvaluatedKey
  } while (start !== undefined)
}

async function enableTtl (client: DynamoDBClient, table: string): Promise<void> {
  try {
    await client.send(new UpdateTimeToLiveCommand({ TableName: table, TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true } }))
  } catch {
    // dynalite does not implement TTL; AWS tables get it from Terraform.
  }
}

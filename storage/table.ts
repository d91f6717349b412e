import {
  CreateTableCommand, DescribeTableCommand, ResourceNotFoundException, UpdateTimeToLiveCommand, waitUntilTableExists,
  type DynamoDBClient
} from '@aws-sdk/client-dynamodb'
import { QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'

// Key design (docs/adr/0002-table-key-design.md):
//   readings:  device (hash) + sk = `<ISO time>#<uuid>` (range)  -> one device's readings in time order
//   all:       GSI all-readings-index, feed = "all" (hash) + sk   -> every device's readings in time order
//   status:    device + sk = "status"                             -> a device's latest status, one GetItem
//   claim:     device + sk = `uuid#<uuid>` (no feed: not indexed)  -> which reading holds that uuid
// The same reading always maps to the same key, so a redelivered reading overwrites itself.
export const TABLE_KEYS = { hash: 'device', range: 'sk' } as const
export const ALL_INDEX = { name: 'all-readings-index', hash: 'feed', range: 'sk', value: 'all' } as const
export const STATUS_SK = 'status'
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
      { AttributeName: ALL_INDEX.hash, AttributeType: 'S' }
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
    }]
  }))
  await waitUntilTableExists({ client, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { TableName: table })
}

/**
 * Checks that the table exists with the keys and index the service needs; creates it when
 * `create` is set (embedded and local endpoints), otherwise fails with a message an operator can act on.
 */
export async function ensureTable (client: DynamoDBClient, table: string, create: boolean, ttl = false): Promise<'exists' | 'created'> {
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
    return 'created'
  }
  const keys = described.Table?.KeySchema ?? []
  const hash = keys.find(k => k.KeyType === 'HASH')?.AttributeName
  const range = keys.find(k => k.KeyType === 'RANGE')?.AttributeName
  const index = described.Table?.GlobalSecondaryIndexes?.find(i => i.IndexName === ALL_INDEX.name)
  if (hash !== TABLE_KEYS.hash || range !== TABLE_KEYS.range || index === undefined) {
    throw new Error(`DynamoDB table "${table}" has another key design: expected hash "${TABLE_KEYS.hash}", range "${TABLE_KEYS.range}" and index "${ALL_INDEX.name}"`)
  }
  return 'exists'
}

async function enableTtl (client: DynamoDBClient, table: string): Promise<void> {
  try {
    await client.send(new UpdateTimeToLiveCommand({ TableName: table, TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true } }))
  } catch {
    // dynalite does not implement TTL; AWS tables get it from Terraform.
  }
}

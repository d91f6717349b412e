// Alert state, outbox, episode list and the scheduler's lease in the service's table
// (docs/adr/0008-alerts-exactly-once.md). Every partition here has a `#` in its hash key, which no
// device id can hold (DEVICE_ID_PATTERN), and none carries `feed` or `fleet`: the readings' ranges,
// statuses, the fleet index, the all-readings index and the rollups never see them.
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb'
import { BatchGetCommand, DeleteCommand, GetCommand, PutCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'
import { createHash } from 'node:crypto'
import { InvalidCursorError } from '../storage/errors.js'
import { mapStorageError } from '../storage/readings-repository.js'
import type { EpisodeState } from './engine.js'
import type { Status } from '../schemas/readings.js'

export const ALERT_STATE_SK = 'state'
export const ALERT_LIST_PK = 'alerts#list'
export const OUTBOX_SHARDS = 4
export const STALE_LEASE_PK = 'lease#stale'

export function stateKey (rule: string, device: string): string {
  return `alert#${rule}#${device}`
}

export function outboxShard (id: string): string {
  return `outbox#${createHash('sha1').update(id).digest()[0]! % OUTBOX_SHARDS}`
}

export interface StoredState extends EpisodeState {
  rule: string
  device: string
}

export interface OutboxEntry {
  shard: string
  sk: string
  id: string
  channel: string
  rule: string
  device: string
  state: 'firing' | 'resolved'
  /** the notification's body (JSON) */
  body: string
  created: number
  due: number
  lease: number
  attempts: number
  /** the episode list item it belongs to, written again by the deliverer */
  since: string
  episode: string
}

export interface AlertRecord {
  id: string
  rule: string
  device: string
  state: 'firing' | 'resolved'
  since: string
  resolved_at?: string
  last_status: Status
}

export interface AlertQuery {
  state?: 'firing' | 'resolved' | undefined
  device?: string | undefined
  rule?: string | undefined
  limit: number
  cursor?: string | undefined
}

const LIST_SK = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z#[0-9a-f]{32}$/

function isConditionFailure (err: unknown): boolean {
  return err instanceof ConditionalCheckFailedException || (err as Error).name === 'ConditionalCheckFailedException'
}

export class AlertStore {
  constructor (private readonly doc: DynamoDBDocumentClient, private readonly table: string) {}

  /** The states of these (rule, device) pairs, strongly consistent; absent ones are missing from the map. */
  async getStates (keys: Array<{ rule: string, device: string }>): Promise<Map<string, StoredState>> {
    const found = new Map<string, StoredState>()
    const unique = [...new Set(keys.map(k => stateKey(k.rule, k.device)))]
    for (let i = 0; i < unique.length; i += 100) {
      let request: Array<Record<string, unknown>> = unique.slice(i, i + 100).map(device => ({ device, sk: ALERT_STATE_SK }))
      for (let attempt = 0; request.length > 0 && attempt < 8; attempt++) {
        let out
        try {
          out = await this.doc.send(new BatchGetCommand({ RequestItems: { [this.table]: { Keys: request, ConsistentRead: true } } }))
        } catch (err) {
          throw mapStorageError(err, 'reading alert states')
        }
        for (const item of out.Responses?.[this.table] ?? []) found.set(item.device as string, stateOf(item))
        request = (out.UnprocessedKeys?.[this.table]?.Keys ?? []) as Array<Record<string, unknown>>
      }
    }
    return found
  }

  async getState (rule: string, device: string): Promise<StoredState | undefined> {
    try {
      const key = { device: stateKey(rule, device), sk: ALERT_STATE_SK }
      const out = await this.doc.send(new GetCommand({ TableName: this.table, Key: key, ConsistentRead: true }))
      return out.Item === undefined ? undefined : stateOf(out.Item)
    } catch (err) {
      throw mapStorageError(err, 'reading an alert state')
    }
  }

  /**
   * Writes the state if the table still holds `expected` (its version; 0: no item yet). False when
   * another task recorded a change first: the caller reads again and decides again.
   */
  async putState (state: StoredState, expected: number, lastStatus: Status): Promise<boolean> {
    const item: Record<string, unknown> = {
      device: stateKey(state.rule, state.device),
      sk: ALERT_STATE_SK,
      rule: state.rule,
      alert_device: state.device,
      phase: state.phase,
      version: state.version,
      last_status: JSON.stringify(lastStatus)
    }
    if (state.since !== undefined) item.since = state.since
    if (state.episode !== undefined) item.episode = state.episode
    if (state.observed !== undefined) item.observed = state.observed
    if (state.recent !== undefined) item.recent = state.recent
    try {
      await this.doc.send(new PutCommand({
        TableName: this.table,
        Item: item,
        ConditionExpression: expected === 0 ? 'attribute_not_exists(version) OR version = :v' : 'version = :v',
        ExpressionAttributeValues: { ':v': expected }
      }))
      return true
    } catch (err) {
      if (isConditionFailure(err)) return false
      throw mapStorageError(err, 'writing an alert state')
    }
  }

  /** An outbox entry, once: a second task writing the same notification for the same channel changes nothing. */
  async addOutbox (entry: OutboxEntry): Promise<void> {
    try {
      await this.doc.send(new PutCommand({
        TableName: this.table,
        Item: { ...entry, device: entry.shard, alert_device: entry.device },
        ConditionExpression: 'attribute_not_exists(sk)'
      }))
    } catch (err) {
      if (isConditionFailure(err)) return
      throw mapStorageError(err, 'writing an outbox entry')
    }
  }

  /** Entries of every shard that are due and not leased. Queries, never a Scan. */
  async dueOutbox (now: number, limit = 100): Promise<OutboxEntry[]> {
    const shards = Array.from({ length: OUTBOX_SHARDS }, (_, i) => `outbox#${i}`)
    const pages = await Promise.all(shards.map(async shard => {
      try {
        const out = await this.doc.send(new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: 'device = :s',
          FilterExpression: 'due <= :now AND lease < :now',
          ExpressionAttributeValues: { ':s': shard, ':now': now },
          ConsistentRead: true,
          Limit: limit
        }))
        return (out.Items ?? []).map(item => ({ ...item, shard: item.device, device: item.alert_device }) as unknown as OutboxEntry)
      } catch (err) {
        throw mapStorageError(err, 'reading the outbox')
      }
    }))
    return pages.flat()
  }

  /** Takes an entry for `leaseMs`; false when another task has it (or it is gone). */
  async claim (entry: OutboxEntry, owner: string, now: number, leaseMs: number): Promise<boolean> {
    try {
      await this.doc.send(new UpdateCommand({
        TableName: this.table,
        Key: { device: entry.shard, sk: entry.sk },
        UpdateExpression: 'SET lease = :until, lease_owner = :me',
        ConditionExpression: 'attribute_exists(sk) AND lease < :now AND due <= :now',
        ExpressionAttributeValues: { ':until': now + leaseMs, ':me': owner, ':now': now }
      }))
      return true
    } catch (err) {
      if (isConditionFailure(err)) return false
      throw mapStorageError(err, 'claiming an outbox entry')
    }
  }

  /** Delivered (or given up): the entry leaves the outbox. */
  async done (entry: OutboxEntry): Promise<void> {
    try {
      await this.doc.send(new DeleteCommand({ TableName: this.table, Key: { device: entry.shard, sk: entry.sk } }))
    } catch (err) {
      throw mapStorageError(err, 'removing an outbox entry')
    }
  }

  /** Released for another attempt at `due` (lease cleared: any task may take it then). */
  async retryAt (entry: OutboxEntry, owner: string, due: number, attempts: number): Promise<void> {
    try {
      await this.doc.send(new UpdateCommand({
        TableName: this.table,
        Key: { device: entry.shard, sk: entry.sk },
        UpdateExpression: 'SET due = :due, attempts = :n, lease = :zero',
        ConditionExpression: 'lease_owner = :me',
        ExpressionAttributeValues: { ':due': due, ':n': attempts, ':zero': 0, ':me': owner }
      }))
    } catch (err) {
      if (isConditionFailure(err)) return
      throw mapStorageError(err, 'rescheduling an outbox entry')
    }
  }

  /** The episode's list item: a firing record never overwrites a resolved one. */
  async recordEpisode (record: AlertRecord, episode: string): Promise<void> {
    const key = { device: ALERT_LIST_PK, sk: `${record.since}#${episode}` }
    const values: Record<string, unknown> = {
      ':id': record.id, ':rule': record.rule, ':dev': record.device, ':since': record.since, ':status': JSON.stringify(record.last_status), ':state': record.state
    }
    try {
      if (record.state === 'firing') {
        await this.doc.send(new UpdateCommand({
          TableName: this.table,
          Key: key,
          UpdateExpression: 'SET id = :id, #rule = :rule, alert_device = :dev, since = :since, last_status = :status, #state = :state',
          ConditionExpression: 'attribute_not_exists(#state) OR #state = :state',
          ExpressionAttributeNames: { '#rule': 'rule', '#state': 'state' },
          ExpressionAttributeValues: values
        }))
      } else {
        await this.doc.send(new UpdateCommand({
          TableName: this.table,
          Key: key,
          UpdateExpression: 'SET id = :id, #rule = :rule, alert_device = :dev, since = :since, last_status = :status, #state = :state, resolved_at = :at',
          ExpressionAttributeNames: { '#rule': 'rule', '#state': 'state' },
          ExpressionAttributeValues: { ...values, ':at': record.resolved_at }
        }))
      }
    } catch (err) {
      if (isConditionFailure(err)) return
      throw mapStorageError(err, 'recording an alert')
    }
  }

  /** Episodes newest first (by `since`), filtered, paged by an opaque cursor. One partition, Queries only. */
  async list (query: AlertQuery): Promise<{ alerts: AlertRecord[], next?: string }> {
    let start: Record<string, unknown> | undefined
    if (query.cursor !== undefined) start = { device: ALERT_LIST_PK, sk: decodeCursor(query.cursor) }
    const names: Record<string, string> = {}
    const values: Record<string, unknown> = { ':pk': ALERT_LIST_PK }
    const filters: string[] = []
    if (query.state !== undefined) { filters.push('#state = :state'); names['#state'] = 'state'; values[':state'] = query.state }
    if (query.device !== undefined) { filters.push('alert_device = :dev'); values[':dev'] = query.device }
    if (query.rule !== undefined) { filters.push('#rule = :rule'); names['#rule'] = 'rule'; values[':rule'] = query.rule }
    const alerts: AlertRecord[] = []
    let lastSk: string | undefined
    do {
      let out
      try {
        out = await this.doc.send(new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: 'device = :pk',
          ...(filters.length > 0 ? { FilterExpression: filters.join(' AND ') } : {}),
          ...(Object.keys(names).length > 0 ? { ExpressionAttributeNames: names } : {}),
          ExpressionAttributeValues: values,
          ScanIndexForward: false,
          ExclusiveStartKey: start,
          Limit: Math.max(query.limit, 100)
        }))
      } catch (err) {
        throw mapStorageError(err, 'reading alerts')
      }
      for (const item of out.Items ?? []) {
        if (alerts.length === query.limit) return { alerts, next: encodeCursor(lastSk!) }
        alerts.push(recordOf(item))
        lastSk = item.sk as string
      }
      start = out.LastEvaluatedKey
    } while (start !== undefined)
    return { alerts }
  }

  /** The stale scheduler's lease: taken when free, expired or already ours. */
  async takeLease (owner: string, now: number, ttlMs: number): Promise<boolean> {
    try {
      await this.doc.send(new PutCommand({
        TableName: this.table,
        Item: { device: STALE_LEASE_PK, sk: 'lease', holder: owner, lease_until: now + ttlMs },
        ConditionExpression: 'attribute_not_exists(holder) OR holder = :me OR lease_until < :now',
        ExpressionAttributeValues: { ':me': owner, ':now': now }
      }))
      return true
    } catch (err) {
      if (isConditionFailure(err)) return false
      throw mapStorageError(err, 'taking the stale lease')
    }
  }

  /** Gives the lease back (shutdown), so another task takes over at its next tick. */
  async releaseLease (owner: string): Promise<void> {
    try {
      await this.doc.send(new DeleteCommand({
        TableName: this.table,
        Key: { device: STALE_LEASE_PK, sk: 'lease' },
        ConditionExpression: 'holder = :me',
        ExpressionAttributeValues: { ':me': owner }
      }))
    } catch {
      // another holder, or the table is gone: the lease expires by itself
    }
  }
}

function stateOf (item: Record<string, unknown>): StoredState {
  const state: StoredState = {
    rule: item.rule as string,
    device: item.alert_device as string,
    phase: item.phase as StoredState['phase'],
    version: Number(item.version)
  }
  if (typeof item.since === 'number') state.since = item.since
  if (typeof item.episode === 'string') state.episode = item.episode
  if (typeof item.observed === 'number') state.observed = item.observed
  if (Array.isArray(item.recent)) state.recent = item.recent as string[]
  return state
}

function recordOf (item: Record<string, unknown>): AlertRecord {
  let status = {} as Status
  try {
    status = JSON.parse(item.last_status as string) as Status
  } catch {}
  const record: AlertRecord = {
    id: item.id as string,
    rule: item.rule as string,
    device: item.alert_device as string,
    state: item.state as AlertRecord['state'],
    since: item.since as string,
    last_status: status
  }
  if (typeof item.resolved_at === 'string') record.resolved_at = item.resolved_at
  return record
}

function encodeCursor (sk: string): string {
  return Buffer.from(sk).toString('base64url')
}

function decodeCursor (cursor: string): string {
  const sk = Buffer.from(cursor, 'base64url').toString('utf8')
  if (!LIST_SK.test(sk) || encodeCursor(sk) !== cursor) throw new InvalidCursorError()
  return sk
}

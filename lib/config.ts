import { hostname } from 'node:os'
import { resolve } from 'node:path'
import type { TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { ConfigSchema, type RawConfig } from '../schemas/config.js'
import { isTimeZone } from './time.js'

export interface Config extends RawConfig {
  /** absolute DATA_DIR */
  dataDir: string
  dynamoMode: 'embedded' | 'endpoint' | 'aws'
  kafkaEnabled: boolean
  collectorEnabled: boolean
  /** LOG_REQUESTS: Fastify logs every request (at info) */
  logRequests: boolean
  deviceName: string
  staleAfterSeconds: number
  topics: string[]
  brokers: string[]
}

export class ConfigError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

// Host names can hold characters a device id cannot (and be longer): keep what fits.
export function deviceNameFromHost (host = hostname()): string {
  const cleaned = host.split('.')[0]!.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64)
  return cleaned === '' ? 'localhost' : cleaned
}

/** What a setting must be, from its schema, in the words an operator reads. */
function explain (schema: TSchema | undefined, fallback: string): string {
  const s = schema as (TSchema & { anyOf?: Array<{ const?: unknown }>, pattern?: string, minimum?: number, maximum?: number, exclusiveMinimum?: number }) | undefined
  if (s?.anyOf?.every(b => b.const !== undefined) === true) return `must be one of ${s.anyOf.map(b => String(b.const)).join(', ')}`
  if (s?.pattern !== undefined) return `must match ${s.pattern}`
  if (s?.type === 'integer' || s?.type === 'number') {
    const what = s.type === 'integer' ? 'an integer' : 'a number'
    const high = s.maximum !== undefined ? ` and at most ${s.maximum}` : ''
    if (s.minimum !== undefined) return `must be ${what} from ${s.minimum}${s.maximum !== undefined ? ` to ${s.maximum}` : ''}`
    if (s.exclusiveMinimum !== undefined) return `must be ${what} above ${s.exclusiveMinimum}${high}`
    return `must be ${what}${s.maximum !== undefined ? ` of at most ${s.maximum}` : ''}`
  }
  return fallback.charAt(0).toLowerCase() + fallback.slice(1)
}

/** The switches' spellings of "on" (`on`, `true`, `1`); the schema allows only these and their opposites. */
function isOn (value: string): boolean {
  return value === 'on' || value === 'true' || value === '1'
}

export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  const data: Record<string, string> = {}
  for (const key of Object.keys(ConfigSchema.properties)) {
    const value = env[key]
    if (value !== undefined && value.trim() !== '') data[key] = value.trim()
  }
  // Defaults, then strings to the schema's numbers, then the check (TypeBox, as the device models:
  // cheaper to start than an Ajv instance of its own).
  const raw = Value.Convert(ConfigSchema, Value.Default(ConfigSchema, data)) as RawConfig
  const error = Value.Errors(ConfigSchema, raw).First()
  if (error !== undefined) {
    const key = error.path.replace(/^\//, '')
    const got = key in data ? ` (got "${key.includes('PASSWORD') ? '***' : data[key]}")` : ''
    throw new ConfigError(`Invalid configuration: ${key} ${explain(ConfigSchema.properties[key as keyof RawConfig], error.message)}${got}`)
  }

  const kafkaEnabled = raw.KAFKA_BROKERS !== undefined && raw.ROLE !== 'api'
  const collector = raw.COLLECTOR
  const collectorEnabled = raw.ROLE !== 'api' && (collector === 'auto'
    ? raw.KAFKA_BROKERS === undefined
    : isOn(collector))
  if (raw.KAFKA_SASL_MECHANISM !== undefined && (raw.KAFKA_SASL_USERNAME === undefined || raw.KAFKA_SASL_PASSWORD === undefined)) {
    throw new ConfigError('Invalid configuration: KAFKA_SASL_MECHANISM needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD')
  }
  if (!isTimeZone(raw.LEGACY_TIMEZONE)) {
    throw new ConfigError(`Invalid configuration: LEGACY_TIMEZONE must be an IANA time zone name such as UTC or Europe/Berlin (got "${raw.LEGACY_TIMEZONE}")`)
  }
  if (raw.ROLE === 'ingest' && raw.KAFKA_BROKERS === undefined && !collectorEnabled) {
    throw new ConfigError('Invalid configuration: ROLE=ingest needs KAFKA_BROKERS (or COLLECTOR=on)')
  }

  return {
    ...raw,
    dataDir: resolve(raw.DATA_DIR),
    dynamoMode: raw.DYNAMODB_ENDPOINT !== undefined ? 'endpoint' : raw.AWS_REGION !== undefined ? 'aws' : 'embedded',
    kafkaEnabled,
    collectorEnabled,
    logRequests: isOn(raw.LOG_REQUESTS),
    deviceName: raw.DEVICE_NAME ?? deviceNameFromHost(),
    // Silence is not health: three missed collection periods make a device stale.
    staleAfterSeconds: raw.STALE_AFTER_SECONDS ?? 3 * raw.COLLECT_INTERVAL_SECONDS,
    topics: raw.KAFKA_TOPICS.split(','),
    brokers: raw.KAFKA_BROKERS?.split(',') ?? []
  }
}

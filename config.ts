// The service's configuration in one place: the schema of the environment (every key documented in
// README.md and .env.example), its loading and validation, and the settings derived from it.
import { hostname } from 'node:os'
import { resolve } from 'node:path'
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { isTimeZone } from './ingest/time.js'
import { modelsDir as shippedModelsDir } from './paths.js'
import { AlertsFileError, loadAlertsFile, type AlertsConfig } from './alerts/rules.js'

/** DYNAMODB_TIMEOUT_MS's default, also the DynamoDB client's when it is built without a configuration (tests, bench) */
export const DEFAULT_DYNAMODB_TIMEOUT_MS = 5000

/** RATE_LIMIT_PER_MINUTE's default: 50 a second, what a dashboard of a few hundred devices needs at load (two requests a row) plus pollers */
export const DEFAULT_RATE_LIMIT_PER_MINUTE = 3000

/** API_KEYS: a name (in logs and metrics) and its key (never logged). */
export interface ApiKey { name: string, key: string }

const KEY_NAME = /^[A-Za-z0-9_.-]{1,64}$/
const KEY_VALUE = /^[\x21-\x7e]{16,256}$/

/** `name:key,name:key`; a bad pair or a name given twice is a ConfigError that names the pair's position, never its key. */
export function parseApiKeys (value: string | undefined): ApiKey[] {
  if (value === undefined) return []
  const keys: ApiKey[] = []
  const names = new Set<string>()
  const values = new Set<string>()
  value.split(',').forEach((pair, i) => {
    const at = pair.indexOf(':')
    const name = at === -1 ? '' : pair.slice(0, at).trim()
    const key = at === -1 ? '' : pair.slice(at + 1).trim()
    if (!KEY_NAME.test(name) || !KEY_VALUE.test(key) || key.includes(',')) {
      throw new ConfigError(`Invalid configuration: API_KEYS pair ${i + 1} must be name:key, the name matching ${KEY_NAME.source} and the key 16 to 256 printable characters without spaces or commas`)
    }
    if (names.has(name)) throw new ConfigError(`Invalid configuration: API_KEYS names "${name}" twice`)
    if (values.has(key)) throw new ConfigError(`Invalid configuration: API_KEYS gives the same key to two names (pair ${i + 1}, "${name}")`)
    names.add(name)
    values.add(key)
    keys.push({ name, key })
  })
  return keys
}

const OnOff = Type.Union([Type.Literal('on'), Type.Literal('off'), Type.Literal('auto')])

// Every key here is documented in README.md and .env.example.
export const ConfigSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map(l => Type.Literal(l)), { default: 'info' }),
  LOG_REQUESTS: Type.Union(['true', 'false', '1', '0', 'on', 'off'].map(l => Type.Literal(l)), { default: 'true' }),
  ROLE: Type.Union([Type.Literal('all'), Type.Literal('api'), Type.Literal('ingest')], { default: 'all' }),
  DATA_DIR: Type.String({ minLength: 1, default: './data' }),
  DYNAMODB_TABLE: Type.String({ pattern: '^[A-Za-z0-9_.-]{3,255}$', default: 'sensors_data' }),
  DYNAMODB_ENDPOINT: Type.Optional(Type.String({ pattern: '^https?://' })),
  AWS_REGION: Type.Optional(Type.String({ pattern: '^[a-z0-9-]+$' })),
  DYNAMODB_TIMEOUT_MS: Type.Integer({ minimum: 50, maximum: 120_000, default: DEFAULT_DYNAMODB_TIMEOUT_MS }),
  KAFKA_BROKERS: Type.Optional(Type.String({ pattern: '^[^,\\s]+(,[^,\\s]+)*$' })),
  KAFKA_TOPICS: Type.String({ pattern: '^[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*$', default: 'pc1,pc2,raspberry' }),
  KAFKA_GROUP_ID: Type.String({ minLength: 1, default: 'sensors-ingest' }),
  KAFKA_DLQ_TOPIC: Type.String({ pattern: '^[A-Za-z0-9._-]+$', default: 'sensors.dlq' }),
  KAFKA_SECURITY_PROTOCOL: Type.Optional(Type.Union(['plaintext', 'ssl', 'sasl_plaintext', 'sasl_ssl', 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL'].map(l => Type.Literal(l)))),
  KAFKA_SASL_MECHANISM: Type.Optional(Type.Union(['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512', 'OAUTHBEARER'].map(l => Type.Literal(l)))),
  KAFKA_SASL_USERNAME: Type.Optional(Type.String()),
  KAFKA_SASL_PASSWORD: Type.Optional(Type.String()),
  KAFKA_BATCH_SIZE: Type.Integer({ minimum: 1, maximum: 10_000, default: 500 }),
  KAFKA_SESSION_TIMEOUT_MS: Type.Integer({ minimum: 6000, maximum: 1_800_000, default: 10_000 }),
  KAFKA_STALL_SECONDS: Type.Number({ minimum: 1, maximum: 86_400, default: 120 }),
  // At most what a dead letter can carry whole (kafka/message.ts DLQ_VALUE_MAX_BYTES).
  MAX_READING_BYTES: Type.Integer({ minimum: 1024, maximum: 900_000, default: 65_536 }),
  COLLECTOR: Type.Union([OnOff, Type.Literal('true'), Type.Literal('false'), Type.Literal('1'), Type.Literal('0')], { default: 'auto' }),
  COLLECT_INTERVAL_SECONDS: Type.Number({ exclusiveMinimum: 0, maximum: 86_400, default: 5 }),
  DEVICE_NAME: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' })),
  STALE_AFTER_SECONDS: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
  STATUS_CACHE_TTL_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 1000 }),
  HISTORY_CACHE_TTL_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 1000 }),
  SSE_HEARTBEAT_SECONDS: Type.Number({ exclusiveMinimum: 0, maximum: 3600, default: 15 }),
  SSE_BUFFER_KB: Type.Integer({ minimum: 1, maximum: 65_536, default: 256 }),
  HISTORY_CACHE_MB: Type.Number({ exclusiveMinimum: 0, maximum: 4096, default: 32 }),
  LEGACY_TIMEZONE: Type.String({ minLength: 1, maxLength: 100, default: 'UTC' }),
  MAX_CLOCK_SKEW_SECONDS: Type.Integer({ minimum: 0, maximum: 86_400, default: 300 }),
  RETENTION_DAYS: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
  ROLLUP_RETENTION_DAYS: Type.Number({ exclusiveMinimum: 0, maximum: 36_500, default: 400 }),
  MODELS_DIR: Type.Optional(Type.String({ minLength: 1 })),
  SHUTDOWN_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000 }),
  // Issue 19: access. API_KEYS is checked by parseApiKeys (its message never echoes a key).
  API_KEYS: Type.Optional(Type.String()),
  RATE_LIMIT_PER_MINUTE: Type.Integer({ minimum: 0, maximum: 1_000_000, default: DEFAULT_RATE_LIMIT_PER_MINUTE }),
  CORS_ORIGINS: Type.Optional(Type.String({ pattern: '^https?://[^,\\s/]+(,https?://[^,\\s/]+)*$' })),
  ALERTS_FILE: Type.Optional(Type.String({ minLength: 1 })),
  ALERTS_TICK_SECONDS: Type.Number({ minimum: 0.05, maximum: 30, default: 5 }),
  PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$' }))
})
export type RawConfig = Static<typeof ConfigSchema>

export interface Config extends RawConfig {
  /** absolute DATA_DIR */
  dataDir: string
  /** absolute MODELS_DIR, or the shipped models/ */
  modelsDir: string
  dynamoMode: 'embedded' | 'endpoint' | 'aws'
  kafkaEnabled: boolean
  collectorEnabled: boolean
  /** LOG_REQUESTS: Fastify logs every request (at info) */
  logRequests: boolean
  deviceName: string
  staleAfterSeconds: number
  topics: string[]
  brokers: string[]
  /** API_KEYS parsed; empty: the service is open */
  apiKeys: ApiKey[]
  /** CORS_ORIGINS split; empty: no CORS headers */
  corsOrigins: string[]
  /** ALERTS_FILE, loaded and checked; absent: alerting is off */
  alerts?: AlertsConfig
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
  type Described = TSchema & { anyOf?: Array<{ const?: unknown }>, pattern?: string, minimum?: number, maximum?: number, exclusiveMinimum?: number }
  const s = schema as Described | undefined
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
    const got = key in data ? ` (got "${key.includes('PASSWORD') || key === 'API_KEYS' ? '***' : data[key]}")` : ''
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

  let alerts: AlertsConfig | undefined
  if (raw.ALERTS_FILE !== undefined) {
    try {
      alerts = loadAlertsFile(resolve(raw.ALERTS_FILE), env)
    } catch (err) {
      if (err instanceof AlertsFileError) throw new ConfigError(`Invalid configuration: ${err.message}`)
      throw err
    }
  }

  return {
    ...raw,
    ...(alerts !== undefined ? { alerts } : {}),
    dataDir: resolve(raw.DATA_DIR),
    modelsDir: raw.MODELS_DIR !== undefined ? resolve(raw.MODELS_DIR) : shippedModelsDir,
    dynamoMode: raw.DYNAMODB_ENDPOINT !== undefined ? 'endpoint' : raw.AWS_REGION !== undefined ? 'aws' : 'embedded',
    kafkaEnabled,
    collectorEnabled,
    logRequests: isOn(raw.LOG_REQUESTS),
    deviceName: raw.DEVICE_NAME ?? deviceNameFromHost(),
    // Silence is not health: three missed collection periods make a device stale.
    staleAfterSeconds: raw.STALE_AFTER_SECONDS ?? 3 * raw.COLLECT_INTERVAL_SECONDS,
    topics: raw.KAFKA_TOPICS.split(','),
    brokers: raw.KAFKA_BROKERS?.split(',') ?? [],
    apiKeys: parseApiKeys(raw.API_KEYS),
    corsOrigins: raw.CORS_ORIGINS?.split(',') ?? []
  }
}

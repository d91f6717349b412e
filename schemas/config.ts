import { Type, type Static } from '@sinclair/typebox'

/** DYNAMODB_TIMEOUT_MS's default, also the DynamoDB client's when it is built without a configuration (tests, bench) */
export const DEFAULT_DYNAMODB_TIMEOUT_MS = 5000

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
  // At most what a dead letter can carry whole (lib/kafka/message.ts DLQ_VALUE_MAX_BYTES).
  MAX_READING_BYTES: Type.Integer({ minimum: 1024, maximum: 900_000, default: 65_536 }),
  COLLECTOR: Type.Union([OnOff, Type.Literal('true'), Type.Literal('false'), Type.Literal('1'), Type.Literal('0')], { default: 'auto' }),
  COLLECT_INTERVAL_SECONDS: Type.Number({ exclusiveMinimum: 0, maximum: 86_400, default: 5 }),
  DEVICE_NAME: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' })),
  STALE_AFTER_SECONDS: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
  STATUS_CACHE_TTL_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 1000 }),
  HISTORY_CACHE_TTL_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 1000 }),
  HISTORY_CACHE_MB: Type.Number({ exclusiveMinimum: 0, maximum: 4096, default: 32 }),
  LEGACY_TIMEZONE: Type.String({ minLength: 1, maxLength: 100, default: 'UTC' }),
  MAX_CLOCK_SKEW_SECONDS: Type.Integer({ minimum: 0, maximum: 86_400, default: 300 }),
  RETENTION_DAYS: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
  SHUTDOWN_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000 })
})
export type RawConfig = Static<typeof ConfigSchema>

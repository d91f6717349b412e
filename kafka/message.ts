import type rdkafka from 'node-rdkafka'
import { nestsDeeperThan } from '../ingest/json-text.js'

/** MAX_READING_BYTES's default */
export const DEFAULT_MAX_READING_BYTES = 65_536
/** Readings are flat objects: anything nested deeper is not one, and is refused before JSON.parse. */
export const MAX_READING_DEPTH = 8

export interface Decoded { ok: true, value: unknown, text: string }
export interface DecodeFailure { ok: false, reason: string }

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Message values are JSON, plain or framed by Confluent's serializers (magic byte 0, then a
 * 4-byte schema id), which is how the original Python producers wrote them. Size, encoding and
 * depth are checked before parsing, so parsing and describing the value stay bounded.
 */
export function decodeValue (value: Buffer | null | undefined, maxBytes = DEFAULT_MAX_READING_BYTES): Decoded | DecodeFailure {
  if (value === null || value === undefined || value.length === 0) return { ok: false, reason: 'empty message value' }
  if (value.length > maxBytes) return { ok: false, reason: `reading is ${value.length} bytes, over MAX_READING_BYTES (${maxBytes})` }
  let body = value
  if (value[0] === 0) {
    if (value.length <= 5) return { ok: false, reason: 'Confluent-framed value without a payload' }
    body = value.subarray(5)
  }
  let text: string
  try {
    text = utf8.decode(body)
  } catch {
    return { ok: false, reason: 'value is not valid UTF-8 (JSON must be)' }
  }
  if (nestsDeeperThan(text, MAX_READING_DEPTH)) {
    return { ok: false, reason: `value nests arrays or objects more than ${MAX_READING_DEPTH} deep (a reading is a flat object)` }
  }
  try {
    return { ok: true, value: JSON.parse(text), text }
  } catch (err) {
    const message = (err as Error).message
    return { ok: false, reason: `value is not JSON: ${message.length > 200 ? `${message.slice(0, 200)}…` : message}` }
  }
}

/** The DLQ producer's message.max.bytes: set explicitly, a dead letter is kept under it. */
export const DLQ_MESSAGE_MAX_BYTES = 1_000_000
const HEADERS_MAX_BYTES = 64 * 1024
const KEY_MAX_BYTES = 16 * 1024
/** room for our own headers (reason up to 2000 characters) and the record's framing */
const DLQ_OVERHEAD_BYTES = 16 * 1024
export const DLQ_VALUE_MAX_BYTES = DLQ_MESSAGE_MAX_BYTES - HEADERS_MAX_BYTES - KEY_MAX_BYTES - DLQ_OVERHEAD_BYTES

export interface DeadLetter {
  value: Buffer | null
  key: Buffer | string | null
  headers: rdkafka.MessageHeader[]
}

function headerBytes (header: rdkafka.MessageHeader): number {
  let n = 0
  for (const [k, v] of Object.entries(header)) n += Buffer.byteLength(k) + (Buffer.isBuffer(v) ? v.length : Buffer.byteLength(String(v)))
  return n
}

/**
 * What the DLQ gets for a rejected message: its value, key and headers as they came, with the
 * reason and source; cut to fit the DLQ producer's limit whatever the source topic accepted (a
 * truncated value is marked with dlq.truncated and dlq.original.bytes).
 */
export function deadLetterOf (message: rdkafka.Message, reason: string, now = new Date()): DeadLetter {
  const headers: rdkafka.MessageHeader[] = []
  let used = 0
  let droppedHeaders = 0
  for (const header of message.headers ?? []) {
    const size = headerBytes(header)
    if (used + size <= HEADERS_MAX_BYTES) {
      headers.push(header)
      used += size
    } else {
      droppedHeaders++
    }
  }
  const keyBytes = message.key == null ? 0 : Buffer.isBuffer(message.key) ? message.key.length : Buffer.byteLength(String(message.key))
  const key = keyBytes <= KEY_MAX_BYTES ? message.key ?? null : null
  headers.push(
    { 'dlq.source.topic': message.topic },
    { 'dlq.source.partition': String(message.partition) },
    { 'dlq.source.offset': String(message.offset) },
    { 'dlq.reason': reason.slice(0, 2000) },
    { 'dlq.time': now.toISOString() }
  )
  let value = message.value ?? null
  if (value !== null && value.length > DLQ_VALUE_MAX_BYTES) {
    headers.push({ 'dlq.truncated': 'true' }, { 'dlq.original.bytes': String(value.length) })
    value = value.subarray(0, DLQ_VALUE_MAX_BYTES)
  }
  if (droppedHeaders > 0) headers.push({ 'dlq.headers.dropped': String(droppedHeaders) })
  if (key === null && keyBytes > 0) headers.push({ 'dlq.key.dropped.bytes': String(keyBytes) })
  return { value, key, headers }
}

import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import type { TObject, TSchema } from '@sinclair/typebox'
import {
  PC_FIELDS, RASPBERRY_FIELDS, PcReadingSchema, RaspberryReadingSchema, type DeviceKind
} from '../schemas/devices.js'
import type { Reading, Reason } from '../schemas/readings.js'
import { parseTime } from './time.js'
import { decodeThrottled } from '../prediction/throttled.js'
import { memberText } from './json-text.js'
import { verdictFields, type PutResult, type ReadingsRepository } from '../storage/readings-repository.js'

export interface Predictor {
  predict: (kind: DeviceKind, reading: Record<string, unknown>) => {
    probability: number
    prediction: 0 | 1
    source?: 'hardware' | 'model'
    reasons?: Reason[]
    missing?: string[]
    threshold?: number
  }
}

export type Validation = { ok: true, reading: Reading } | { ok: false, reasons: string[] }

export interface IngestResult {
  stored: number
  /** identical redeliveries of stored readings, ignored */
  duplicates: number
  /** invalid readings, and readings under a uuid already stored with other values */
  rejected: Array<{ index: number, reasons: string[] }>
}

export interface IngestOptions {
  repository: ReadingsRepository
  predictor: Predictor
  /** how far ahead of this clock a reading's time may be (MAX_CLOCK_SKEW_SECONDS; default 300 s) */
  maxClockSkewMs?: number
  /** the IANA zone of times written without one (LEGACY_TIMEZONE; default UTC) */
  legacyTimeZone?: string
  now?: () => number
}

interface KindSpec {
  schema: TObject
  check: TypeCheck<TSchema>
  fields: readonly string[]
}

const KINDS: Record<DeviceKind, KindSpec> = {
  pc: { schema: PcReadingSchema, check: TypeCompiler.Compile(PcReadingSchema), fields: PC_FIELDS },
  raspberry: { schema: RaspberryReadingSchema, check: TypeCompiler.Compile(RaspberryReadingSchema), fields: RASPBERRY_FIELDS }
}

const MAX_REASONS = 10

const SHOWN_CHARS = 40

/**
 * A short, escaped account of a value from a message: bounded whatever it is (no JSON.stringify
 * of arrays or objects, which recurses), and never throws. `sent` is the value's text as sent,
 * quoted for numbers (JSON.parse reads `1e400` as Infinity).
 */
export function show (value: unknown, sent?: string): string {
  try {
    switch (typeof value) {
      case 'number':
        if (sent !== undefined && /^-?[0-9]/.test(sent)) return sent
        return Object.is(value, -0) ? '-0' : String(value)
      case 'string': {
        const cut = value.length > SHOWN_CHARS
        return cut ? `${JSON.stringify(value.slice(0, SHOWN_CHARS))}… (${value.length} characters)` : JSON.stringify(value)
      }
      case 'undefined': return 'nothing'
      case 'object':
        if (value === null) return 'null'
        if (Array.isArray(value)) return `an array of ${value.length} item${value.length === 1 ? '' : 's'}`
        return `an object of ${Object.keys(value).length} keys`
      case 'boolean':
      case 'bigint':
        return String(value)
      default:
        return `a ${typeof value}`
    }
  } catch {
    return 'a value that cannot be shown'
  }
}

/** A thrown thing as a short line for a reason or a log, without throwing itself. */
export function errorText (err: unknown): string {
  try {
    const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
    return text.length > 200 ? `${text.slice(0, 200)}…` : text
  } catch {
    return 'unknown error'
  }
}

// Readable reasons from the schema itself: "TemperatureCPUPackage must be a number from -50 to 150, or null (got 900)".
function describe (schema: TObject, field: string, value: unknown, sent?: string): string {
  if (value === undefined) return `${field} is required`
  const prop = schema.properties[field] as TSchema & { anyOf?: TSchema[], pattern?: string }
  const numeric = prop?.anyOf?.find(s => s.type === 'number') ?? (prop?.type === 'number' ? prop : undefined)
  if (numeric !== undefined) {
    return `${field} must be a number from ${numeric.minimum as number} to ${numeric.maximum as number}, or null (got ${show(value, sent)})`
  }
  const list = prop?.anyOf?.find(s => s.type === 'array') as (TSchema & { maxItems?: number, items?: { pattern?: string } }) | undefined
  if (list !== undefined) {
    return `${field} must be a list of at most ${list.maxItems ?? '…'} names matching ${list.items?.pattern ?? '…'}, or null (got ${show(value, sent)})`
  }
  const text = prop?.anyOf?.find(s => s.type === 'string') ?? prop
  if (text?.pattern !== undefined) return `${field} must match ${text.pattern as string} (got ${show(value, sent)})`
  if (text?.anyOf !== undefined) return `${field} must be one of ${text.anyOf.map((s: TSchema) => show(s.const)).join(', ')} (got ${show(value, sent)})`
  return `${field} must be a string of ${text?.minLength as number ?? 1} to ${text?.maxLength as number ?? '…'} characters (got ${show(value, sent)})`
}

/** A reading's kind, from the fields it carries ('both': fields of each kind; null: of neither). */
export function kindOfFields (raw: Record<string, unknown>): DeviceKind | 'both' | null {
  const has = (fields: readonly string[]): boolean => fields.some(f => raw[f] !== undefined)
  const pi = has(RASPBERRY_FIELDS)
  const pc = has(PC_FIELDS)
  if (pi && pc) return 'both'
  return pi ? 'raspberry' : pc ? 'pc' : null
}

export class IngestService {
  private readonly repository: ReadingsRepository
  private readonly predictor: Predictor
  private readonly maxClockSkewMs: number
  private readonly zone: { zone: string }
  private readonly now: () => number
  private readonly storedListeners: Array<(readings: Reading[]) => void> = []
  private readonly acceptedListeners: Array<(readings: Reading[]) => Promise<void>> = []

  constructor (options: IngestOptions) {
    this.repository = options.repository
    this.predictor = options.predictor
    this.maxClockSkewMs = options.maxClockSkewMs ?? 300_000
    this.zone = { zone: options.legacyTimeZone ?? 'UTC' }
    this.now = options.now ?? Date.now
  }

  /**
   * Validates one decoded message and predicts; never throws for bad input. `source`, the JSON
   * text it was parsed from, lets a reason quote a number as it was sent.
   */
  validate (raw: unknown, kindHint?: DeviceKind, source?: string): Validation {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      return { ok: false, reasons: ['a reading must be a JSON object'] }
    }
    const input = raw as Record<string, unknown>
    let kind: DeviceKind
    if (input.kind === 'pc' || input.kind === 'raspberry') {
      kind = input.kind
    } else if (input.kind !== undefined) {
      return { ok: false, reasons: [`kind must be "pc" or "raspberry" (got ${show(input.kind)})`] }
    } else {
      const detected = kindOfFields(input)
      if (detected === null) return { ok: false, reasons: ['unknown kind: the reading has no PC or Raspberry Pi sensor field'] }
      // The topic's name only breaks a tie; the reading's own fields decide.
      if (detected === 'both' && kindHint === undefined) return { ok: false, reasons: ['unknown kind: the reading mixes PC and Raspberry Pi fields'] }
      kind = detected === 'both' ? kindHint! : detected
    }
    const spec = KINDS[kind]
    if (!spec.check.Check(input)) {
      const fields = new Set<string>()
      for (const error of spec.check.Errors(input)) {
        fields.add(error.path.split('/')[1] ?? '')
        if (fields.size >= MAX_REASONS) break
      }
      return {
        ok: false,
        reasons: [...fields].map(f => {
          if (f === '') return 'a reading must be a JSON object'
          const sent = source !== undefined && typeof input[f] === 'number' ? memberText(source, f) : undefined
          return describe(spec.schema, f, input[f], sent)
        })
      }
    }
    // DynamoDB refuses a non-zero number under 1e-130 in magnitude: such a reading could never be stored.
    const tiny = spec.fields.filter(f => typeof input[f] === 'number' && input[f] !== 0 && Math.abs(input[f]) < 1e-130)
    if (tiny.length > 0) {
      return {
        ok: false,
        reasons: tiny.map(f => `${f} is too small to store: a number other than 0 must be at least 1e-130 in magnitude (got ${
          show(input[f], source !== undefined ? memberText(source, f) : undefined)})`)
      }
    }
    const time = parseTime(input.loading_datetime as string, this.zone)
    if (time === null) {
      return { ok: false, reasons: [`loading_datetime must be ISO 8601 or YYYY-MM-DD@HH:MM:SS (got ${show(input.loading_datetime)})`] }
    }
    // A reading from the future would hold the device's status until the clock caught up with it.
    if (time.ms - this.now() > this.maxClockSkewMs) {
      return {
        ok: false,
        reasons: [`loading_datetime is in the future: ${time.iso} is more than ${this.maxClockSkewMs / 1000} s ahead of the service's clock (MAX_CLOCK_SKEW_SECONDS)`]
      }
    }

    const reading: Record<string, unknown> = {
      uuid: (input.uuid as string).toLowerCase(),
      device: input.device,
      loading_datetime: time.iso,
      kind
    }
    // Only the model's fields are kept; absent and null sensors are not stored.
    for (const field of spec.fields) {
      const value = input[field]
      if (value !== undefined && value !== null) reading[field] = value
    }
    if (kind === 'raspberry' && typeof reading.throttled === 'string') {
      reading.throttled_flags = decodeThrottled(reading.throttled)
    }
    const { probability, prediction, ...why } = this.predictor.predict(kind, reading)
    reading.prediction = prediction
    reading.probability = probability
    // Why: stored with the reading and its status (test doubles may give only the two numbers).
    Object.assign(reading, verdictFields(why))
    return { ok: true, reading: reading as Reading }
  }

  /** Validates, predicts and stores; rejected readings are reported with their reasons and never written. */
  async ingest (raws: unknown[]): Promise<IngestResult> {
    const valid: Reading[] = []
    const indexes: number[] = []
    const rejected: IngestResult['rejected'] = []
    raws.forEach((raw, index) => {
      let result: Validation
      try {
        result = this.validate(raw)
      } catch (err) {
        result = { ok: false, reasons: [`could not be processed: ${errorText(err)}`] }
      }
      if (result.ok) {
        valid.push(result.reading)
        indexes.push(index)
      } else {
        rejected.push({ index, reasons: result.reasons })
      }
    })
    const { stored, duplicates, conflicts } = await this.store(valid)
    for (const c of conflicts) rejected.push({ index: indexes[c.index]!, reasons: [c.reason] })
    rejected.sort((a, b) => a.index - b.index)
    return { stored: stored.length, duplicates, rejected }
  }

  /** Calls `listener` with the readings of each write once they are stored (the read model, where this process has one). */
  onStored (listener: (readings: Reading[]) => void): void {
    this.storedListeners.push(listener)
  }

  /**
   * Awaits `listener` with the readings of each write that put() took (stored and identical
   * redeliveries, conflicts excluded) before the write counts as done: a failure fails the write, so
   * the batch is delivered again (alerting records its transitions this way).
   */
  onAccepted (listener: (readings: Reading[]) => Promise<void>): void {
    this.acceptedListeners.push(listener)
  }

  /**
   * Stores valid readings; conflicts (a uuid already stored with other values) are reported, never
   * written. Then the history rollups take every reading put() took, duplicates too (a redelivery
   * after a crash between the two repairs them), before the caller acknowledges the batch.
   */
  async store (readings: Reading[]): Promise<PutResult> {
    const result = await this.repository.put(readings)
    const conflicts = new Set(result.conflicts.map(c => c.index))
    const accepted = conflicts.size === 0 ? readings : readings.filter((_, i) => !conflicts.has(i))
    await this.repository.updateRollups(accepted)
    for (const listener of this.acceptedListeners) await listener(accepted)
    if (result.stored.length > 0) for (const listener of this.storedListeners) listener(result.stored)
    return result
  }
}

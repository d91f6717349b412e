import { join } from 'node:path'
import { modelsDir as defaultModelsDir } from '../paths.js'
import { compileModel, DEVICE_KINDS, explainModel, loadModel, ModelFileError, type DeviceKind, type LogisticModel, type ProbabilityFn } from './logistic.js'
import { NEAR_LIMIT_C, numberOf, thermalLimit } from './features.js'
import { decodeThrottled, parseThrottled, throttledNow } from './throttled.js'

/** One reason for a verdict: the reading field, its value, and its weight (signed log-odds such as "+3.1", or words for hardware evidence). */
export interface Reason {
  field: string
  value: number | string
  effect: string
}

export type VerdictSource = 'hardware' | 'model'

export interface Prediction {
  /** Probability of "stressed", rounded to 4 decimals (1 when the hardware reported throttling). */
  probability: number
  prediction: 0 | 1
  /** `hardware`: the device's own throttling report decided; `model`: the model did. */
  source: VerdictSource
  /** The top contributions to the verdict, largest first. */
  reasons: Reason[]
  /** Model inputs the reading lacked (imputed with healthy values, so they never raise the probability). */
  missing: string[]
  /** When the model decided: its threshold (stressed = probability above it). Absent for hardware evidence. */
  threshold?: number
}

export interface Predictor {
  predict: (kind: DeviceKind, reading: Readonly<Record<string, unknown>>) => Prediction
  readonly models: Readonly<Record<DeviceKind, LogisticModel>>
}

/** How many model contributions a verdict lists. */
export const MAX_REASONS = 3

/**
 * NVIDIA clock-event reasons that mean the GPU slows down to protect itself. `sw_power_cap` is left out: a GPU at
 * full load sits at its power limit by design (busy, not stressed); the idle and application-clock reasons too.
 */
export const GPU_SLOWDOWN_REASONS: ReadonlySet<string> = new Set([
  'sw_thermal_slowdown', 'hw_thermal_slowdown', 'hw_slowdown', 'hw_power_brake_slowdown'
])

const NOW_FLAGS = ['under_voltage', 'arm_frequency_capped', 'throttled', 'soft_temperature_limit'] as const

/** The device's own report of throttling, as reasons; empty when it reports none (or cannot). */
export function hardwareEvidence (kind: DeviceKind, reading: Readonly<Record<string, unknown>>): Reason[] {
  const reasons: Reason[] = []
  if (kind === 'raspberry') {
    // A "now" bit is ground truth and beats the model. An invalid mask is ignored.
    const mask = parseThrottled(reading.throttled)
    if (mask !== null && throttledNow(mask)) {
      const flags = decodeThrottled(mask)
      const now = NOW_FLAGS.filter(f => flags[f]).map(f => f.replaceAll('_', ' '))
      reasons.push({ field: 'throttled', value: String(reading.throttled), effect: `${now.join(', ')} now (reported by the firmware)` })
    }
    return reasons
  }
  const events = numberOf(reading.ThrottleEventsCPU)
  if (Number.isFinite(events) && events > 0) {
    reasons.push({ field: 'ThrottleEventsCPU', value: events, effect: 'thermal throttling counted by the kernel' })
  }
  const gpu = reading.ThrottleReasonsGPU
  if (Array.isArray(gpu)) {
    const active = gpu.filter((r): r is string => typeof r === 'string' && GPU_SLOWDOWN_REASONS.has(r))
    if (active.length > 0) reasons.push({ field: 'ThrottleReasonsGPU', value: active.join(','), effect: 'GPU slowdown reported by the driver' })
  }
  return reasons
}

/** A temperature difference as a reading shows it: at most one decimal. */
const formatDegrees = (v: number): string => String(Math.round(v * 10) / 10)

const signed = (v: number): string => `${v >= 0 ? '+' : '-'}${Math.abs(v).toFixed(1)}`

/** Loads models/pc.json and models/raspberry.json; rejects (ModelFileError naming the file) when one is missing or invalid. */
export async function createPredictor ({ modelsDir = defaultModelsDir }: { modelsDir?: string } = {}): Promise<Predictor> {
  const loaded = await Promise.all(DEVICE_KINDS.map(async kind => {
    const path = join(modelsDir, `${kind}.json`)
    const model = await loadModel(path)
    if (model.kind !== kind) throw new ModelFileError(path, `"kind" is "${model.kind}", expected "${kind}"`)
    return model
  }))
  const models = Object.fromEntries(loaded.map(m => [m.kind, m])) as Record<DeviceKind, LogisticModel>
  // Compiled once here so that a model that cannot run fails at start.
  const probability = Object.fromEntries(loaded.map(m => [m.kind, compileModel(m)])) as Record<DeviceKind, ProbabilityFn>

  return {
    models,
    predict (kind, reading) {
      const model = models[kind]
      if (model === undefined || probability[kind] === undefined) throw new TypeError(`Unknown device kind ${JSON.stringify(kind)}: expected "pc" or "raspberry"`)
      const explained = explainModel(model, reading)
      const evidence = hardwareEvidence(kind, reading)
      if (evidence.length > 0) return { probability: 1, prediction: 1, source: 'hardware', reasons: evidence, missing: explained.missing }
      const modelReasons = explained.contributions
        .filter(c => Math.abs(c.effect) >= 0.05)
        .map(c => ({ field: c.field, value: c.value, effect: signed(c.effect) }))
      // At or near the CPU's own limit it throttles by design: stressed whatever the power says (see features.ts).
      const hot = kind === 'pc' ? thermalLimit(reading) : null
      if (hot !== null) {
        const effect = hot.reached
          ? `at the CPU's limit (${hot.limit} °C), where it throttles`
          : `${formatDegrees(hot.limit - hot.temperature)} °C under the CPU's limit (${hot.limit} °C): within ${NEAR_LIMIT_C} °C of it, where throttling starts`
        const reason = { field: 'TemperatureCPUPackage', value: hot.temperature, effect }
        const others = modelReasons.filter(r => r.field !== 'TemperatureCPUPackage').slice(0, MAX_REASONS - 1)
        return { probability: 1, prediction: 1, source: 'model', reasons: [reason, ...others], missing: explained.missing, threshold: model.threshold }
      }
      const rounded = Math.round(explained.probability * 1e4) / 1e4
      // Compared after rounding so the stored pair never contradicts itself (0.70004 shows as 0.7, prediction 0).
      const prediction = rounded > model.threshold ? 1 : 0
      const reasons = modelReasons.slice(0, MAX_REASONS)
      return { probability: rounded, prediction, source: 'model', reasons, missing: explained.missing, threshold: model.threshold }
    }
  }
}

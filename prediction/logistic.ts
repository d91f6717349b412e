import { readFile } from 'node:fs/promises'
import { DeviceKinds, type DeviceKind } from '../schemas/devices.js'
import { featureValue, inputsOf, numberOf } from './features.js'

// The device kinds are the schemas' own; re-exported for the model code.
export type { DeviceKind }
export const DEVICE_KINDS: readonly DeviceKind[] = Object.values(DeviceKinds)

export interface Metrics {
  accuracy: number
  precision: number
  recall: number
  f1: number
  n: number
  /** Mean squared error of the probability (calibration); absent in files written before it was reported. */
  brier?: number
}

/** The JSON stored in models/<kind>.json. */
export interface LogisticModel {
  kind: DeviceKind
  version: 1
  /** Reading field names, in the order of mean/scale/coef. */
  features: string[]
  /** Standardisation fitted on the training split: z = (x - mean) / scale. */
  mean: number[]
  scale: number[]
  /** Coefficients on the standardised features. */
  coef: number[]
  intercept: number
  /**
   * Per feature, the value a missing input is imputed with: the median of the healthy training rows, so that
   * a sensor the host lacks never raises the probability. Absent in older files: the training mean is used.
   */
  healthy?: number[]
  /** prediction = probability > threshold. */
  threshold: number
  /** What probability 1 means, in words. */
  target: string
  trainedAt: string
  source: { files: string[], rows: number }
  metrics: { test: Metrics, train: Metrics }
}

export class ModelFileError extends Error {
  constructor (readonly file: string, problem: string) {
    super(`Invalid model file ${file}: ${problem}`)
    this.name = 'ModelFileError'
  }
}

type Json = Record<string, unknown>

function isObject (value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

// Strict: a typo'd or unexpected key is an error rather than silently ignored.
function checkKeys (value: Json, keys: readonly string[], where: string, fail: (problem: string) => never): void {
  for (const key of keys) if (!(key in value)) fail(`${where}missing "${key}"`)
  for (const key of Object.keys(value)) if (!keys.includes(key)) fail(`${where}unexpected key "${key}"`)
}

function finite (value: unknown, where: string, fail: (problem: string) => never): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(`${where} must be a finite number`)
  return value
}

function numberArray (value: unknown, length: number, where: string, fail: (problem: string) => never): number[] {
  if (!Array.isArray(value)) fail(`"${where}" must be an array of numbers`)
  if (value.length !== length) fail(`"${where}" has ${value.length} entries but "features" has ${length}`)
  return value.map((v, i) => finite(v, `"${where}"[${i}]`, fail))
}

function metrics (value: unknown, where: string, fail: (problem: string) => never): Metrics {
  if (!isObject(value)) fail(`"${where}" must be an object`)
  const keys = ['accuracy', 'precision', 'recall', 'f1', 'n']
  checkKeys(value, 'brier' in value ? [...keys, 'brier'] : keys, `"${where}": `, fail)
  const out: Metrics = { accuracy: 0, precision: 0, recall: 0, f1: 0, n: 0 }
  const scores: Array<'accuracy' | 'precision' | 'recall' | 'f1' | 'brier'> = ['accuracy', 'precision', 'recall', 'f1']
  if ('brier' in value) scores.push('brier')
  for (const key of scores) {
    const v = finite(value[key], `"${where}.${key}"`, fail)
    if (v < 0 || v > 1) fail(`"${where}.${key}" must be between 0 and 1`)
    out[key] = v
  }
  const n = value.n
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) fail(`"${where}.n" must be a non-negative integer`)
  out.n = n
  return out
}

/** Validates a parsed model file; `file` names it in errors. */
export function parseModel (value: unknown, file: string): LogisticModel {
  const fail = (problem: string): never => { throw new ModelFileError(file, problem) }
  if (!isObject(value)) return fail('not a JSON object')
  const keys = ['kind', 'version', 'features', 'mean', 'scale', 'coef', 'intercept', 'threshold', 'target', 'trainedAt', 'source', 'metrics']
  checkKeys(value, 'healthy' in value ? [...keys, 'healthy'] : keys, '', fail)

  const { kind, version, features, target, trainedAt, source } = value
  if (kind !== 'pc' && kind !== 'raspberry') fail(`"kind" must be "pc" or "raspberry", got ${JSON.stringify(kind)}`)
  if (version !== 1) fail(`unsupported "version" ${JSON.stringify(version)} (this code reads version 1)`)
  if (!Array.isArray(features) || features.length === 0 || !features.every((f): f is string => typeof f === 'string' && f !== '')) {
    fail('"features" must be a non-empty array of field names')
  }
  const names = features as string[]
  if (new Set(names).size !== names.length) fail('"features" has duplicate names')
  const scale = numberArray(value.scale, names.length, 'scale', fail)
  if (scale.some(s => s <= 0)) fail('"scale" entries must be > 0')
  const threshold = finite(value.threshold, '"threshold"', fail)
  if (threshold <= 0 || threshold >= 1) fail('"threshold" must be between 0 and 1 (exclusive)')
  if (typeof target !== 'string' || target.trim() === '') fail('"target" must be a non-empty string')
  if (typeof trainedAt !== 'string' || !/^\d{4}-\d\d-\d\dT/.test(trainedAt) || Number.isNaN(Date.parse(trainedAt))) {
    fail('"trainedAt" must be an ISO date-time string')
  }
  if (!isObject(source)) return fail('"source" must be an object')
  checkKeys(source, ['files', 'rows'], '"source": ', fail)
  if (!Array.isArray(source.files) || !source.files.every((f): f is string => typeof f === 'string')) fail('"source.files" must be an array of strings')
  if (typeof source.rows !== 'number' || !Number.isInteger(source.rows) || source.rows < 0) fail('"source.rows" must be a non-negative integer')
  if (!isObject(value.metrics)) return fail('"metrics" must be an object')
  checkKeys(value.metrics, ['test', 'train'], '"metrics": ', fail)

  const model: LogisticModel = {
    kind: kind as DeviceKind,
    version: 1,
    features: [...names],
    mean: numberArray(value.mean, names.length, 'mean', fail),
    scale,
    coef: numberArray(value.coef, names.length, 'coef', fail),
    intercept: finite(value.intercept, '"intercept"', fail),
    threshold,
    target: target as string,
    trainedAt: trainedAt as string,
    source: { files: [...(source.files as string[])], rows: source.rows as number },
    metrics: {
      test: metrics(value.metrics.test, 'metrics.test', fail),
      train: metrics(value.metrics.train, 'metrics.train', fail)
    }
  }
  if ('healthy' in value) model.healthy = numberArray(value.healthy, names.length, 'healthy', fail)
  return model
}

/** Reads and validates a model file; every failure is a ModelFileError naming the file. */
export async function loadModel (path: string): Promise<LogisticModel> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new ModelFileError(path, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new ModelFileError(path, `not valid JSON (${(err as Error).message})`)
  }
  return parseModel(json, path)
}

export function sigmoid (z: number): number {
  // Split by sign so that exp never overflows.
  if (z >= 0) return 1 / (1 + Math.exp(-z))
  const e = Math.exp(z)
  return e / (1 + e)
}

export type ProbabilityFn = (reading: Readonly<Record<string, unknown>>) => number

/** One feature's share of a verdict: the reading field it rests on, that field's value, and its effect on the log-odds. */
export interface Contribution {
  field: string
  value: number
  /** log-odds against the healthy reference (the imputation value); positive pushes towards "stressed" */
  effect: number
}

export interface Explanation {
  probability: number
  /** every present field's contribution (the features resting on it summed), largest effect first */
  contributions: Contribution[]
  /** the reading fields the model needed and did not get, in the model's order */
  missing: string[]
}

/**
 * Compiles a model into a closure that runs per message with no allocation: the weights are folded into
 * w_i = coef_i / scale_i, so z = intercept + Σ w_i (x_i - mean_i).
 *
 * A feature that cannot be computed (a host without that sensor) is imputed with the healthy reference when the
 * model has one (else the training mean): a missing sensor never pushes a reading towards "stressed".
 */
export function compileModel (model: LogisticModel): ProbabilityFn {
  const count = model.features.length
  const names = [...model.features]
  const mean = Float64Array.from(model.mean)
  const fill = Float64Array.from(model.healthy ?? model.mean)
  const weight = Float64Array.from(model.coef, (c, i) => c / model.scale[i]!)
  const intercept = model.intercept
  const plain = names.map(n => inputsOf(n).length === 1 && inputsOf(n)[0] === n)
  return (reading) => {
    let z = intercept
    for (let i = 0; i < count; i++) {
      const x = plain[i] === true ? numberOf(reading[names[i]!]) : featureValue(names[i]!, reading)
      z += weight[i]! * ((Number.isFinite(x) ? x : fill[i]!) - mean[i]!)
    }
    return sigmoid(z)
  }
}

/** The probability with its reasons: each feature's effect relative to the healthy reference, and the inputs missing. */
export function explainModel (model: LogisticModel, reading: Readonly<Record<string, unknown>>): Explanation {
  const fill = model.healthy ?? model.mean
  let z = model.intercept
  const contributions: Contribution[] = []
  const missing: string[] = []
  model.features.forEach((name, i) => {
    const w = model.coef[i]! / model.scale[i]!
    const x = featureValue(name, reading)
    const inputs = inputsOf(name)
    if (!Number.isFinite(x)) {
      for (const input of inputs) if (!Number.isFinite(numberOf(reading[input])) && !missing.includes(input)) missing.push(input)
      z += w * (fill[i]! - model.mean[i]!)
      return
    }
    z += w * (x - model.mean[i]!)
    // Features resting on the same field (the temperature, say) are one reason: their effects add up.
    const field = inputs[0]!
    const effect = w * (x - fill[i]!)
    const same = contributions.find(c => c.field === field)
    if (same === undefined) contributions.push({ field, value: numberOf(reading[field]), effect })
    else same.effect += effect
  })
  contributions.sort((a, b) => Math.abs(b.effect) - Math.abs(a.effect))
  return { probability: sigmoid(z), contributions, missing }
}

const compiled = new WeakMap<LogisticModel, ProbabilityFn>()

/** Probability that the device is stressed / needs technical intervention. Compiles `model` once and caches it. */
export function predictProbability (model: LogisticModel, reading: Readonly<Record<string, unknown>>): number {
  let fn = compiled.get(model)
  if (fn === undefined) {
    fn = compileModel(model)
    compiled.set(model, fn)
  }
  return fn(reading)
}

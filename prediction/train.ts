import { readdir, readFile, mkdir, writeFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { compileModel, type DeviceKind, type LogisticModel, type Metrics } from './logistic.js'
import { parseThrottled, throttledNow } from './throttled.js'
import { C_PER_W, featureValue, IDLE_C, IDLE_W, POWER_CLIP_W, REFERENCE_CLOCK_MAX_MHZ, thermalLimit } from './features.js'

/** The four CPU sensors every PC has: the CSV columns read. The GPU columns are useless: pc1's GPU temperature is 0 throughout, pc2 has none. */
export const PC_FEATURES = ['ClockCPUCoreOne', 'TemperatureCPUPackage', 'LoadCPUTotal', 'PowerCPUPackage'] as const
/**
 * What the PC model sees (prediction/features.ts): heat (relative to the CPU's own limit when known), power at that
 * heat, and the clock lost under load. Load is no input of its own: busy is not stressed.
 */
export const PC_MODEL_FEATURES = ['HeatCPU', 'PowerCPU', 'ClockDeficitUnderLoad', 'PowerPerLoad', 'ClockBoostWhenWarm'] as const
const PC_TARGET_COLUMN = 'NoTechnicalInterventionRequired'

/**
 * Raspberry Pi feature: the SoC temperature from sysfs, CPU_temp_celsius, alone. The other fields are left out:
 * - GPU_temp_celsius: the same sensor read through vcgencmd (r = 0.999 in the data). Two copies split the weight,
 *   and with mean imputation a reading lacking one of them would lose half its signal (a Pi at 90 °C without
 *   vcgencmd would score as fine). CPU_temp_celsius needs no vcgencmd, so it is the one kept.
 * - memory_arm_bytes, memory_gpu_bytes: constant, the boot-time memory split (configuration, not state).
 * - voltage_sdram_{c,i,p}_v: constant 1.1 V in the data; a fixed rail, no information.
 * - frequency_pwm_hz: two values 0.01 % apart, a fixed peripheral clock.
 * - frequency_arm_hz, frequency_core_hz, voltage_core_v: these are what the firmware changes WHEN it throttles, so
 *   they restate the target instead of predicting it (in this data core 333 MHz ⇔ throttled), the reading's own
 *   `throttled` mask already says so at runtime, and they depend on the CPU governor: an idle Pi on the default
 *   "ondemand" governor runs at low clocks and would look throttled. Temperature is the cause (the only "now" bit
 *   in the data is the soft temperature limit), so a hot Pi is flagged before the firmware reacts.
 */
export const RASPBERRY_FEATURES = ['CPU_temp_celsius'] as const
const RASPBERRY_TARGET_COLUMN = 'throttled'

/** The model's inputs per kind (the CSV columns are `featuresOf`). */
export function modelFeaturesOf (kind: DeviceKind): readonly string[] {
  return kind === 'pc' ? PC_MODEL_FEATURES : RASPBERRY_FEATURES
}

/** How many healthy busy PC rows are added to the training split, and the seed that draws them. */
export const HEALTHY_BUSY_ROWS = 100
export const HEALTHY_BUSY_SEED = 4000

/**
 * Healthy busy machines, which the original data lacks (its "fine" rows are light load at ≤ 12 W): 40–100 % load,
 * the clock within 12 % of the maximum, 8 W plus up to 65 W scaled by the load, and a temperature that follows the
 * power (about 0.45 °C per W above the original machine's idle 50 °C, capped at 85 °C). Raw CSV columns, label 0.
 */
export function healthyBusyRows (count = HEALTHY_BUSY_ROWS, seed = HEALTHY_BUSY_SEED): number[][] {
  const random = seededRandom(seed)
  const rows: number[][] = []
  for (let i = 0; i < count; i++) {
    const load = 40 + 60 * random()
    const power = 8 + (15 + 50 * random()) * load / 100
    const clock = REFERENCE_CLOCK_MAX_MHZ * (0.88 + 0.12 * random())
    const temperature = Math.min(85, IDLE_C + C_PER_W * (power - IDLE_W) + 4 * random() - 3)
    rows.push([clock, temperature, load, Math.min(power, POWER_CLIP_W + 8)])
  }
  return rows
}

export const TARGETS: Readonly<Record<DeviceKind, string>> = {
  pc: 'needs technical intervention (1 - NoTechnicalInterventionRequired)',
  raspberry: 'throttled now: any of bits 0-3 of the vcgencmd get_throttled mask set (under-voltage, ARM frequency capped, throttled, soft temperature limit)'
}

/** Fixed so that the split, hence the committed figures, are reproducible. */
export const SPLIT_SEED = 20221006
export const TEST_FRACTION = 0.2
/**
 * Candidate L2 penalties on the mean log-loss (the intercept is not penalised). One is chosen per model by stratified
 * 5-fold cross-validation on the training split: a fixed 0.01 (about scikit-learn's default C = 1 at this n) shrinks
 * the Pi's sharp temperature boundary so much that nothing ever crosses 0.7.
 */
export const L2_GRID = [1e-1, 1e-2, 1e-3, 1e-4] as const
export const CV_FOLDS = 5
/** The original's threshold: used when a threshold is not chosen (and the highest candidate). */
export const THRESHOLD = 0.7
/** Candidate decision thresholds, one chosen per model by cross-validation on the training split (`chooseThreshold`). */
export const THRESHOLD_GRID = [0.3, 0.4, 0.5, 0.6, 0.7] as const
/** The PC threshold's grid (`chooseThresholdForRecall`): 0.05 to 0.95 in steps of 0.01. */
export const FINE_THRESHOLD_GRID: readonly number[] = Array.from({ length: 91 }, (_, i) => (5 + i) / 100)
/** Repetitions of the stratified k-fold cross-validation the PC threshold is chosen on (seeds SPLIT_SEED, SPLIT_SEED + 1, ...). */
export const THRESHOLD_REPEATS = 10
/** Outer repetitions of the nested cross-validation over all PC rows, and the offset of their seeds from SPLIT_SEED. */
export const NESTED_REPEATS = 5
export const NESTED_SEED_OFFSET = 100

/**
 * Repairs for the lost decimal separators of the original Raspberry Pi file (GPU 837 → 83.7 °C, CPU 82289 → 82.289 °C,
 * core 9084 → 0.9084 V, SDRAM 11 → 1.1 V). A value is only touched when it is physically impossible, so clean data
 * passes unchanged: temperatures above 150 °C get two integer digits back (the README's rule), voltages above 5 V
 * are divided by 10 until below 5 V (the rails here are around 1 V).
 */
const DECIMAL_REPAIRS: Readonly<Record<string, { impossibleAbove: number, restoreBelow: number }>> = {
  GPU_temp_celsius: { impossibleAbove: 150, restoreBelow: 100 },
  CPU_temp_celsius: { impossibleAbove: 150, restoreBelow: 100 },
  voltage_core_v: { impossibleAbove: 5, restoreBelow: 5 },
  voltage_sdram_c_v: { impossibleAbove: 5, restoreBelow: 5 },
  voltage_sdram_i_v: { impossibleAbove: 5, restoreBelow: 5 },
  voltage_sdram_p_v: { impossibleAbove: 5, restoreBelow: 5 }
}

export function repairDecimal (field: string, value: number): number {
  const rule = DECIMAL_REPAIRS[field]
  if (rule === undefined || !(value > rule.impossibleAbove)) return value
  let digits = 0
  while (value / 10 ** digits >= rule.restoreBelow) digits++
  // One division by a power of ten keeps 8375 → 83.75 exact, where repeated /10 would drift.
  return value / 10 ** digits
}

export class TrainingDataError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'TrainingDataError'
  }
}

export interface CsvTable {
  file: string
  header: string[]
  /** Whether numbers use a comma as decimal mark (semicolon-separated files). */
  decimalComma: boolean
  rows: Array<{ line: number, cells: string[] }>
}

/** Minimal CSV reader for sensor exports: `;` with decimal comma (or `,` with decimal point), no quoted delimiters. */
export function parseCsv (text: string, file: string): CsvTable {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/)
  const first = lines.findIndex(l => l.trim() !== '')
  if (first === -1) throw new TrainingDataError(`${file}: empty file`)
  const headerLine = lines[first]!
  const delimiter = headerLine.includes(';') ? ';' : ','
  const unquote = (cell: string): string => cell.trim().replace(/^"(.*)"$/, '$1').trim()
  const header = headerLine.split(delimiter).map(unquote)
  const rows: CsvTable['rows'] = []
  for (let i = first + 1; i < lines.length; i++) {
    const line = lines[i]!
    if (line.trim() === '') continue
    const cells = line.split(delimiter).map(unquote)
    if (cells.length !== header.length) {
      throw new TrainingDataError(`${file}:${i + 1}: expected ${header.length} fields, got ${cells.length}`)
    }
    rows.push({ line: i + 1, cells })
  }
  return { file, header, decimalComma: delimiter === ';', rows }
}

const NUMBER_PATTERN = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/

function parseNumber (cell: string, decimalComma: boolean): number | null {
  const text = decimalComma ? cell.replace(',', '.') : cell
  return NUMBER_PATTERN.test(text) ? Number(text) : null
}

/** A training file's kind, from its CSV header (null: the columns of neither, or no target column). */
export function kindOfColumns (header: readonly string[]): DeviceKind | null {
  const has = (names: readonly string[]): boolean => names.every(n => header.includes(n))
  const pc = has([...PC_FEATURES, PC_TARGET_COLUMN])
  const raspberry = has([...RASPBERRY_FEATURES, RASPBERRY_TARGET_COLUMN])
  if (pc === raspberry) return null
  return pc ? 'pc' : 'raspberry'
}

export interface LabelledFile {
  kind: DeviceKind
  file: string
  /** Feature values per row, in the order of the kind's feature list. */
  x: number[][]
  y: Array<0 | 1>
  /** Identity of an observation, for dropping rows that appear twice (feature values, target, timestamp if any). */
  keys: string[]
  /** Count of values repaired by `repairDecimal`, per column. */
  repaired: Record<string, number>
}

export function featuresOf (kind: DeviceKind): readonly string[] {
  return kind === 'pc' ? PC_FEATURES : RASPBERRY_FEATURES
}

export function labelTable (table: CsvTable): LabelledFile {
  const { file, header, decimalComma } = table
  const kind = kindOfColumns(header)
  if (kind === null) {
    throw new TrainingDataError(`${file}: unknown CSV shape (columns: ${header.filter(h => h !== '').join(', ') || 'none'}); ` +
      `expected a PC file with ${[...PC_FEATURES, PC_TARGET_COLUMN].join(', ')} or a Raspberry Pi file with ${[...RASPBERRY_FEATURES, RASPBERRY_TARGET_COLUMN].join(', ')}`)
  }
  const features = featuresOf(kind)
  const column = (name: string): number => header.indexOf(name)
  const featureColumns = features.map(column)
  const repairColumns = kind === 'raspberry' ? Object.keys(DECIMAL_REPAIRS).filter(f => header.includes(f)) : []
  const timeColumn = column('loading_datetime')
  const out: LabelledFile = { kind, file, x: [], y: [], keys: [], repaired: Object.fromEntries(repairColumns.map(c => [c, 0])) }

  for (const { line, cells } of table.rows) {
    const values: Record<string, number> = {}
    // Every repairable column is checked (not only the features) so that the report shows what was fixed.
    for (const name of new Set([...features, ...repairColumns])) {
      const cell = cells[column(name)]!
      const value = parseNumber(cell, decimalComma)
      if (value === null) {
        // Only the model's features must be numbers; the rest is checked for the repair report alone.
        if (!(features as readonly string[]).includes(name)) continue
        throw new TrainingDataError(`${file}:${line}: column ${name} is not a number: ${JSON.stringify(cell)}`)
      }
      const fixed = kind === 'raspberry' ? repairDecimal(name, value) : value
      if (fixed !== value) out.repaired[name] = (out.repaired[name] ?? 0) + 1
      values[name] = fixed
    }
    let label: 0 | 1
    if (kind === 'pc') {
      const cell = cells[column(PC_TARGET_COLUMN)]!
      const fine = parseNumber(cell, decimalComma)
      if (fine !== 0 && fine !== 1) throw new TrainingDataError(`${file}:${line}: ${PC_TARGET_COLUMN} must be 0 or 1, got ${JSON.stringify(cell)}`)
      label = fine === 1 ? 0 : 1
    } else {
      const cell = cells[column(RASPBERRY_TARGET_COLUMN)]!
      const mask = parseThrottled(cell)
      if (mask === null) throw new TrainingDataError(`${file}:${line}: throttled is not a hex mask: ${JSON.stringify(cell)}`)
      label = throttledNow(mask) ? 1 : 0
    }
    const x = featureColumns.map((_, i) => values[features[i]!]!)
    out.x.push(x)
    out.y.push(label)
    out.keys.push(JSON.stringify([x, label, timeColumn === -1 ? null : cells[timeColumn]]))
  }
  return out
}

export interface KindDataset {
  kind: DeviceKind
  features: readonly string[]
  files: string[]
  rowsRead: number
  /** Rows dropped because the same observation appeared before (data_pc_2.csv's rows all reappear in data_pc_1.csv). */
  duplicatesDropped: number
  repaired: Record<string, number>
  x: number[][]
  y: Array<0 | 1>
}

/** Reads every *.csv of a folder (sorted by name) and groups the rows by device kind. */
export async function readTrainingFolder (folder: string): Promise<KindDataset[]> {
  let names: string[]
  try {
    if (!(await stat(folder)).isDirectory()) throw new TrainingDataError(`${folder} is not a folder`)
    names = await readdir(folder)
  } catch (err) {
    if (err instanceof TrainingDataError) throw err
    const code = (err as NodeJS.ErrnoException).code
    throw new TrainingDataError(code === 'ENOENT' ? `training folder not found: ${folder}` : `cannot read training folder ${folder}: ${(err as Error).message}`)
  }
  const csvFiles = names.filter(n => n.toLowerCase().endsWith('.csv')).sort()
  if (csvFiles.length === 0) throw new TrainingDataError(`no .csv files in ${folder}`)

  const labelled: LabelledFile[] = []
  for (const name of csvFiles) {
    let text: string
    try {
      text = await readFile(join(folder, name), 'utf8')
    } catch (err) {
      throw new TrainingDataError(`cannot read ${join(folder, name)}: ${(err as Error).message}`)
    }
    labelled.push(labelTable(parseCsv(text, name)))
  }

  const datasets: KindDataset[] = []
  for (const kind of ['pc', 'raspberry'] as const) {
    const parts = labelled.filter(l => l.kind === kind)
    if (parts.length === 0) continue
    const data: KindDataset = { kind, features: featuresOf(kind), files: [], rowsRead: 0, duplicatesDropped: 0, repaired: {}, x: [], y: [] }
    // A copy of a row in both splits would make the test figures measure memory, not generalisation.
    const seen = new Set<string>()
    for (const part of parts) {
      data.files.push(part.file)
      data.rowsRead += part.x.length
      for (const [column, count] of Object.entries(part.repaired)) data.repaired[column] = (data.repaired[column] ?? 0) + count
      part.keys.forEach((key, i) => {
        if (seen.has(key)) {
          data.duplicatesDropped++
          return
        }
        seen.add(key)
        data.x.push(part.x[i]!)
        data.y.push(part.y[i]!)
      })
    }
    datasets.push(data)
  }
  return datasets
}

/** mulberry32: a tiny seeded PRNG, enough for a reproducible shuffle. */
export function seededRandom (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function shuffledByClass (y: ReadonlyArray<0 | 1>, random: () => number): number[][] {
  return ([0, 1] as const).map(label => {
    const indices = y.flatMap((v, i) => (v === label ? [i] : []))
    for (let i = indices.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      const tmp = indices[i]!
      indices[i] = indices[j]!
      indices[j] = tmp
    }
    return indices
  })
}

/** Per class: Fisher–Yates shuffle, then round(testFraction × class size) rows to test. Indices come back sorted. */
export function stratifiedSplit (y: ReadonlyArray<0 | 1>, seed = SPLIT_SEED, testFraction = TEST_FRACTION): { train: number[], test: number[] } {
  const train: number[] = []
  const test: number[] = []
  for (const indices of shuffledByClass(y, seededRandom(seed))) {
    const nTest = Math.round(indices.length * testFraction)
    test.push(...indices.slice(0, nTest))
    train.push(...indices.slice(nTest))
  }
  return { train: train.sort((a, b) => a - b), test: test.sort((a, b) => a - b) }
}

/** Fold number per row, each class dealt round-robin over the folds after a seeded shuffle. */
export function stratifiedFolds (y: ReadonlyArray<0 | 1>, folds: number, seed: number): number[] {
  const fold = new Array<number>(y.length).fill(0)
  for (const indices of shuffledByClass(y, seededRandom(seed))) indices.forEach((row, i) => { fold[row] = i % folds })
  return fold
}

export function standardisation (x: readonly number[][]): { mean: number[], scale: number[] } {
  const d = x[0]?.length ?? 0
  const mean = new Array<number>(d).fill(0)
  const scale = new Array<number>(d).fill(0)
  for (const row of x) for (let j = 0; j < d; j++) mean[j]! += row[j]! / x.length
  for (const row of x) for (let j = 0; j < d; j++) scale[j]! += (row[j]! - mean[j]!) ** 2 / x.length
  // A constant column gets scale 1: it standardises to 0 and the penalty keeps its coefficient at 0.
  return { mean, scale: scale.map(v => (v > 0 ? Math.sqrt(v) : 1)) }
}

function solve (a: number[][], b: number[]): number[] {
  // Gaussian elimination with partial pivoting; the systems here are at most a handful of unknowns.
  const n = b.length
  const m = a.map((row, i) => [...row, b[i]!])
  for (let col = 0; col < n; col++) {
    let pivot = col
    for (let r = col + 1; r < n; r++) if (Math.abs(m[r]![col]!) > Math.abs(m[pivot]![col]!)) pivot = r
    if (Math.abs(m[pivot]![col]!) < 1e-300) throw new Error('singular Hessian')
    const tmp = m[col]!
    m[col] = m[pivot]!
    m[pivot] = tmp
    const p = m[col]!
    for (let r = col + 1; r < n; r++) {
      const row = m[r]!
      const f = row[col]! / p[col]!
      for (let c = col; c <= n; c++) row[c]! -= f * p[c]!
    }
  }
  const out = new Array<number>(n).fill(0)
  for (let r = n - 1; r >= 0; r--) {
    const row = m[r]!
    let s = row[n]!
    for (let c = r + 1; c < n; c++) s -= row[c]! * out[c]!
    out[r] = s / row[r]!
  }
  return out
}

function logSigmoid (z: number): number {
  return z >= 0 ? -Math.log1p(Math.exp(-z)) : z - Math.log1p(Math.exp(z))
}

/**
 * L2-penalised logistic regression on already standardised features, by Newton's method with a backtracking line
 * search: minimises mean log-loss + (l2 / 2)·‖coef‖². Deterministic (starts at zero).
 */
export function fitLogistic (z: readonly number[][], y: ReadonlyArray<0 | 1>, l2: number): { coef: number[], intercept: number } {
  const n = y.length
  const d = z[0]?.length ?? 0
  // theta[0] is the intercept.
  let theta = new Array<number>(d + 1).fill(0)
  const linear = (t: readonly number[], row: readonly number[]): number => {
    let s = t[0]!
    for (let j = 0; j < d; j++) s += t[j + 1]! * row[j]!
    return s
  }
  const objective = (t: readonly number[]): number => {
    let loss = 0
    for (let i = 0; i < n; i++) {
      const s = linear(t, z[i]!)
      loss -= y[i] === 1 ? logSigmoid(s) : logSigmoid(-s)
    }
    let penalty = 0
    for (let j = 1; j <= d; j++) penalty += t[j]! ** 2
    return loss / n + (l2 / 2) * penalty
  }

  let current = objective(theta)
  for (let iteration = 0; iteration < 100; iteration++) {
    const grad = new Array<number>(d + 1).fill(0)
    const hess = Array.from({ length: d + 1 }, () => new Array<number>(d + 1).fill(0))
    for (let i = 0; i < n; i++) {
      const row = z[i]!
      const p = 1 / (1 + Math.exp(-linear(theta, row)))
      const w = p * (1 - p) / n
      const r = (p - y[i]!) / n
      for (let a = 0; a <= d; a++) {
        const xa = a === 0 ? 1 : row[a - 1]!
        grad[a]! += r * xa
        for (let b = 0; b <= a; b++) hess[a]![b]! += w * xa * (b === 0 ? 1 : row[b - 1]!)
      }
    }
    for (let a = 0; a <= d; a++) for (let b = a + 1; b <= d; b++) hess[a]![b] = hess[b]![a]!
    for (let j = 1; j <= d; j++) {
      grad[j]! += l2 * theta[j]!
      hess[j]![j]! += l2
    }
    const step = solve(hess, grad)
    let size = 1
    let next = theta.map((t, j) => t - step[j]!)
    let value = objective(next)
    while (value > current && size > 1e-10) {
      size /= 2
      next = theta.map((t, j) => t - size * step[j]!)
      value = objective(next)
    }
    const moved = Math.max(...step.map(s => Math.abs(s * size)))
    theta = next
    current = value
    if (moved < 1e-12) break
  }
  return { coef: theta.slice(1), intercept: theta[0]! }
}

export interface FittedModel {
  mean: number[]
  scale: number[]
  coef: number[]
  intercept: number
}

/** Standardises with the statistics of `x` itself, then fits. */
export function fitStandardised (x: readonly number[][], y: ReadonlyArray<0 | 1>, l2: number): FittedModel {
  const { mean, scale } = standardisation(x)
  const z = x.map(row => row.map((v, j) => (v - mean[j]!) / scale[j]!))
  return { mean, scale, ...fitLogistic(z, y, l2) }
}

function logLoss (model: FittedModel, x: readonly number[], y: 0 | 1): number {
  let s = model.intercept
  for (let j = 0; j < x.length; j++) s += model.coef[j]! * (x[j]! - model.mean[j]!) / model.scale[j]!
  return -(y === 1 ? logSigmoid(s) : logSigmoid(-s))
}

/** Rows that join every training part of a cross-validation and are never validated (the added healthy busy rows). */
export interface AlwaysTrained { x: readonly number[][], y: ReadonlyArray<0 | 1> }

/**
 * Pooled validation probabilities of stratified k-fold cross-validation at one penalty (each fold standardised on
 * its own training part). `always` rows join every training part and are never validated, so the figures are
 * about the CSV's own rows, like the test figures.
 */
export function crossValidatedProbabilities (
  x: readonly number[][], y: ReadonlyArray<0 | 1>, seed: number, l2: number, folds = CV_FOLDS, always: AlwaysTrained = { x: [], y: [] }
): number[] {
  const fold = stratifiedFolds(y, folds, seed)
  const out = new Array<number>(y.length).fill(0)
  for (let k = 0; k < folds; k++) {
    const inner = y.flatMap((_, i) => (fold[i] !== k ? [i] : []))
    const model = fitStandardised([...inner.map(i => x[i]!), ...always.x], [...inner.map(i => y[i]!), ...always.y], l2)
    y.forEach((label, i) => { if (fold[i] === k) out[i] = Math.exp(-logLoss(model, x[i]!, 1)) })
  }
  return out
}

/**
 * The L2 penalty of `grid` with the lowest pooled validation log-loss over stratified k-fold cross-validation.
 * Ties go to the stronger penalty.
 */
export function chooseL2 (
  x: readonly number[][], y: ReadonlyArray<0 | 1>, seed: number, grid: readonly number[] = L2_GRID, folds = CV_FOLDS,
  always: AlwaysTrained = { x: [], y: [] }
): { l2: number, cvLogLoss: number, probabilities: number[] } {
  let best = { l2: grid[0]!, cvLogLoss: Number.POSITIVE_INFINITY, probabilities: [] as number[] }
  for (const l2 of grid) {
    const probabilities = crossValidatedProbabilities(x, y, seed, l2, folds, always)
    const clip = (p: number): number => Math.min(Math.max(p, 1e-15), 1 - 1e-15)
    const cvLogLoss = probabilities.reduce((sum, p, i) => sum - Math.log(y[i] === 1 ? clip(p) : 1 - clip(p)), 0) / y.length
    if (cvLogLoss < best.cvLogLoss - 1e-12) best = { l2, cvLogLoss, probabilities }
  }
  return best
}

/**
 * The decision threshold of `grid` with the fewest errors on cross-validated probabilities (the issue's targets
 * are accuracy and recall, figures of the decision, not of the probability). Ties go to the higher threshold:
 * fewer alarms.
 */
export function chooseThreshold (
  probabilities: readonly number[], y: ReadonlyArray<0 | 1>, grid: readonly number[] = THRESHOLD_GRID
): { threshold: number, cvErrors: number, cvMissed: number } {
  let best = { threshold: grid[grid.length - 1]!, cvErrors: Number.POSITIVE_INFINITY, cvMissed: 0 }
  for (const threshold of [...grid].sort((a, b) => b - a)) {
    let errors = 0
    let missed = 0
    probabilities.forEach((p, i) => {
      if ((p > threshold ? 1 : 0) === y[i]) return
      errors++
      if (y[i] === 1) missed++
    })
    if (errors < best.cvErrors) best = { threshold, cvErrors: errors, cvMissed: missed }
  }
  return best
}

/** Cross-validated figures of a decision: pooled over `repeats` repetitions of the k-fold partition. */
export interface CvFigures {
  accuracy: number
  precision: number
  recall: number
  brier: number
  /** Rows per repetition, and of them needing intervention. */
  rows: number
  positives: number
  repeats: number
  /** Errors and missed needs-intervention rows, summed over the repetitions. */
  errors: number
  missed: number
}

/** `threshold`: one for all rows, or one per row (the nested cross-validation chooses one per outer fold). */
export function cvFigures (
  probabilities: readonly number[], y: ReadonlyArray<0 | 1>, threshold: number | readonly number[], repeats: number
): CvFigures {
  let tp = 0
  let fp = 0
  let fn = 0
  let brier = 0
  probabilities.forEach((p, i) => {
    const predicted = p > (typeof threshold === 'number' ? threshold : threshold[i]!)
    if (predicted && y[i] === 1) tp++
    else if (predicted) fp++
    else if (y[i] === 1) fn++
    brier += (p - y[i]!) ** 2
  })
  const n = y.length
  return {
    accuracy: round4(n === 0 ? 0 : 1 - (fp + fn) / n),
    precision: round4(tp + fp === 0 ? 0 : tp / (tp + fp)),
    recall: round4(tp + fn === 0 ? 0 : tp / (tp + fn)),
    brier: round4(n === 0 ? 0 : brier / n),
    rows: n / repeats,
    positives: (tp + fn) / repeats,
    repeats,
    errors: fp + fn,
    missed: fn
  }
}

/**
 * Issue 17's rule for the PC: the highest threshold of `grid` whose cross-validated recall of needs-intervention is at
 * least `recall` and whose cross-validated accuracy is at least `accuracy` (missing a machine that needs intervention
 * costs more than a false alarm; the highest such threshold keeps the false alarms as few as that recall allows).
 * When none qualifies: the fewest errors (ties: the higher threshold). `probabilities` and `y` are pooled over
 * `repeats` repetitions of the cross-validation.
 */
export function chooseThresholdForRecall (
  probabilities: readonly number[], y: ReadonlyArray<0 | 1>, repeats: number,
  targets: { recall: number, accuracy: number } = PC_TARGETS, grid: readonly number[] = FINE_THRESHOLD_GRID
): { threshold: number, met: boolean, cv: CvFigures } {
  const sorted = [...grid].sort((a, b) => b - a)
  for (const threshold of sorted) {
    const cv = cvFigures(probabilities, y, threshold, repeats)
    // Compared unrounded: a recall of 0.95996 is not 0.96.
    const recall = cv.positives === 0 ? 0 : 1 - cv.missed / (cv.positives * repeats)
    const accuracy = 1 - cv.errors / (cv.rows * repeats)
    if (recall >= targets.recall && accuracy >= targets.accuracy) return { threshold, met: true, cv }
  }
  const { threshold } = chooseThreshold(probabilities, y, sorted)
  return { threshold, met: false, cv: cvFigures(probabilities, y, threshold, repeats) }
}

const round4 = (v: number): number => Math.round(v * 1e4) / 1e4

function median (values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length === 0 ? 0 : sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Positive class = 1 (stressed); precision/recall/F1 are 0 when undefined (no predicted or no actual positives). */
export function classificationMetrics (actual: ReadonlyArray<0 | 1>, predicted: ReadonlyArray<0 | 1>): Metrics {
  let tp = 0
  let fp = 0
  let fn = 0
  let correct = 0
  actual.forEach((a, i) => {
    const p = predicted[i]
    if (a === p) correct++
    if (p === 1 && a === 1) tp++
    else if (p === 1) fp++
    else if (a === 1) fn++
  })
  const precision = tp + fp === 0 ? 0 : tp / (tp + fp)
  const recall = tp + fn === 0 ? 0 : tp / (tp + fn)
  const f1 = precision + recall === 0 ? 0 : 2 * precision * recall / (precision + recall)
  const n = actual.length
  return { accuracy: round4(n === 0 ? 0 : correct / n), precision: round4(precision), recall: round4(recall), f1: round4(f1), n }
}

export interface TrainOptions {
  seed?: number
  testFraction?: number
  /** A fixed penalty instead of the cross-validated choice. */
  l2?: number
  /** A fixed decision threshold instead of the cross-validated choice. */
  threshold?: number
  now?: Date
  /** false: no healthy busy rows added (to measure what they change) */
  healthyBusy?: boolean
  /** true: also run the nested repeated cross-validation over all PC rows (`nestedCrossValidation`; the CLI does, it takes seconds). */
  nested?: boolean
}

/** The nested repeated cross-validation over all rows of a kind: every selection inside each outer training part. */
export interface NestedFigures extends CvFigures {
  /** Per outer repetition. */
  perRepeat: CvFigures[]
  /** The threshold and penalty chosen in each outer training part. */
  thresholds: number[]
  l2s: number[]
  folds: number
}

export interface TrainingReport {
  model: LogisticModel
  folder: string
  rowsRead: number
  duplicatesDropped: number
  repaired: Record<string, number>
  positives: { train: number, test: number }
  /** Healthy busy rows added to the training split. */
  added: number
  /** Test figures of the same features fitted without the added rows (undefined when none were added). */
  withoutAdded?: Metrics
  /** Freshly drawn healthy busy rows (another seed, never trained on) and how many the model calls stressed. */
  healthyBusyCheck: { rows: number, flagged: number }
  /** The penalty used, and its cross-validated log-loss (NaN when given rather than chosen). */
  l2: number
  cvLogLoss: number
  /** Validation errors at the chosen threshold over the cross-validation, of `cvRows` CSV rows of the training split (summed over `cv.repeats`). */
  cvErrors: number
  /** Of them, needs-intervention rows called healthy; of `cvPositives` (per repetition). */
  cvMissed: number
  cvRows: number
  cvPositives: number
  /** The cross-validated figures at the chosen threshold (the PC's pooled over THRESHOLD_REPEATS repetitions). */
  cv: CvFigures
  /** How the threshold was chosen: 'recall' (issue 17's rule, met in cross-validation), 'fewest-errors', 'fixed'. */
  thresholdRule: 'recall' | 'fewest-errors' | 'fixed'
  nested?: NestedFigures
}

interface Selected {
  features: readonly string[]
  mean: number[]
  scale: number[]
  coef: number[]
  intercept: number
  healthy: number[]
  threshold: number
  l2: number
  cvLogLoss: number
  cv: CvFigures
  thresholdRule: TrainingReport['thresholdRule']
  trainX: number[][]
  trainY: Array<0 | 1>
}

const readingOfRaw = (data: KindDataset, raw: readonly number[]): Record<string, number> =>
  Object.fromEntries(data.features.map((f, j) => [f, raw[j]!]))

/** As the service decides: a PC at or within NEAR_LIMIT_C of its CPU's limit is stressed without the model (predictor.ts). */
function decided (kind: DeviceKind, reading: Record<string, number>, p: number): number {
  return kind === 'pc' && thermalLimit(reading) !== null ? 1 : p
}

/**
 * The whole selection and fit on one set of CSV rows (`own`, raw columns) plus the added rows: the penalty by
 * cross-validated log-loss, the threshold (PC: issue 17's recall rule on repeated cross-validation; Pi: the fewest
 * errors), then the fit on everything. Used for the shipped model and inside every outer fold of the nested
 * cross-validation, so that both run the same procedure.
 */
function selectAndFit (
  data: KindDataset, ownRaw: ReadonlyArray<readonly number[]>, ownY: ReadonlyArray<0 | 1>, added: ReadonlyArray<readonly number[]>,
  seed: number, options: TrainOptions
): Selected {
  const features = modelFeaturesOf(data.kind)
  const row = (raw: readonly number[]): number[] => { const r = readingOfRaw(data, raw); return features.map(f => featureValue(f, r)) }
  const ownX = ownRaw.map(row)
  const always = { x: added.map(row), y: added.map(() => 0 as const) }
  const chosen = options.l2 === undefined
    ? chooseL2(ownX, ownY, seed, L2_GRID, CV_FOLDS, always)
    : { l2: options.l2, cvLogLoss: Number.NaN, probabilities: crossValidatedProbabilities(ownX, ownY, seed, options.l2, CV_FOLDS, always) }
  const { l2, cvLogLoss } = chosen
  let threshold: number
  let cv: CvFigures
  let thresholdRule: Selected['thresholdRule']
  if (data.kind === 'pc') {
    // Repetitions of the partition (the first is the penalty's own), scored as the service decides.
    const pooled: number[] = []
    const pooledY: Array<0 | 1> = []
    for (let r = 0; r < THRESHOLD_REPEATS; r++) {
      const p = r === 0 ? chosen.probabilities : crossValidatedProbabilities(ownX, ownY, seed + r, l2, CV_FOLDS, always)
      p.forEach((v, i) => pooled.push(decided('pc', readingOfRaw(data, ownRaw[i]!), v)))
      pooledY.push(...ownY)
    }
    if (options.threshold === undefined) {
      const pick = chooseThresholdForRecall(pooled, pooledY, THRESHOLD_REPEATS)
      threshold = pick.threshold
      thresholdRule = pick.met ? 'recall' : 'fewest-errors'
    } else {
      threshold = options.threshold
      thresholdRule = 'fixed'
    }
    cv = cvFigures(pooled, pooledY, threshold, THRESHOLD_REPEATS)
  } else {
    threshold = options.threshold === undefined ? chooseThreshold(chosen.probabilities, ownY).threshold : options.threshold
    thresholdRule = options.threshold === undefined ? 'fewest-errors' : 'fixed'
    cv = cvFigures(chosen.probabilities, ownY, threshold, 1)
  }
  const trainX = [...ownX, ...always.x]
  const trainY = [...ownY, ...always.y]
  const { mean, scale, coef, intercept } = fitStandardised(trainX, trainY, l2)
  // The healthy reference: per feature, the median over the healthy training rows.
  const healthy = features.map((_, j) => median(trainX.filter((_, i) => trainY[i] === 0).map(x => x[j]!)))
  return { features, mean, scale, coef, intercept, healthy, threshold, l2, cvLogLoss, cv, thresholdRule, trainX, trainY }
}

function modelOf (data: KindDataset, selected: Selected, now: Date): LogisticModel {
  const empty: Metrics = { accuracy: 0, precision: 0, recall: 0, f1: 0, n: 0 }
  return {
    kind: data.kind,
    version: 1,
    features: [...selected.features],
    mean: selected.mean,
    scale: selected.scale,
    coef: selected.coef,
    intercept: selected.intercept,
    healthy: selected.healthy,
    threshold: selected.threshold,
    target: TARGETS[data.kind],
    trainedAt: now.toISOString(),
    source: { files: [...data.files], rows: data.y.length },
    metrics: { test: empty, train: empty }
  }
}

/**
 * Nested repeated cross-validation over all rows of a kind (the PC's 201): NESTED_REPEATS repetitions of stratified
 * k-fold (seeds SPLIT_SEED + NESTED_SEED_OFFSET + r); in every outer training part the whole selection of `selectAndFit`
 * runs again, with the healthy busy rows added, and only the outer validation rows are scored, as the service decides.
 */
export function nestedCrossValidation (data: KindDataset, options: TrainOptions = {}): NestedFigures {
  const seed = options.seed ?? SPLIT_SEED
  const added = data.kind === 'pc' && options.healthyBusy !== false ? healthyBusyRows() : []
  const perRepeat: CvFigures[] = []
  const thresholds: number[] = []
  const l2s: number[] = []
  const pooled: number[] = []
  const pooledThreshold: number[] = []
  const pooledY: Array<0 | 1> = []
  for (let r = 0; r < NESTED_REPEATS; r++) {
    const fold = stratifiedFolds(data.y, CV_FOLDS, seed + NESTED_SEED_OFFSET + r)
    const p = new Array<number>(data.y.length).fill(0)
    const t = new Array<number>(data.y.length).fill(0)
    for (let k = 0; k < CV_FOLDS; k++) {
      const inner = data.y.flatMap((_, i) => (fold[i] !== k ? [i] : []))
      const selected = selectAndFit(data, inner.map(i => data.x[i]!), inner.map(i => data.y[i]!), added, seed, options)
      thresholds.push(selected.threshold)
      l2s.push(selected.l2)
      const probability = compileModel(modelOf(data, selected, new Date(0)))
      data.y.forEach((_, i) => {
        if (fold[i] !== k) return
        const reading = readingOfRaw(data, data.x[i]!)
        p[i] = decided(data.kind, reading, probability(reading))
        t[i] = selected.threshold
      })
    }
    perRepeat.push(cvFigures(p, data.y, t, 1))
    pooled.push(...p)
    pooledThreshold.push(...t)
    pooledY.push(...data.y)
  }
  return { ...cvFigures(pooled, pooledY, pooledThreshold, NESTED_REPEATS), perRepeat, thresholds, l2s, folds: CV_FOLDS }
}

export function trainKind (data: KindDataset, folder: string, options: TrainOptions = {}): TrainingReport {
  const seed = options.seed ?? SPLIT_SEED
  const counts = [0, 1].map(label => data.y.filter(v => v === label).length)
  if (counts[0]! < 2 || counts[1]! < 2) {
    throw new TrainingDataError(`${data.kind}: need at least 2 rows of each class to train and test, got ${counts[1]} positive and ${counts[0]} negative (${TARGETS[data.kind]})`)
  }
  const { train, test } = stratifiedSplit(data.y, seed, options.testFraction ?? TEST_FRACTION)
  const readingOf = (raw: readonly number[]): Record<string, number> => readingOfRaw(data, raw)
  // The healthy busy rows go to the training split only: the test figures are about the original's own labels.
  const added = data.kind === 'pc' && options.healthyBusy !== false ? healthyBusyRows() : []
  const trainRaw = [...train.map(i => data.x[i]!), ...added]
  const ownY = train.map(i => data.y[i]!)
  const selected = selectAndFit(data, train.map(i => data.x[i]!), ownY, added, seed, options)
  const { threshold, trainY } = selected
  const model = modelOf(data, selected, options.now ?? new Date())
  // Scored through the runtime predictor, so the figures describe exactly what the service computes.
  const modelProbability = compileModel(model)
  const probability = (reading: Record<string, number>): number => decided(data.kind, reading, modelProbability(reading))
  const score = (rows: ReadonlyArray<readonly number[]>, labels: ReadonlyArray<0 | 1>): Metrics => {
    const p = rows.map(raw => probability(readingOf(raw)))
    return {
      ...classificationMetrics(labels, p.map(v => (v > threshold ? 1 as const : 0 as const))),
      brier: round4(labels.length === 0 ? 0 : p.reduce((sum, v, i) => sum + (v - labels[i]!) ** 2, 0) / labels.length)
    }
  }
  model.metrics = { test: score(test.map(i => data.x[i]!), test.map(i => data.y[i]!)), train: score(trainRaw, trainY) }
  const fresh = data.kind === 'pc' ? healthyBusyRows(50, HEALTHY_BUSY_SEED + 1) : []
  const healthyBusyFlagged = fresh.filter(raw => probability(readingOf(raw)) > threshold).length
  const withoutAdded = added.length > 0 ? trainKind(data, folder, { ...options, healthyBusy: false, nested: false }).model.metrics.test : undefined
  const nested = options.nested === true && data.kind === 'pc' ? nestedCrossValidation(data, options) : undefined
  return {
    model,
    folder,
    withoutAdded,
    rowsRead: data.rowsRead,
    duplicatesDropped: data.duplicatesDropped,
    repaired: data.repaired,
    positives: { train: trainY.filter(v => v === 1).length, test: test.filter(i => data.y[i] === 1).length },
    added: added.length,
    healthyBusyCheck: { rows: fresh.length, flagged: healthyBusyFlagged },
    l2: selected.l2,
    cvLogLoss: selected.cvLogLoss,
    cvErrors: selected.cv.errors,
    cvMissed: selected.cv.missed,
    cvRows: ownY.length,
    cvPositives: ownY.filter(v => v === 1).length,
    cv: selected.cv,
    thresholdRule: selected.thresholdRule,
    ...(nested === undefined ? {} : { nested })
  }
}

/** Reads a folder and trains one model per device kind found in it. */
export async function trainFromFolder (folder: string, options: TrainOptions = {}): Promise<TrainingReport[]> {
  const now = options.now ?? new Date()
  const datasets = await readTrainingFolder(folder)
  return datasets.map(data => trainKind(data, folder, { ...options, now }))
}

const fmt = (v: number): string => v.toFixed(4)

export function formatFiguresTable (reports: readonly TrainingReport[]): string {
  const lines = [
    '| model | split | n | stressed | accuracy | precision | recall | F1 | Brier |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|'
  ]
  for (const { model, positives } of reports) {
    for (const split of ['test', 'train'] as const) {
      const m = model.metrics[split]
      const brier = m.brier === undefined ? '' : fmt(m.brier)
      lines.push(`| ${model.kind} | ${split} | ${m.n} | ${positives[split]} | ${fmt(m.accuracy)} | ${fmt(m.precision)} | ${fmt(m.recall)} | ${fmt(m.f1)} | ${brier} |`)
    }
  }
  const f1 = (c: CvFigures): number => (c.precision + c.recall === 0 ? 0 : 2 * c.precision * c.recall / (c.precision + c.recall))
  const cvRow = (kind: string, split: string, c: CvFigures): string =>
    `| ${kind} | ${split} | ${c.rows} | ${c.positives} | ${fmt(c.accuracy)} | ${fmt(c.precision)} | ${fmt(c.recall)} | ${fmt(f1(c))} | ${fmt(c.brier)} |`
  for (const { model, cv, nested } of reports) {
    lines.push(cvRow(model.kind, `cv of the train split${cv.repeats > 1 ? ` (${cv.repeats} × ${CV_FOLDS}-fold)` : ` (${CV_FOLDS}-fold)`}`, cv))
    if (nested !== undefined) lines.push(cvRow(model.kind, `nested cv, all rows (${NESTED_REPEATS} × ${nested.folds}-fold)`, nested))
  }
  return lines.join('\n')
}

/** Issue 17's targets for the PC model on the held-out split. */
export const PC_TARGETS = { accuracy: 0.95, recall: 0.96 } as const

const THRESHOLD_RULES: Readonly<Record<TrainingReport['thresholdRule'], string>> = {
  recall: 'the highest threshold with cross-validated recall ≥ 0.96 and accuracy ≥ 0.95 (issue 17)',
  'fewest-errors': 'the fewest cross-validated errors',
  fixed: 'given'
}

/** The PC threshold rule and the nested cross-validation, as first committed before the test split was scored with them. */
function decisionRule (reports: readonly TrainingReport[]): string[] {
  const pc = reports.find(r => r.model.kind === 'pc')
  // The wording is about the original's PC files (their row counts and the looks at their test split).
  if (pc === undefined || !pc.model.source.files.some(f => ORIGINAL_FILES.has(f))) return []
  const out = [
    '## Decision rule for issue 17\'s recall target (written before any new figure on the test split)',
    '',
    'Written into this file and committed before the model below was scored on the test split; the test split was not used to choose it.',
    '',
    `- PC threshold: the highest threshold on the grid ${FINE_THRESHOLD_GRID[0]}, ${FINE_THRESHOLD_GRID[1]}, ..., ${FINE_THRESHOLD_GRID[FINE_THRESHOLD_GRID.length - 1]} whose cross-validated recall of needs-intervention is at least ${PC_TARGETS.recall} and whose`,
    `  cross-validated accuracy is at least ${PC_TARGETS.accuracy}; when no threshold qualifies, the one with the fewest cross-validated errors (ties: the higher). The`,
    `  probabilities are pooled over ${THRESHOLD_REPEATS} repetitions of stratified ${CV_FOLDS}-fold cross-validation on the training split (seeds ${SPLIT_SEED} to ${SPLIT_SEED + THRESHOLD_REPEATS - 1}), at the`,
    '  penalty chosen as before, scored as the service decides (stressed at the CPU\'s limit). Reason: the costs are asymmetric (a missed machine that',
    '  needs intervention is worse than a false alarm), the issue names recall 0.96 as the target, and the highest such threshold keeps the false alarms',
    '  as few as that recall allows. Ten repetitions because one 5-fold partition moves the best threshold by several hundredths.',
    '- Pi: unchanged (fewest cross-validated errors over 0.3 to 0.7); the recall target is the PC\'s.',
    '- Evaluation, two estimates, both reported: (a) the fixed stratified 80/20 split as before (40 rows, 20 needing intervention); (b) nested',
    `  repeated cross-validation over all ${pc.model.source.rows} distinct PC rows: ${NESTED_REPEATS} repetitions of stratified ${CV_FOLDS}-fold (seeds ${SPLIT_SEED + NESTED_SEED_OFFSET} to ${SPLIT_SEED + NESTED_SEED_OFFSET + NESTED_REPEATS - 1}); inside every outer`,
    '  training part the whole selection above runs again (healthy busy rows added, penalty by inner cross-validated log-loss, threshold by the rule',
    '  above on inner repeated cross-validation), and only the outer validation rows are scored. Pooled over the repetitions.',
    '- Primary, on grounds of reliability: (b). On (a) recall 0.96 means all 20 of 20 (one row moves recall by 0.05; the 95 % interval of 19 of 20 is',
    '  0.75 to 1.00), and the test split has been looked at several times (listed below). (b) scores every one of the 101 needing-intervention rows',
    '  out of sample in every repetition, with all selection inside. Stated plainly: this choice was made knowing that (a) cannot reach 0.96 with the',
    '  shipped features (its one miss has probability 0.12 and resembles healthy rows, see "Why" below); (a) is reported alongside and its',
    '  figures are not hidden.',
    ''
  ]
  const n = pc.nested
  if (n !== undefined) {
    const spread = (key: 'accuracy' | 'recall'): string => `${fmt(Math.min(...n.perRepeat.map(c => c[key])))} to ${fmt(Math.max(...n.perRepeat.map(c => c[key])))}`
    out.push('Results of (b), after the rule was committed:', '',
      `- Pooled over the ${n.repeats} repetitions: accuracy ${fmt(n.accuracy)}, precision ${fmt(n.precision)}, recall ${fmt(n.recall)}, Brier ${fmt(n.brier)}; ` +
      `${n.missed} of ${n.positives * n.repeats} needs-intervention rows missed, ${n.errors} errors of ${n.rows * n.repeats}.`,
      `- Per repetition: accuracy ${spread('accuracy')}, recall ${spread('recall')} (${n.perRepeat.map(c => c.missed).join(', ')} missed of ${n.positives}).`,
      `- Thresholds chosen in the ${n.thresholds.length} outer training parts: ${Math.min(...n.thresholds)} to ${Math.max(...n.thresholds)} (median ${median(n.thresholds)}); ` +
      `penalties ${[...new Set(n.l2s)].sort((a, b) => b - a).join(', ')}.`,
      '- The margin is the smallest there is: 0.96 of 101 allows 4 misses per repetition, and the pooled figure is exactly that (recall',
      '  0.9604). A sensitivity run, made after these figures were seen and not part of the rule: 20 further outer repetitions (outer',
      '  seeds 20221111 to 20221130, inner seeds moved by the same offsets) gave recall 0.9589 and accuracy 0.9604, per repetition recall',
      '  0.9307 to 0.9703. The recall of this model is about 0.96 give or take 0.01: the target sits inside the estimate\'s noise.',
      '')
  }
  return out
}

const PC_REASONING: readonly string[] = [
  '## Why the PC model looks at heat and at work out of proportion, not at work (issue 17)',
  '',
  'The question is "is this machine burning out or throttling?". The verdict rests on heat, throttling and power or clock',
  'that the load does not explain; load is no input of its own (busy is not stressed):',
  '',
  '- `HeatCPU`: TemperatureCPUPackage, moved onto the training machine\'s scale when the reading carries TemperatureCPUCritical',
  '  (T − (critical − 100 °C)): 10 °C under this CPU\'s own limit reads as 90 °C whatever the limit.',
  '- `PowerCPU`: PowerCPUPackage (clipped at 65 W). At the same temperature more power means the cooling copes, so its weight is',
  '  negative: a hot package at low power is the cooling fault, a warm package at high power is a busy machine.',
  '- `ClockDeficitUnderLoad`: load/100 × (1 − ClockCPUCoreOne / ClockCPUMax), ClockCPUMax 4000 MHz when the reading lacks it:',
  '  the clock lost while there is work to do is throttling; an idle CPU clocking down is not.',
  '- `PowerPerLoad`: PowerCPUPackage / max(LoadCPUTotal, 20 %), W per % of load: a light load drawing a busy machine\'s power',
  '  (the original\'s 27 W rows at 3–25 % load). A busy machine\'s power goes with its load, so the work done does not raise it.',
  '- `ClockBoostWhenWarm`: (1 − load/100) × max(0, clock/ClockCPUMax − 0.85) × a warm ramp (0 at ≤ 50 °C, 1 from 55 °C): a clock',
  '  held near the maximum with little work on a warm package (the original\'s 3.6–3.9 GHz rows at light load). At full load or',
  '  on a cool package (an idle CPU on the performance governor) it is 0.',
  '- Load enters only through these three ratios. Raising it with everything else fixed lowers PowerPerLoad and ClockBoostWhenWarm;',
  '  it raises only ClockDeficitUnderLoad, by the clock lost below the maximum (throttling under load). A healthy busy machine, its',
  '  clock near the maximum, does not get more stressed with more load (60 °C, 35 W, 3.5 of 3.6 GHz: 0.22 at 40 %, 0.0000 at 100 %).',
  '- At or near the CPU\'s limit (TemperatureCPUPackage ≥ TemperatureCPUCritical − 10 °C, the limit 100 °C when unknown) a PC is',
  '  stressed without the model: at the limit it throttles by design whatever its power, and within 10 °C of it one load step takes it',
  '  there (Intel lets the platform lower the throttle point below Tjmax by its TCC activation offset and manages an averaged temperature',
  '  that the package overshoots; AMD boosts up to its limit). The training data has no hot rows at high power to teach the model that,',
  '  and its negative power weight ("the power explains the heat") called 98 °C at 120 W healthy (0.0001). Why 10 °C: the healthy rows',
  '  end at 70 °C (the original\'s) and 85 °C (the added busy rows, on the 100 °C scale), so above 85 °C a healthy verdict is the model',
  '  extrapolating; from 90 °C the rule keeps clear of every row labelled healthy. Chosen from those two facts, not from any figure.',
  '  Its reason names the temperature and says why ("3 °C under the CPU\'s limit (100 °C): within 10 °C of it, where throttling',
  '  starts"), as the at-the-limit reason does ("at the CPU\'s limit (100 °C), where it throttles"); the probability is 1 there.',
  '  The figures above include this rule, and it changes none of them (nor models/pc.json, but for its trainedAt): the CSV\'s 16',
  '  rows above 90 °C (99.6 to 101 °C) all need intervention and the model alone gives each probability 1.0000; no CSV row lies between 70 and 99.5 °C.',
  '- Constraint: a missing input is imputed with its healthy reference (median of the healthy training rows), so the probability',
  '  of a reading with fewer sensors is never raised by what it lacks; a reading with only LoadCPUTotal gets the healthy baseline.',
  '- Healthy busy rows: the original\'s "fine" rows are all light load at ≤ 12.4 W, so any model of them learns "busy = stressed".',
  '  100 rows of healthy busy machines (40–100 % load, clock within 12 % of the maximum, up to 73 W, temperature following the power at',
  '  about 0.45 °C/W from 50 °C, capped at 85 °C) are added to the training split only, labelled healthy; the test split holds only',
  '  the original\'s rows. These rows are an assumption about healthy cooling, stated here, not a measurement. In the',
  '  cross-validation they join every training part and are never validated.',
  '- Selection, on the training split only: the feature set by the fewest cross-validated errors among sets that pass a fixed list',
  '  of sanity readings (the case table of issue 17, a cool idle CPU at its maximum clock, a reading with only a temperature of',
  '  97 °C, 60 °C at 35 W from 40 to 100 % load); then the penalty by cross-validated log-loss and the threshold by issue 17\'s',
  '  recall rule ("Decision rule" above; until then the fewest cross-validated errors, 0.4). The threshold is below the original\'s 0.7',
  '  because the added healthy rows lower every probability of the CSV\'s population and a miss costs more than a false alarm; the',
  '  case table still holds (busy machine at 100 % load 0.0000, at 40 % 0.22, hot machine 1.0000).',
  '',
  'Why recall 0.96 is out of reach on the fixed 80/20 split: 0.96 of 20 needs-intervention test rows means all 20. In the original\'s 201',
  'distinct PC rows, several needs-intervention rows have a healthy row within 1 °C, 8 % load, 2.5 W and 400 MHz (4 of the 81 in',
  'the training split, for example 2357 MHz, 55.7 °C, 2.8 %, 4.9 W needs intervention, 1984 MHz, 56 °C, 6.1 %, 5.0 W does not); they',
  'differ only by artefacts of how the rows were made (the healthy rows have whole-degree temperatures and clocks in steps of',
  '99.2 MHz, the invented ones do not), which no honest model may use. The test split holds one such row (2414 MHz, 57.8 °C,',
  '6.5 %, 5.7 W, needs intervention, probability 0.12); it is the model\'s only test error. Its 10 nearest rows of the training split',
  '(four inputs standardised on the training split, distances 0.17 to 0.28) are all healthy, for example 2381 MHz, 56 °C, 4.9 %, 5.4 W;',
  'so any classifier that answers like its neighbours (k-nearest neighbours for every k up to 10, a smooth model) calls it healthy.',
  'For this model, calling it stressed needs a threshold below 0.12, where the cross-validated accuracy on the training split is',
  '0.915 or less (10 × 5-fold), under the 0.95 target. Recall 0.96 on this split therefore needs the artefacts or the test labels.',
  '',
  'Limits of this model, from the invented labels: an idle CPU at 55 °C or more held at its maximum clock reads as stressed (the',
  'original labels 3.6–3.9 GHz at light load as needing intervention), a light load at a busy machine\'s power too; under the',
  'near-limit band the power still explains the heat: a full load at 88 °C and 45 W reads OK (0.003), at 90 °C (10 °C under a',
  '100 °C limit) it is stressed whatever the power. A CPU built to run near its limit under sustained load (many laptops) reads',
  'stressed while it does, which is what it is doing. Real throttling is caught by the hardware evidence first.',
  '',
  'Every look at the test split during this work, in order. The sanity list and the cross-validation ruled the variants out, but',
  'the figures were seen, so the shipped test figures are somewhat optimistic; the cross-validated ones above are the fairer',
  'estimate. Features HeatCPU, PowerCPU, ClockDeficitUnderLoad, PowerPerLoad, ClockBoostAtLightLoad (no warm ramp),',
  'HeatAbovePower at threshold 0.7 and L2 0.001: 0.9000 / 0.8000; the same with L2 0.0001: 0.9500 / 0.9000; with the',
  'threshold chosen (0.3): 0.9750 / 0.9500, but it called a cool idle CPU at its maximum clock stressed, which the sanity list',
  'then forbade; without any clock-boost feature: 0.8750 / 0.8000 (8 cross-validated errors against 6); with the boost scaled by (T − 50 °C)/10: 0.9750 / 0.9500 but a',
  'reading with only 97 °C read OK; the shipped set (above): 0.9750 / 0.9500 (accuracy / recall). Then, for the recall rule (after the',
  'rule and the nested cross-validation were committed to this file): the shipped features at the rule\'s threshold 0.3, once:',
  '0.9750 / 0.9500, precision 1.0000, Brier 0.0317 (no test row lies between 0.3 and 0.4: the figures are those at 0.4). Known beforehand, from the paragraph',
  'above: the one miss (probability 0.12) stays a miss at any threshold the cross-validation allows. The features of that row were',
  'read again to list its nearest training rows (above).',
  '',
  'Also evaluated for the recall rule, on the training split\'s cross-validation only (10 × 5-fold, never on the test split), and not',
  'shipped: class weights on the needs-intervention rows (they counter the 100 added healthy rows\' shift of the class balance). At',
  'the highest threshold with cross-validated recall ≥ 0.96: weight 1 (shipped) accuracy 0.9584, Brier 0.0419; weight 2: 0.9646,',
  '0.0372 (threshold 0.47); weight 3: 0.9665, 0.0382 (threshold 0.58), all at L2 0.0001. The gain is one row of 161 per repetition,',
  'within the spread of the repetitions, and none of them changes which rows resemble healthy ones; left for a later look, with its own',
  'nested evaluation.',
  '',
  'For comparison, the model shipped before issue 17 (the four raw inputs including load, missing inputs imputed with the training',
  'mean) scored accuracy 0.9250, recall 0.8500 on the same test split, but called the busy healthy machine of the case table stressed',
  '(probability 1.000) and a reading with only LoadCPUTotal 60 stressed (0.999). The colleague\'s heat-only model (HeatCPU, PowerCPU,',
  'ClockDeficitUnderLoad) scored 0.7250 / 0.4500, Brier 0.2042. A boosted decision-stump ensemble over the same features did not',
  'beat the logistic regression in cross-validation (10 errors against 6) and is not shipped.',
  ''
]

const ORIGINAL_FILES = new Set(['data_pc_1.csv', 'data_pc_2.csv', 'data_rasb.csv'])

export function renderEvaluation (reports: readonly TrainingReport[], command: string): string {
  const first = reports[0]
  const date = first?.model.trainedAt ?? new Date().toISOString()
  const out: string[] = [
    '# Model evaluation',
    '',
    `Produced by \`${command}\` on ${date.slice(0, 10)} (trainedAt ${date}).`,
    '',
    `Data: the CSV files of \`${first?.folder ?? '?'}\`; nothing of them is stored in this repository, only the fitted coefficients.`,
    '',
    '## Figures',
    '',
    '"stressed" = rows of class 1 (needs intervention); predicted stressed = probability > the model\'s threshold (below). Recall is the recall of needs-intervention;',
    'Brier is the mean squared error of the probability (0 is perfect; always answering 0.5 scores 0.25). The test split holds only rows of the CSV files;',
    'the PC train split also holds the added healthy busy rows (see below).',
    '',
    formatFiguresTable(reports),
    '',
    '## Method',
    '',
    `- Split: stratified 80/20, per class a Fisher–Yates shuffle driven by mulberry32 seeded with ${SPLIT_SEED}; ${Math.round(TEST_FRACTION * 100)} % of each class (rounded) goes to test.`,
    '- Features standardised with the mean and (population) standard deviation of the training split only.',
    `- Logistic regression fitted by Newton's method with a line search, L2 penalty on the mean log-loss (intercept unpenalised) chosen from ${L2_GRID.join(', ')} by stratified ${CV_FOLDS}-fold cross-validation (log-loss) on the training split only;`,
    `  then the decision threshold: PC by issue 17's recall rule on ${FINE_THRESHOLD_GRID[0]}, ${FINE_THRESHOLD_GRID[1]}, ..., ${FINE_THRESHOLD_GRID[FINE_THRESHOLD_GRID.length - 1]} over ${THRESHOLD_REPEATS} repetitions of the cross-validation (next section);`,
    `  Pi from ${THRESHOLD_GRID.join(', ')} by the fewest errors of the same cross-validated probabilities (ties: the higher threshold).`,
    '  In the cross-validation the added healthy busy rows join every training part and are never validated: the figures are about the CSV rows.',
    '- At prediction time a feature whose inputs are missing is imputed with its healthy reference, the median of the healthy training rows: a missing sensor never',
    '  pushes a reading towards "stressed". The service first looks for hardware evidence (a Pi "now" bit, ThrottleEventsCPU > 0, an NVIDIA thermal or hardware',
    '  slowdown reason); when there is some, it decides (`source: "hardware"`) and the model is not asked.',
    '',
    ...decisionRule(reports)
  ]
  for (const r of reports) {
    const { model } = r
    out.push(`## ${model.kind}`, '',
      `- Target (probability 1): ${model.target}.`,
      `- Features: ${model.features.join(', ')}.`,
      `- Files: ${model.source.files.join(', ')}; ${r.rowsRead} rows read, ${r.duplicatesDropped} duplicate rows dropped, ${model.source.rows} used.`,
      `- L2 penalty ${r.l2}${Number.isNaN(r.cvLogLoss) ? ' (fixed)' : ` (cross-validated log-loss ${r.cvLogLoss.toFixed(4)})`}; threshold ${model.threshold}. ` +
      `Cross-validation on the training split's ${r.cvRows} CSV rows at that penalty and threshold${r.cv.repeats > 1 ? ` (${r.cv.repeats} repetitions of ${CV_FOLDS}-fold, summed)` : ''}: ` +
      `${r.cvErrors} errors of ${r.cvRows * r.cv.repeats} (accuracy ${fmt(r.cv.accuracy)}), ${r.cvMissed} of ${r.cvPositives * r.cv.repeats} needs-intervention rows missed ` +
      `(recall ${fmt(r.cv.recall)}), precision ${fmt(r.cv.precision)}, Brier ${fmt(r.cv.brier)}; threshold rule: ${THRESHOLD_RULES[r.thresholdRule]}.`)
    if (r.added > 0) {
      out.push(`- ${r.added} healthy busy rows added to the training split (\`healthyBusyRows\`, seed ${HEALTHY_BUSY_SEED}); of ${r.healthyBusyCheck.rows} more drawn with ` +
        `another seed and never trained on, ${r.healthyBusyCheck.flagged} are called stressed.`)
    }
    if (r.withoutAdded !== undefined) {
      const w = r.withoutAdded
      out.push(`- Without the added rows the same features score on the test split: accuracy ${fmt(w.accuracy)}, precision ${fmt(w.precision)}, ` +
        `recall ${fmt(w.recall)}, Brier ${w.brier === undefined ? '?' : fmt(w.brier)}.`)
    }
    if (model.kind === 'pc') {
      const t = model.metrics.test
      const met = t.accuracy >= PC_TARGETS.accuracy && t.recall >= PC_TARGETS.recall
      out.push(`- Targets (issue 17): accuracy ≥ ${PC_TARGETS.accuracy}, recall ≥ ${PC_TARGETS.recall}. On the fixed test split: ${met ? 'met' : `**not met** (${fmt(t.accuracy)}, ${fmt(t.recall)}); see "Why" below`}.`)
      const n = r.nested
      if (n !== undefined) {
        const nMet = n.accuracy >= PC_TARGETS.accuracy && 1 - n.missed / (n.positives * n.repeats) >= PC_TARGETS.recall
        out.push(`  On the nested cross-validation (primary, see "Decision rule"): ${nMet ? 'met' : '**not met**'} (${fmt(n.accuracy)}, ${fmt(n.recall)}).`)
      }
    }
    const repaired = Object.entries(r.repaired).filter(([, n]) => n > 0)
    if (repaired.length > 0) out.push(`- Lost decimal separators repaired: ${repaired.map(([c, n]) => `${c} ${n}`).join(', ')} values.`)
    out.push('', '| feature | train mean | train scale | healthy reference | coefficient (standardised) |', '|---|---:|---:|---:|---:|')
    model.features.forEach((f, i) => out.push(
      `| ${f} | ${model.mean[i]!.toPrecision(6)} | ${model.scale[i]!.toPrecision(6)} | ${model.healthy?.[i]?.toPrecision(6) ?? ''} | ${model.coef[i]!.toFixed(4)} |`))
    out.push(`| (intercept) | | | | ${model.intercept.toFixed(4)} |`, '')
  }
  if (reports.some(r => r.model.kind === 'pc' && r.model.features.includes('HeatCPU'))) out.push(...PC_REASONING)
  if (reports.some(r => r.model.source.files.some(f => ORIGINAL_FILES.has(f)))) {
    out.push('## Caveats of the original data', '',
      '- PC: the "needs intervention" rows were invented by the original authors around edge values (a machine that is down sends nothing), so the high figures say little about real machines; n is small, one test error moves accuracy by about 2.5 points.',
      '- PC: every row of data_pc_2.csv also appears in data_pc_1.csv (same four CPU values and target); the copies are dropped before the split, otherwise the test set would largely be a copy of the training set.',
      '- PC: the "fine" rows only cover 54–70 °C, at most about 25 % load and 12 W; the healthy busy rows added to training stand in for the busy machines it lacks.',
      '- PC: the GPU columns are not used: data_pc_1.csv has GPU temperature 0 throughout and data_pc_2.csv has no GPU.',
      '- Raspberry: one Pi, one 25-minute session sampled every few seconds. Neighbouring readings are nearly identical and a random split puts them on both sides, so the test figures are optimistic.',
      '- Raspberry: the only "now" condition seen is the soft temperature limit (bit 3); under-voltage, capping and throttling "now" never occur, so the model knows heat only. The service also uses each reading\'s own `throttled` mask, which overrides the model when a "now" bit is set.',
      '- Raspberry: only CPU_temp_celsius is used. GPU_temp_celsius is the same sensor (r = 0.999) and would halve the signal of a reading that lacks it; frequencies and core voltage are what the firmware lowers when it throttles (they restate the target) and depend on the CPU governor; the memory split and SDRAM voltages are constant.',
      '- Raspberry: data_rasb.csv lost its decimal separators; values are repaired only when physically impossible (temperature > 150 °C, voltage > 5 V).',
      '')
  }
  return out.join('\n')
}

/** Writes <kind>.json per model and EVALUATION.md; returns the paths written. */
export async function writeTrainingOutputs (reports: readonly TrainingReport[], outDir: string, command: string): Promise<string[]> {
  await mkdir(outDir, { recursive: true })
  const written: string[] = []
  for (const { model } of reports) {
    const path = join(outDir, `${model.kind}.json`)
    await writeFile(path, `${JSON.stringify(model, null, 2)}\n`)
    written.push(path)
  }
  const evaluation = join(outDir, 'EVALUATION.md')
  await writeFile(evaluation, renderEvaluation(reports, command))
  written.push(evaluation)
  return written
}

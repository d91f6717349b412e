import { join } from 'node:path'
import { modelsDir as defaultModelsDir } from '../paths.js'
import { compileModel, DEVICE_KINDS, loadModel, ModelFileError, type DeviceKind, type LogisticModel, type ProbabilityFn } from './logistic.js'
import { parseThrottled, throttledNow } from './throttled.js'

export interface Prediction {
  /** Probability of "stressed", rounded to 4 decimals. */
  probability: number
  prediction: 0 | 1
}

export interface Predictor {
  predict: (kind: DeviceKind, reading: Readonly<Record<string, unknown>>) => Prediction
  readonly models: Readonly<Record<DeviceKind, LogisticModel>>
}

const STRESSED: Prediction = Object.freeze({ probability: 1, prediction: 1 })

/** Loads models/pc.json and models/raspberry.json; rejects (ModelFileError naming the file) when one is missing or invalid. */
export async function createPredictor ({ modelsDir = defaultModelsDir }: { modelsDir?: string } = {}): Promise<Predictor> {
  const loaded = await Promise.all(DEVICE_KINDS.map(async kind => {
    const path = join(modelsDir, `${kind}.json`)
    const model = await loadModel(path)
    if (model.kind !== kind) throw new ModelFileError(path, `"kind" is "${model.kind}", expected "${kind}"`)
    return model
  }))
  const models = Object.fromEntries(loaded.map(m => [m.kind, m])) as Record<DeviceKind, LogisticModel>
  const probability = Object.fromEntries(loaded.map(m => [m.kind, compileModel(m)])) as Record<DeviceKind, ProbabilityFn>

  return {
    models,
    predict (kind, reading) {
      const model = models[kind]
      if (model === undefined) throw new TypeError(`Unknown device kind ${JSON.stringify(kind)}: expected "pc" or "raspberry"`)
      if (kind === 'raspberry') {
        // The Pi reports its own state: a "now" bit is ground truth and beats the model. An invalid mask is ignored.
        const mask = parseThrottled(reading.throttled)
        if (mask !== null && throttledNow(mask)) return { ...STRESSED }
      }
      const rounded = Math.round(probability[kind](reading) * 1e4) / 1e4
      // Compared after rounding so the stored pair never contradicts itself (0.70004 shows as 0.7, prediction 0).
      return { probability: rounded, prediction: rounded > model.threshold ? 1 : 0 }
    }
  }
}

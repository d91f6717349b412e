// Model inputs computed from a reading. A model file names its features; a name listed here is
// computed from the reading's fields, any other name is read from the reading as it is.
// Each feature names the reading fields it needs: when one is absent, the feature is "missing".

type Reading = Readonly<Record<string, unknown>>

/** A reading's number, or NaN (absent, null, non-numeric); numeric strings are accepted. */
export function numberOf (raw: unknown): number {
  if (typeof raw === 'number') return raw
  if (typeof raw === 'string' && raw.trim() !== '') return Number(raw)
  return Number.NaN
}

export interface DerivedFeature {
  /** Reading fields the value needs; the first is the one a reason names. */
  inputs: readonly string[]
  /** NaN when an input is missing. */
  value: (reading: Reading) => number
}

/** The clock of the machine the original data came from (the highest clock in its files is 3995 MHz). */
export const REFERENCE_CLOCK_MAX_MHZ = 4000
/** The training data's CPU limit: its "needs intervention" rows peak at 101 °C, a usual Tjmax of 100 °C. */
export const REFERENCE_CRITICAL_C = 100
/** Power above this is clipped: the added healthy-busy rows reach 65 W; beyond, the model would extrapolate. */
export const POWER_CLIP_W = 65

const finite = (v: number): boolean => Number.isFinite(v)

export const DERIVED_FEATURES: Readonly<Record<string, DerivedFeature>> = {
  // Heat on the training machine's scale: 10 °C below this CPU's own limit reads as 90 °C.
  HeatCPU: {
    inputs: ['TemperatureCPUPackage'],
    value (r) {
      const t = numberOf(r.TemperatureCPUPackage)
      const critical = numberOf(r.TemperatureCPUCritical)
      return finite(critical) && critical >= 60 && critical <= 150 ? t - (critical - REFERENCE_CRITICAL_C) : t
    }
  },
  // More power at the same temperature means the cooling copes; clipped so that it cannot hide heat.
  PowerCPU: {
    inputs: ['PowerCPUPackage'],
    value: r => Math.min(numberOf(r.PowerCPUPackage), POWER_CLIP_W)
  },
  // Throttling seen in the clock: the share of the maximum clock lost, weighted by the load (an idle CPU clocks down by design).
  ClockDeficitUnderLoad: {
    inputs: ['ClockCPUCoreOne', 'LoadCPUTotal'],
    value (r) {
      const clock = numberOf(r.ClockCPUCoreOne)
      const load = numberOf(r.LoadCPUTotal)
      const known = numberOf(r.ClockCPUMax)
      const max = finite(known) && known > 0 ? known : REFERENCE_CLOCK_MAX_MHZ
      return (Math.min(Math.max(load, 0), 100) / 100) * Math.max(0, 1 - clock / max)
    }
  }
}

/** The reading fields a feature needs. */
export function inputsOf (feature: string): readonly string[] {
  return DERIVED_FEATURES[feature]?.inputs ?? [feature]
}

/** A feature's value for a reading; NaN when it cannot be computed (an input missing). */
export function featureValue (feature: string, reading: Reading): number {
  const derived = DERIVED_FEATURES[feature]
  if (derived === undefined) return numberOf(reading[feature])
  for (const input of derived.inputs) if (!finite(numberOf(reading[input]))) return Number.NaN
  return derived.value(reading)
}

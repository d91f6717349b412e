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

/** Light load for the power per load: below this share of load the power is compared with this floor (an idle CPU's own draw). */
export const LOAD_FLOOR_PERCENT = 20
/** Share of the maximum clock a CPU may run at light load before the clock counts as boosted. */
export const BOOST_SHARE = 0.85
/** The warm ramp of ClockBoostWhenWarm: from IDLE_C to IDLE_C + WARM_RAMP_C. */
export const WARM_RAMP_C = 5
/** Healthy cooling, the same assumption the added healthy busy rows are drawn with: 50 °C idle, about 0.45 °C per W above 5 W. */
export const IDLE_C = 50
export const C_PER_W = 0.45
export const IDLE_W = 5

const finite = (v: number): boolean => Number.isFinite(v)
const loadShare = (r: Reading): number => Math.min(Math.max(numberOf(r.LoadCPUTotal), 0), 100) / 100
const clockMax = (r: Reading): number => {
  const known = numberOf(r.ClockCPUMax)
  return finite(known) && known > 0 ? known : REFERENCE_CLOCK_MAX_MHZ
}
const heat = (r: Reading): number => {
  const t = numberOf(r.TemperatureCPUPackage)
  const critical = numberOf(r.TemperatureCPUCritical)
  return finite(critical) && critical >= 60 && critical <= 150 ? t - (critical - REFERENCE_CRITICAL_C) : t
}
const power = (r: Reading): number => Math.min(numberOf(r.PowerCPUPackage), POWER_CLIP_W)

export const DERIVED_FEATURES: Readonly<Record<string, DerivedFeature>> = {
  // Heat on the training machine's scale: 10 °C below this CPU's own limit reads as 90 °C.
  HeatCPU: { inputs: ['TemperatureCPUPackage'], value: heat },
  // More power at the same temperature means the cooling copes; clipped so that it cannot hide heat.
  PowerCPU: { inputs: ['PowerCPUPackage'], value: power },
  // Throttling seen in the clock: the share of the maximum clock lost, weighted by the load (an idle CPU clocks down by design).
  ClockDeficitUnderLoad: {
    inputs: ['ClockCPUCoreOne', 'LoadCPUTotal'],
    value: r => loadShare(r) * Math.max(0, 1 - numberOf(r.ClockCPUCoreOne) / clockMax(r))
  },
  // Power out of proportion to the work (W per % load, the load floored at 20 %): a light load drawing a busy machine's power.
  // A busy machine's power goes with its load, so this does not grow with work done.
  PowerPerLoad: {
    inputs: ['PowerCPUPackage', 'LoadCPUTotal'],
    value: r => power(r) / Math.max(numberOf(r.LoadCPUTotal), LOAD_FLOOR_PERCENT)
  },
  // A clock held near the maximum with little work while the package is warm: the share above 85 % of the maximum clock,
  // weighted by the idle share and by how warm the package is (0 at 50 °C or less, full from 55 °C, the original's
  // idle range). At full load, or on a cool package (an idle CPU on the performance governor), it is 0: a high clock
  // alone is not stress.
  ClockBoostWhenWarm: {
    inputs: ['ClockCPUCoreOne', 'LoadCPUTotal', 'TemperatureCPUPackage'],
    value: r => (1 - loadShare(r)) * Math.max(0, numberOf(r.ClockCPUCoreOne) / clockMax(r) - BOOST_SHARE) *
      Math.min(1, Math.max(0, (heat(r) - IDLE_C) / WARM_RAMP_C))
  }
}

/**
 * How close to the CPU's limit a package may run before the verdict is "stressed" without the model. Intel lets the
 * platform move the throttle point below Tjmax (the TCC activation offset, 0 by default) and averages the temperature
 * it manages to, so the instantaneous package temperature overshoots; AMD's boost runs up to its own limit. Within a few
 * degrees of the limit one load step throttles the CPU. 10 °C: the healthy rows the model learned from end at 70 °C (the
 * original's) and 85 °C (the added busy rows, on the 100 °C reference scale), so above 85 °C the model's "more power
 * explains the heat" is extrapolation; 90 °C and up (for a 100 °C limit) keeps clear of every row labelled healthy.
 */
export const NEAR_LIMIT_C = 10

/** What the thermal rule found: the package temperature, the CPU's limit, and whether it is at or above it. */
export interface ThermalLimit {
  temperature: number
  limit: number
  /** true at or above the limit; false within NEAR_LIMIT_C under it */
  reached: boolean
}

/**
 * The CPU's own limit for a reading: TemperatureCPUCritical when the reading carries a plausible one, else 100 °C.
 * At or above it the CPU throttles by design (PROCHOT, Tjmax) whatever its power; within NEAR_LIMIT_C under it, it
 * is about to. Either way the verdict is "stressed" there without asking the model: the training data has no hot rows
 * at high power to teach the model that, and its negative power weight would otherwise call a hot, busy CPU healthy.
 * null when the reading has no temperature or is further from the limit.
 */
export function thermalLimit (reading: Reading): ThermalLimit | null {
  const t = numberOf(reading.TemperatureCPUPackage)
  if (!finite(t)) return null
  const critical = numberOf(reading.TemperatureCPUCritical)
  const limit = finite(critical) && critical >= 60 && critical <= 150 ? critical : REFERENCE_CRITICAL_C
  return t >= limit - NEAR_LIMIT_C ? { temperature: t, limit, reached: t >= limit } : null
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

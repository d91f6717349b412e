import { randomUUID } from 'node:crypto'
import { IngestService } from '../../ingest/service.js'
import { createPredictor } from '../../prediction/predictor.js'
import { type ReadingsRepository } from '../../storage/readings-repository.js'
import type { Reading } from '../../schemas/readings.js'

// Bench data: a fleet of devices, three PCs (with and without a GPU) for each Raspberry Pi,
// every device reporting once a second up to now, readings interleaved in time as a fleet sends them.

export type Flavour = 'pc1' | 'pc2' | 'raspberry'

export function deviceName (i: number): string {
  return `bench-${String(i).padStart(4, '0')}`
}

/** The kind of a bench device follows from its number: every fourth is a Raspberry Pi, half the PCs have a GPU. */
export function flavourOf (device: string): Flavour {
  const i = Number(device.slice(device.lastIndexOf('-') + 1))
  if (i % 4 === 3) return 'raspberry'
  return i % 2 === 0 ? 'pc1' : 'pc2'
}

/**
 * A calm device's sensor values (no uuid, device or time), one per kind: the SSE bench's readings,
 * the base of the fleet's Pi readings, and the tests' pcReading and piReading (test/helper.ts).
 */
export const PC_SENSORS: Readonly<Record<string, unknown>> = { ClockCPUCoreOne: 3615.13, TemperatureCPUPackage: 54, LoadCPUTotal: 25.4, PowerCPUPackage: 8.1 }
export const PI_SENSORS: Readonly<Record<string, unknown>> = {
  GPU_temp_celsius: 55.1,
  CPU_temp_celsius: 54.5,
  frequency_arm_hz: 1_500_000_000,
  frequency_core_hz: 500_000_000,
  frequency_pwm_hz: 107_143_064,
  voltage_core_v: 0.85,
  voltage_sdram_c_v: 1.1,
  voltage_sdram_i_v: 1.1,
  voltage_sdram_p_v: 1.1,
  memory_arm_bytes: 994_050_048,
  memory_gpu_bytes: 79_691_776,
  throttled: '0x0'
}

// A small deterministic generator, so values (and so predictions) vary the same way in every run.
function lcg (seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

function round (x: number, digits = 2): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/** One raw reading as a producer sends it (the Kafka message value). */
function rawReading (device: string, ms: number, rnd: () => number): Record<string, unknown> {
  const base = { uuid: randomUUID(), device, loading_datetime: new Date(ms).toISOString() }
  const flavour = flavourOf(device)
  if (flavour === 'raspberry') {
    const hot = rnd() < 0.1
    // the keys keep PI_SENSORS' order; the rnd() calls keep theirs (so the same values in every run)
    return {
      ...base,
      ...PI_SENSORS,
      GPU_temp_celsius: round(45 + rnd() * (hot ? 40 : 20)),
      CPU_temp_celsius: round(45 + rnd() * (hot ? 40 : 20)),
      frequency_arm_hz: hot ? 600_000_000 : 1_500_000_000,
      voltage_core_v: round(0.8 + rnd() * 0.1, 4),
      throttled: hot && rnd() < 0.5 ? '0x50005' : '0x0'
    }
  }
  const load = rnd() * 100
  const reading: Record<string, unknown> = {
    ...base,
    ClockCPUCoreOne: round(2000 + rnd() * 2500),
    TemperatureCPUPackage: round(35 + load * 0.5 + rnd() * 10),
    LoadCPUTotal: round(load),
    PowerCPUPackage: round(5 + load * 0.8)
  }
  if (flavour === 'pc1') {
    reading.TemperatureGPUCore = round(40 + rnd() * 40)
    reading.LoadGPUCore = round(rnd() * 100)
  }
  return reading
}

export interface Fleet {
  devices: string[]
  /** raw readings, oldest first, devices interleaved */
  raws: Array<Record<string, unknown>>
}

/** `count` readings over `deviceCount` devices, one per device per second, the newest `endMs`. */
export function fleet (count: number, deviceCount: number, endMs = Date.now() - 1000, seed = 42): Fleet {
  const devices = Array.from({ length: deviceCount }, (_, i) => deviceName(i))
  const rnd = lcg(seed)
  const perDevice = Math.ceil(count / deviceCount)
  const raws: Array<Record<string, unknown>> = []
  for (let k = 0; k < perDevice && raws.length < count; k++) {
    for (let d = 0; d < deviceCount && raws.length < count; d++) {
      // a few ms apart within a second, as independent hosts are
      raws.push(rawReading(devices[d]!, endMs - (perDevice - 1 - k) * 1000 - (deviceCount - d), rnd))
    }
  }
  return { devices, raws }
}

/** The service's own validation and prediction: the stored form of a raw reading. */
export async function validator (): Promise<(raw: Record<string, unknown>) => Reading> {
  // validate() needs no repository
  const service = new IngestService({ repository: null as unknown as ReadingsRepository, predictor: await createPredictor() })
  return raw => {
    const result = service.validate(raw)
    if (!result.ok) throw new Error(`bench reading rejected by the service: ${result.reasons.join('; ')}`)
    return result.reading
  }
}

import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { TNull, TNumber, TUnion } from '@sinclair/typebox'
import si from 'systeminformation'
import {
  DEVICE_ID_PATTERN,
  PcSensorFields,
  RaspberrySensorFields,
  type DeviceKind,
  type PcReading,
  type RaspberryReading
} from '../schemas/devices.js'

export interface SensorReader {
  kind: DeviceKind
  device: string
  read(): Promise<PcReading | RaspberryReading>
}

type Sample<T> = () => Promise<T>
type NumericSensor = TUnion<[TNumber, TNull]>
type PcSensors = Omit<PcReading, 'uuid' | 'device' | 'loading_datetime' | 'kind'>
type RaspberrySensors = Omit<RaspberryReading, 'uuid' | 'device' | 'loading_datetime' | 'kind'>

const DEVICE_ID = new RegExp(DEVICE_ID_PATTERN)
// GPU figures come from si.graphics(), which spawns lspci/nvidia-smi: refresh them in the background, not per read.
const GPU_REFRESH_MS = 30_000
const GPU_PROBE_TIMEOUT_MS = 10_000
// Power is energy over time: below this the counter's resolution makes the figure noise.
const MIN_POWER_WINDOW_MS = 100
const VCGENCMD_TIMEOUT_MS = 3000

/** This host's kind, from its device tree: a Raspberry Pi's model names one, anything else is a PC. */
export async function hostKind (procRoot = '/proc', sysRoot = '/sys'): Promise<DeviceKind> {
  for (const file of [join(procRoot, 'device-tree', 'model'), join(sysRoot, 'firmware', 'devicetree', 'base', 'model')]) {
    const model = await readText(file)
    if (model !== null) return /raspberry pi/i.test(model) ? 'raspberry' : 'pc'
  }
  return 'pc'
}

export async function createSensorReader (options: {
  device: string
  kind?: DeviceKind
  /** test seams */
  procRoot?: string
  sysRoot?: string
  vcgencmd?: string
}): Promise<SensorReader> {
  const { device } = options
  if (!DEVICE_ID.test(device)) throw new Error(`Invalid device id "${device}": expected ${DEVICE_ID_PATTERN}`)
  const sysRoot = options.sysRoot ?? '/sys'
  const kind = options.kind ?? await hostKind(options.procRoot, sysRoot)
  const sensors: Sample<PcSensors | RaspberrySensors> = kind === 'raspberry'
    ? raspberrySensors(options.vcgencmd ?? 'vcgencmd', sysRoot)
    : await pcSensors(sysRoot)
  return {
    kind,
    device,
    async read () {
      const loadingDatetime = new Date().toISOString()
      const values = await sensors()
      return { uuid: randomUUID(), device, loading_datetime: loadingDatetime, kind, ...values }
    }
  }
}

// ---------------------------------------------------------------- PC

async function pcSensors (sysRoot: string): Promise<Sample<PcSensors>> {
  const [temperature, power, gpu] = await Promise.all([cpuTemperatureSource(sysRoot), raplPowerMeter(sysRoot), gpuMonitor()])
  return async () => {
    // si.currentLoad() measures over 500 ms on its first call, then against the previous call.
    const [speed, load, celsius] = await Promise.all([si.cpuCurrentSpeed(), si.currentLoad(), temperature()])
    const ghz = speed.cores[0] ?? speed.avg
    return {
      ClockCPUCoreOne: fit(PcSensorFields.ClockCPUCoreOne, ghz > 0 ? round(ghz * 1000, 2) : null),
      TemperatureCPUPackage: fit(PcSensorFields.TemperatureCPUPackage, celsius),
      LoadCPUTotal: Number.isFinite(load.currentLoad) ? round(Math.min(100, Math.max(0, load.currentLoad)), 2) : null,
      PowerCPUPackage: fit(PcSensorFields.PowerCPUPackage, await power()),
      ...gpu()
    }
  }
}

/**
 * On Linux the package sensor is found once in sysfs and then read as a file: si.cpuTemperature()
 * runs a shell loop over every hwmon label (and `sensors`) on each call.
 */
async function cpuTemperatureSource (sysRoot: string): Promise<Sample<number | null>> {
  if (process.platform === 'linux') {
    const file = await findCpuTemperatureFile(sysRoot)
    if (file !== null) return async () => millis(await readText(file))
  }
  const probe = await si.cpuTemperature().catch(() => null)
  if (probe === null || !Number.isFinite(probe.main)) return async () => null
  return async () => {
    const { main } = await si.cpuTemperature()
    return Number.isFinite(main) ? main : null
  }
}

async function findCpuTemperatureFile (sysRoot: string): Promise<string | null> {
  // Lower rank wins. Tdie is the real die temperature; Tctl can carry a fan-control offset.
  const rank = (label: string): number | null => {
    if (/^(package id 0|physical id 0|x86_pkg_temp)$/i.test(label)) return 0
    if (/^tdie$/i.test(label)) return 1
    if (/^tctl$/i.test(label)) return 2
    if (/^tccd1$/i.test(label)) return 3
    if (/cpu/i.test(label)) return 4
    return null
  }
  const candidates: Array<{ file: string, rank: number }> = []
  const hwmon = join(sysRoot, 'class', 'hwmon')
  for (const dir of await list(hwmon)) {
    for (const entry of await list(join(hwmon, dir))) {
      const match = /^(temp\d+)_label$/.exec(entry)
      if (match === null) continue
      const r = rank((await readText(join(hwmon, dir, entry)))?.trim() ?? '')
      if (r !== null) candidates.push({ file: join(hwmon, dir, `${match[1]}_input`), rank: r })
    }
  }
  const thermal = join(sysRoot, 'class', 'thermal')
  for (const zone of (await list(thermal)).filter(z => z.startsWith('thermal_zone'))) {
    const r = rank((await readText(join(thermal, zone, 'type')))?.trim() ?? '')
    if (r !== null) candidates.push({ file: join(thermal, zone, 'temp'), rank: r })
  }
  candidates.sort((a, b) => a.rank - b.rank)
  for (const { file } of candidates) {
    if (millis(await readText(file)) !== null) return file
  }
  return null
}

/** Package power from the RAPL energy counter: the energy used between two reads over the time between them. */
async function raplPowerMeter (sysRoot: string): Promise<Sample<number | null>> {
  const dir = join(sysRoot, 'class', 'powercap', 'intel-rapl:0')
  const energy = async (): Promise<number | null> => toNumber(await readText(join(dir, 'energy_uj')))
  // energy_uj is root-only on most kernels since 2020: then there is no power figure.
  let last = { uj: await energy(), at: performance.now() }
  if (last.uj === null) return async () => null
  const range = toNumber(await readText(join(dir, 'max_energy_range_uj')))
  return async () => {
    const waited = performance.now() - last.at
    if (waited < MIN_POWER_WINDOW_MS) await sleep(MIN_POWER_WINDOW_MS - waited)
    const now = { uj: await energy(), at: performance.now() }
    const before = last
    last = now
    if (now.uj === null || before.uj === null) return null
    let used = now.uj - before.uj
    if (used < 0) {
      if (range === null) return null
      used += range // the counter wrapped
    }
    return round(used / ((now.at - before.at) * 1000), 2)
  }
}

type GpuFields = Pick<PcSensors, 'TemperatureGPUCore' | 'LoadGPUCore'>

/** Probes the GPUs once; a host without GPU figures gets no GPU fields at all (like the original pc2). */
async function gpuMonitor (): Promise<() => GpuFields> {
  const sample = async (): Promise<GpuFields | null> => {
    const { controllers } = await si.graphics()
    const gpu = controllers.find(c => Number.isFinite(c.temperatureGpu) || Number.isFinite(c.utilizationGpu))
    if (gpu === undefined) return null
    return {
      TemperatureGPUCore: fit(PcSensorFields.TemperatureGPUCore, gpu.temperatureGpu ?? null),
      LoadGPUCore: fit(PcSensorFields.LoadGPUCore, gpu.utilizationGpu ?? null)
    }
  }
  const probeTimeout = sleep(GPU_PROBE_TIMEOUT_MS, null, { ref: false })
  let current = await Promise.race([sample().catch(() => null), probeTimeout])
  if (current === null) return () => ({})
  let refreshedAt = Date.now()
  let refreshing = false
  return () => {
    if (!refreshing && Date.now() - refreshedAt >= GPU_REFRESH_MS) {
      refreshing = true
      sample()
        .then(fields => { current = fields ?? { TemperatureGPUCore: null, LoadGPUCore: null } })
        .catch(() => { current = { TemperatureGPUCore: null, LoadGPUCore: null } })
        .finally(() => { refreshedAt = Date.now(); refreshing = false })
    }
    return { ...current }
  }
}

// ---------------------------------------------------------------- Raspberry Pi

function raspberrySensors (vcgencmdPath: string, sysRoot: string): Sample<RaspberrySensors> {
  let missing = false
  // Sequential on purpose: vcgencmd talks to the firmware through one mailbox.
  const vc = async (...args: string[]): Promise<string | null> => {
    if (missing) return null
    try {
      return await run(vcgencmdPath, args)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') missing = true
      return null
    }
  }
  const f = RaspberrySensorFields
  return async () => ({
    GPU_temp_celsius: fit(f.GPU_temp_celsius, parseTemperature(await vc('measure_temp'))),
    CPU_temp_celsius: fit(f.CPU_temp_celsius, millis(await readText(join(sysRoot, 'class', 'thermal', 'thermal_zone0', 'temp')))),
    frequency_arm_hz: fit(f.frequency_arm_hz, parseClock(await vc('measure_clock', 'arm'))),
    frequency_core_hz: fit(f.frequency_core_hz, parseClock(await vc('measure_clock', 'core'))),
    frequency_pwm_hz: fit(f.frequency_pwm_hz, parseClock(await vc('measure_clock', 'pwm'))),
    voltage_core_v: fit(f.voltage_core_v, parseVolts(await vc('measure_volts', 'core'))),
    voltage_sdram_c_v: fit(f.voltage_sdram_c_v, parseVolts(await vc('measure_volts', 'sdram_c'))),
    voltage_sdram_i_v: fit(f.voltage_sdram_i_v, parseVolts(await vc('measure_volts', 'sdram_i'))),
    voltage_sdram_p_v: fit(f.voltage_sdram_p_v, parseVolts(await vc('measure_volts', 'sdram_p'))),
    memory_arm_bytes: fit(f.memory_arm_bytes, parseMemory(await vc('get_mem', 'arm'))),
    memory_gpu_bytes: fit(f.memory_gpu_bytes, parseMemory(await vc('get_mem', 'gpu'))),
    throttled: parseThrottled(await vc('get_throttled'))
  })
}

// temp=45.2'C
function parseTemperature (out: string | null): number | null {
  return toNumber(/temp=(-?[\d.]+)/.exec(out ?? '')?.[1])
}

// frequency(48)=1500345728
function parseClock (out: string | null): number | null {
  return toNumber(/frequency\(\d+\)=(\d+)/.exec(out ?? '')?.[1])
}

// volt=0.8500V
function parseVolts (out: string | null): number | null {
  return toNumber(/volt=([\d.]+)V/.exec(out ?? '')?.[1])
}

// arm=948M (vcgencmd's M is MiB)
function parseMemory (out: string | null): number | null {
  const match = /=(\d+)([KMG]?)/.exec(out ?? '')
  if (match === null) return null
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[match[2] as '' | 'K' | 'M' | 'G']
  return Number(match[1]) * unit
}

// throttled=0x50005
function parseThrottled (out: string | null): string | null {
  return /throttled=(0x[0-9a-f]{1,8})\b/i.exec(out ?? '')?.[1] ?? null
}

// ---------------------------------------------------------------- helpers

function run (file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: VCGENCMD_TIMEOUT_MS, encoding: 'utf8' }, (err, stdout) => {
      if (err !== null) reject(err)
      else resolve(stdout)
    })
  })
}

/** A value outside the schema's range is a broken sensor, not a reading: null. */
function fit (schema: NumericSensor, value: number | null | undefined): number | null {
  const { minimum = -Infinity, maximum = Infinity } = schema.anyOf[0]
  if (value === null || value === undefined || !Number.isFinite(value)) return null
  return value >= minimum && value <= maximum ? value : null
}

function round (value: number, digits: number): number {
  const factor = 10 ** digits
  return Math.round(value * factor) / factor
}

function toNumber (text: string | null | undefined): number | null {
  if (text === null || text === undefined || text.trim() === '') return null
  const value = Number(text.trim())
  return Number.isFinite(value) ? value : null
}

// sysfs temperatures are millidegrees Celsius
function millis (text: string | null): number | null {
  const value = toNumber(text)
  return value === null ? null : value / 1000
}

async function readText (file: string): Promise<string | null> {
  try {
    return (await readFile(file, 'utf8')).replace(/\0/g, '')
  } catch {
    return null
  }
}

async function list (dir: string): Promise<string[]> {
  try {
    return await readdir(dir)
  } catch {
    return []
  }
}

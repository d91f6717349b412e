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
  const [temperature, power, nvidia, throttle, clockMax] = await Promise.all([
    cpuTemperatureSource(sysRoot), raplPowerMeter(sysRoot), nvidiaSmiMonitor(), throttleCounter(sysRoot), cpuClockMax(sysRoot)
  ])
  // Without nvidia-smi, systeminformation's view of the GPUs (other vendors' temperature and load where it has them).
  const gpu = nvidia ?? await gpuMonitor()
  const critical = fit(PcSensorFields.TemperatureCPUCritical, temperature.critical)
  return async () => {
    // si.currentLoad() measures over 500 ms on its first call, then against the previous call.
    const [speed, load, celsius, gpuFields] = await Promise.all([si.cpuCurrentSpeed(), si.currentLoad(), temperature.read(), gpu()])
    const ghz = speed.cores[0] ?? speed.avg
    return {
      ClockCPUCoreOne: fit(PcSensorFields.ClockCPUCoreOne, ghz > 0 ? round(ghz * 1000, 2) : null),
      TemperatureCPUPackage: fit(PcSensorFields.TemperatureCPUPackage, celsius),
      LoadCPUTotal: Number.isFinite(load.currentLoad) ? round(Math.min(100, Math.max(0, load.currentLoad)), 2) : null,
      PowerCPUPackage: fit(PcSensorFields.PowerCPUPackage, await power()),
      // The fields issue 17 added are absent, not null, when the host cannot tell.
      ...present({
        ThrottleEventsCPU: fit(PcSensorFields.ThrottleEventsCPU, await throttle()),
        ClockCPUMax: fit(PcSensorFields.ClockCPUMax, clockMax),
        TemperatureCPUCritical: critical
      }),
      ...gpuFields
    }
  }
}

function present<T extends Record<string, unknown>> (fields: T): Partial<T> {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== null && v !== undefined)) as Partial<T>
}

/**
 * Thermal throttle events since the previous read: the kernel's per-CPU `thermal_throttle/core_throttle_count` and
 * `package_throttle_count` (x86, Linux), summed as deltas. null (absent) where the kernel has no such counters.
 */
export async function throttleCounter (sysRoot: string): Promise<Sample<number | null>> {
  const cpus = join(sysRoot, 'devices', 'system', 'cpu')
  const files: string[] = []
  for (const cpu of (await list(cpus)).filter(c => /^cpu\d+$/.test(c))) {
    for (const name of ['core_throttle_count', 'package_throttle_count']) {
      const file = join(cpus, cpu, 'thermal_throttle', name)
      if (toNumber(await readText(file)) !== null) files.push(file)
    }
  }
  if (files.length === 0) return async () => null
  const counts = async (): Promise<Array<number | null>> => await Promise.all(files.map(async f => toNumber(await readText(f))))
  let last = await counts()
  return async () => {
    const now = await counts()
    let events = 0
    now.forEach((n, i) => {
      const before = last[i]
      // A counter that went down was reset (CPU hot-plugged): nothing counted for it this time.
      if (n !== null && before !== null && before !== undefined && n > before) events += n - before
    })
    last = now
    return events
  }
}

/** The CPU's maximum clock in MHz: cpufreq's `cpuinfo_max_freq` (kHz, the highest over the CPUs), else systeminformation's. */
export async function cpuClockMax (sysRoot: string): Promise<number | null> {
  const cpus = join(sysRoot, 'devices', 'system', 'cpu')
  let khz = 0
  for (const cpu of (await list(cpus)).filter(c => /^cpu\d+$/.test(c))) {
    khz = Math.max(khz, toNumber(await readText(join(cpus, cpu, 'cpufreq', 'cpuinfo_max_freq'))) ?? 0)
  }
  if (khz > 0) return round(khz / 1000, 2)
  const ghz = await si.cpu().then(c => c.speedMax, () => 0)
  return Number.isFinite(ghz) && ghz > 0 ? round(ghz * 1000, 2) : null
}

/**
 * On Linux the package sensor is found once in sysfs and then read as a file: si.cpuTemperature()
 * runs a shell loop over every hwmon label (and `sensors`) on each call.
 */
async function cpuTemperatureSource (sysRoot: string): Promise<{ read: Sample<number | null>, critical: number | null }> {
  if (process.platform === 'linux') {
    const file = await findCpuTemperatureFile(sysRoot)
    if (file !== null) return { read: async () => millis(await readText(file)), critical: await criticalTemperature(file, sysRoot) }
  }
  const probe = await si.cpuTemperature().catch(() => null)
  if (probe === null || !Number.isFinite(probe.main)) return { read: async () => null, critical: await criticalTemperature(null, sysRoot) }
  return {
    async read () {
      const { main } = await si.cpuTemperature()
      return Number.isFinite(main) ? main : null
    },
    critical: await criticalTemperature(null, sysRoot)
  }
}

/**
 * The CPU's own temperature limit, °C: the `temp*_crit` (else `temp*_max`) beside the hwmon input read, else the
 * critical trip point of an ACPI thermal zone. null when the platform gives none (or a placeholder of 0).
 */
export async function criticalTemperature (inputFile: string | null, sysRoot: string): Promise<number | null> {
  if (inputFile !== null && inputFile.endsWith('_input')) {
    for (const suffix of ['_crit', '_max']) {
      const value = millis(await readText(inputFile.replace(/_input$/, suffix)))
      if (value !== null && value > 0) return value
    }
  }
  const thermal = join(sysRoot, 'class', 'thermal')
  for (const zone of (await list(thermal)).filter(z => z.startsWith('thermal_zone')).sort()) {
    for (const entry of (await list(join(thermal, zone))).filter(e => /^trip_point_\d+_type$/.test(e)).sort()) {
      if ((await readText(join(thermal, zone, entry)))?.trim() !== 'critical') continue
      const value = millis(await readText(join(thermal, zone, entry.replace(/_type$/, '_temp'))))
      if (value !== null && value > 0) return value
    }
  }
  return null
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

/**
 * Package power from the RAPL energy counters (`intel-rapl:<package>`, summed over the packages; AMD's kernel driver
 * uses the same names): the energy used between two reads over the time between them.
 */
async function raplPowerMeter (sysRoot: string): Promise<Sample<number | null>> {
  const powercap = join(sysRoot, 'class', 'powercap')
  const dirs = (await list(powercap)).filter(d => /^intel-rapl:\d+$/.test(d)).sort().map(d => join(powercap, d))
  const energy = async (dir: string): Promise<number | null> => toNumber(await readText(join(dir, 'energy_uj')))
  // energy_uj is root-only on most kernels since 2020: then there is no power figure.
  const readable: Array<{ dir: string, range: number | null, uj: number | null }> = []
  for (const dir of dirs) {
    const uj = await energy(dir)
    if (uj !== null) readable.push({ dir, range: toNumber(await readText(join(dir, 'max_energy_range_uj'))), uj })
  }
  if (readable.length === 0) return async () => null
  let at = performance.now()
  return async () => {
    const waited = performance.now() - at
    if (waited < MIN_POWER_WINDOW_MS) await sleep(MIN_POWER_WINDOW_MS - waited)
    const now = await Promise.all(readable.map(async r => await energy(r.dir)))
    const nowAt = performance.now()
    const seconds = (nowAt - at) / 1000
    at = nowAt
    let used = 0
    let complete = true
    readable.forEach((r, i) => {
      const uj = now[i] ?? null
      const before = r.uj
      r.uj = uj
      if (uj === null || before === null) { complete = false; return }
      let delta = uj - before
      if (delta < 0) {
        if (r.range === null) { complete = false; return }
        delta += r.range // the counter wrapped
      }
      used += delta
    })
    return complete ? round(used / 1e6 / seconds, 2) : null
  }
}

type NvidiaFields = Pick<PcSensors, 'TemperatureGPUCore' | 'LoadGPUCore' | 'PowerGPU' | 'ClockGPUCore' | 'ThrottleReasonsGPU'>

/** nvidia-smi's clock-event (formerly "throttle") reason bits, by the names its --query-gpu fields use. */
export const NVIDIA_CLOCK_EVENT_REASONS: ReadonlyArray<[number, string]> = [
  [0x1, 'gpu_idle'], [0x2, 'applications_clocks_setting'], [0x4, 'sw_power_cap'], [0x8, 'hw_slowdown'],
  [0x10, 'sync_boost'], [0x20, 'sw_thermal_slowdown'], [0x40, 'hw_thermal_slowdown'], [0x80, 'hw_power_brake_slowdown'],
  [0x100, 'display_clock_setting']
]
const NVIDIA_QUERY = 'temperature.gpu,utilization.gpu,power.draw,clocks.gr'
const NVIDIA_TIMEOUT_MS = 3000

/** One GPU's line of `nvidia-smi --query-gpu=…,clocks_event_reasons.active --format=csv,noheader,nounits` (the first GPU). */
export function parseNvidiaSmi (out: string): NvidiaFields | null {
  const line = out.split('\n').map(l => l.trim()).find(l => l !== '')
  if (line === undefined) return null
  const cells = line.split(',').map(c => c.trim())
  if (cells.length < 5) return null
  const [temperature, load, power, clock, reasons] = cells
  const mask = /^0x[0-9a-f]+$/i.test(reasons ?? '') ? Number.parseInt(reasons!, 16) : null
  const f = PcSensorFields
  return present({
    TemperatureGPUCore: fit(f.TemperatureGPUCore, toNumber(temperature)),
    LoadGPUCore: fit(f.LoadGPUCore, toNumber(load)),
    PowerGPU: fit(f.PowerGPU, toNumber(power)),
    ClockGPUCore: fit(f.ClockGPUCore, toNumber(clock)),
    ThrottleReasonsGPU: mask === null ? null : NVIDIA_CLOCK_EVENT_REASONS.filter(([bit]) => (mask & bit) !== 0).map(([, name]) => name)
  })
}

/**
 * NVIDIA GPUs through `nvidia-smi` on PATH, asked on every read (a few tens of ms; its throttle reasons must be fresh).
 * Drivers before 535 call the reasons `clocks_throttle_reasons`; the newer name is tried first. null: no nvidia-smi
 * that answers, at start.
 */
async function nvidiaSmiMonitor (): Promise<Sample<Partial<NvidiaFields>> | null> {
  const ask = async (reasons: string): Promise<NvidiaFields | null> =>
    parseNvidiaSmi(await run('nvidia-smi', [`--query-gpu=${NVIDIA_QUERY},${reasons}`, '--format=csv,noheader,nounits'], NVIDIA_TIMEOUT_MS))
  let field = 'clocks_event_reasons.active'
  let first = await ask(field).catch(() => null)
  if (first === null) {
    field = 'clocks_throttle_reasons.active'
    first = await ask(field).catch(() => null)
  }
  if (first === null) return null
  return async () => (await ask(field).catch(() => null)) ?? {}
}

type GpuFields = Pick<PcSensors, 'TemperatureGPUCore' | 'LoadGPUCore'>

/** Probes the GPUs once; a host without GPU figures gets no GPU fields at all (like the original pc2). */
async function gpuMonitor (): Promise<Sample<GpuFields>> {
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
  if (current === null) return async () => ({})
  let refreshedAt = Date.now()
  let refreshing = false
  return async () => {
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

function run (file: string, args: string[], timeout = VCGENCMD_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout, encoding: 'utf8' }, (err, stdout) => {
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

import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import t from 'tap'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { PcReadingSchema } from '../../schemas/devices.js'
import { createSensorReader, parseNvidiaSmi } from '../../collector/reader.js'

const checkPc = TypeCompiler.Compile(PcReadingSchema)
const errors = (r: unknown): string => JSON.stringify([...checkPc.Errors(r)].map(e => `${e.path} ${e.message}`))

async function put (file: string, content: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true })
  await writeFile(file, content)
}

/** A fake sysfs laid out as the kernel lays it out: two CPUs with throttle counters and cpufreq, hwmon with limits, two RAPL packages. */
async function fakeSys (root: string): Promise<string> {
  const sys = join(root, 'sys')
  for (const cpu of ['cpu0', 'cpu1']) {
    await put(join(sys, 'devices', 'system', 'cpu', cpu, 'thermal_throttle', 'core_throttle_count'), '10\n')
    await put(join(sys, 'devices', 'system', 'cpu', cpu, 'thermal_throttle', 'package_throttle_count'), '3\n')
    await put(join(sys, 'devices', 'system', 'cpu', cpu, 'cpufreq', 'cpuinfo_max_freq'), cpu === 'cpu0' ? '3600000\n' : '4200000\n')
  }
  await put(join(sys, 'devices', 'system', 'cpu', 'online'), '0-1\n')
  const hwmon = join(sys, 'class', 'hwmon', 'hwmon2')
  await put(join(hwmon, 'temp1_label'), 'Package id 0\n')
  await put(join(hwmon, 'temp1_input'), '61000\n')
  await put(join(hwmon, 'temp1_max'), '80000\n')
  await put(join(hwmon, 'temp1_crit'), '100000\n')
  for (const [pkg, uj] of [['intel-rapl:0', '1000000'], ['intel-rapl:1', '2000000']] as const) {
    await put(join(sys, 'class', 'powercap', pkg, 'energy_uj'), `${uj}\n`)
    await put(join(sys, 'class', 'powercap', pkg, 'max_energy_range_uj'), '262143328850\n')
  }
  // A sub-zone (the cores of package 0) is not counted again.
  await put(join(sys, 'class', 'powercap', 'intel-rapl:0:0', 'energy_uj'), '999999999\n')
  return sys
}

t.test('throttle events, maximum clock, critical temperature and RAPL power from sysfs', { skip: process.platform !== 'linux' && 'sysfs is Linux only' }, async t => {
  const root = await mkdtemp(join(tmpdir(), 'collector-throttle-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const sys = await fakeSys(root)
  const reader = await createSensorReader({ device: 'pc-fake', kind: 'pc', sysRoot: sys, procRoot: join(root, 'proc') })

  const quiet = await reader.read() as Record<string, unknown>
  t.ok(checkPc.Check(quiet), errors(quiet))
  t.equal(quiet.ThrottleEventsCPU, 0, 'no event since the reader was made')
  t.equal(quiet.ClockCPUMax, 4200, 'the highest cpuinfo_max_freq, kHz to MHz')
  t.equal(quiet.TemperatureCPUCritical, 100, 'temp1_crit beside the package input')
  t.equal(quiet.TemperatureCPUPackage, 61)

  await put(join(sys, 'devices', 'system', 'cpu', 'cpu0', 'thermal_throttle', 'core_throttle_count'), '17\n')
  await put(join(sys, 'devices', 'system', 'cpu', 'cpu1', 'thermal_throttle', 'package_throttle_count'), '8\n')
  await put(join(sys, 'class', 'powercap', 'intel-rapl:0', 'energy_uj'), '3000000\n')
  await put(join(sys, 'class', 'powercap', 'intel-rapl:1', 'energy_uj'), '5000000\n')
  const hot = await reader.read() as Record<string, unknown>
  t.ok(checkPc.Check(hot), errors(hot))
  t.equal(hot.ThrottleEventsCPU, 12, '7 core + 5 package events since the previous reading')
  t.type(hot.PowerCPUPackage, 'number', 'both packages\' energy over the time between the reads')
  t.ok((hot.PowerCPUPackage as number) > 0)

  t.equal((await reader.read() as Record<string, unknown>).ThrottleEventsCPU, 0, 'deltas, not totals')
  await put(join(sys, 'devices', 'system', 'cpu', 'cpu0', 'thermal_throttle', 'core_throttle_count'), '0\n')
  t.equal((await reader.read() as Record<string, unknown>).ThrottleEventsCPU, 0, 'a counter reset is no event')
})

t.test('hwmon without crit: temp*_max; no hwmon limit: the ACPI critical trip point', { skip: process.platform !== 'linux' && 'sysfs is Linux only' }, async t => {
  const root = await mkdtemp(join(tmpdir(), 'collector-crit-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const sys = join(root, 'sys')
  await put(join(sys, 'class', 'hwmon', 'hwmon0', 'temp1_label'), 'Tctl\n')
  await put(join(sys, 'class', 'hwmon', 'hwmon0', 'temp1_input'), '55000\n')
  await put(join(sys, 'class', 'hwmon', 'hwmon0', 'temp1_max'), '95000\n')
  let reading = await (await createSensorReader({ device: 'amd', kind: 'pc', sysRoot: sys })).read() as Record<string, unknown>
  t.equal(reading.TemperatureCPUCritical, 95)

  const acpi = join(root, 'acpi')
  await put(join(acpi, 'class', 'thermal', 'thermal_zone0', 'type'), 'x86_pkg_temp\n')
  await put(join(acpi, 'class', 'thermal', 'thermal_zone0', 'temp'), '48000\n')
  await put(join(acpi, 'class', 'thermal', 'thermal_zone0', 'trip_point_0_type'), 'passive\n')
  await put(join(acpi, 'class', 'thermal', 'thermal_zone0', 'trip_point_0_temp'), '90000\n')
  await put(join(acpi, 'class', 'thermal', 'thermal_zone0', 'trip_point_1_type'), 'critical\n')
  await put(join(acpi, 'class', 'thermal', 'thermal_zone0', 'trip_point_1_temp'), '105000\n')
  reading = await (await createSensorReader({ device: 'acpi', kind: 'pc', sysRoot: acpi })).read() as Record<string, unknown>
  t.equal(reading.TemperatureCPUPackage, 48)
  t.equal(reading.TemperatureCPUCritical, 105, 'the critical trip point, not the passive one')
})

t.test('a host without those sources has no such fields (absent, never 0)', async t => {
  const root = await mkdtemp(join(tmpdir(), 'collector-none-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const saved = process.env.PATH
  process.env.PATH = join(root, 'empty-bin') // no nvidia-smi
  t.teardown(() => { process.env.PATH = saved })
  const reading = await (await createSensorReader({ device: 'bare', kind: 'pc', sysRoot: join(root, 'sys') })).read() as Record<string, unknown>
  t.ok(checkPc.Check(reading), errors(reading))
  for (const field of ['ThrottleEventsCPU', 'TemperatureCPUCritical', 'PowerGPU', 'ClockGPUCore', 'ThrottleReasonsGPU']) {
    t.notOk(field in reading, `no ${field}`)
  }
})

// What nvidia-smi prints for --query-gpu=temperature.gpu,utilization.gpu,power.draw,clocks.gr,<reasons> --format=csv,noheader,nounits.
// This one is a driver older than 535: it knows the reasons only as clocks_throttle_reasons.
const FAKE_NVIDIA_SMI = `#!/bin/sh
case "$*" in
  *clocks_event_reasons*) echo "Field \\"clocks_event_reasons.active\\" is not a valid field to query." >&2; exit 2 ;;
  *clocks_throttle_reasons.active*) cat "$(dirname "$0")/answer" ;;
  *) exit 2 ;;
esac
`

t.test('NVIDIA GPU through a fake nvidia-smi on PATH', async t => {
  const root = await mkdtemp(join(tmpdir(), 'collector-nvidia-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const bin = join(root, 'bin')
  await put(join(bin, 'nvidia-smi'), FAKE_NVIDIA_SMI)
  await chmod(join(bin, 'nvidia-smi'), 0o755)
  await put(join(bin, 'answer'), '83, 100, 285.40, 1650, 0x0000000000000024\n61, 5, 20.1, 300, 0x1\n')
  const saved = process.env.PATH
  process.env.PATH = `${bin}${delimiter}${saved ?? ''}`
  t.teardown(() => { process.env.PATH = saved })

  const reader = await createSensorReader({ device: 'gpu-box', kind: 'pc', sysRoot: join(root, 'sys') })
  let reading = await reader.read() as Record<string, unknown>
  t.ok(checkPc.Check(reading), errors(reading))
  t.match(reading, { TemperatureGPUCore: 83, LoadGPUCore: 100, PowerGPU: 285.4, ClockGPUCore: 1650 }, 'the first GPU')
  t.same(reading.ThrottleReasonsGPU, ['sw_power_cap', 'sw_thermal_slowdown'], '0x24: bits 0x4 and 0x20 by name')

  await put(join(bin, 'answer'), '[N/A], 0, [N/A], 210, 0x0000000000000001\n')
  reading = await reader.read() as Record<string, unknown>
  t.ok(checkPc.Check(reading), errors(reading))
  t.notOk('TemperatureGPUCore' in reading || 'PowerGPU' in reading, '[N/A] is absent, not 0')
  t.same(reading.ThrottleReasonsGPU, ['gpu_idle'])

  t.same(parseNvidiaSmi('45, 3, 12.5, 210, 0x0\n'), { TemperatureGPUCore: 45, LoadGPUCore: 3, PowerGPU: 12.5, ClockGPUCore: 210, ThrottleReasonsGPU: [] }, 'no reason active')
  t.equal(parseNvidiaSmi(''), null)
})

t.test('the real reader on this machine: its readings validate, the new fields present or absent but never null', async t => {
  const reader = await createSensorReader({ device: 'this-host' })
  for (let i = 0; i < 2; i++) {
    const reading = await reader.read() as Record<string, unknown>
    t.ok(checkPc.Check(reading) || reader.kind === 'raspberry', errors(reading))
    for (const field of ['ThrottleEventsCPU', 'ClockCPUMax', 'TemperatureCPUCritical', 'PowerGPU', 'ClockGPUCore', 'ThrottleReasonsGPU']) {
      t.not(reading[field], null, `${field}: ${JSON.stringify(reading[field])}`)
    }
    t.comment(JSON.stringify(reading))
  }
})

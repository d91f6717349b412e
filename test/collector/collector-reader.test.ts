import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import t from 'tap'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { PcReadingSchema, RaspberryReadingSchema, RASPBERRY_FIELDS } from '../../schemas/devices.js'
import { createSensorReader, hostKind } from '../../collector/reader.js'

const checkPi = TypeCompiler.Compile(RaspberryReadingSchema)
const checkPc = TypeCompiler.Compile(PcReadingSchema)

async function put (file: string, content: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true })
  await writeFile(file, content)
}

// What a Raspberry Pi 4 prints; sdram_p fails the way vcgencmd fails (message, exit 255).
const FAKE_VCGENCMD = `#!/bin/sh
case "$*" in
  "measure_temp") echo "temp=45.2'C" ;;
  "measure_clock arm") echo "frequency(48)=1500345728" ;;
  "measure_clock core") echo "frequency(1)=500000992" ;;
  "measure_clock pwm") echo "frequency(25)=107143064" ;;
  "measure_volts core") echo "volt=0.8500V" ;;
  "measure_volts sdram_c") echo "volt=1.1000V" ;;
  "measure_volts sdram_i") echo "volt=1.1000V" ;;
  "measure_volts sdram_p") echo "error=2 error_msg=\\"Invalid arguments\\""; exit 255 ;;
  "get_mem arm") echo "arm=948M" ;;
  "get_mem gpu") echo "gpu=76M" ;;
  "get_throttled") echo "throttled=0x50005" ;;
  *) echo "error=1 error_msg=\\"Command not registered\\""; exit 255 ;;
esac
`

t.test('Raspberry Pi', async t => {
  const root = await mkdtemp(join(tmpdir(), 'collector-pi-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const procRoot = join(root, 'proc')
  const sysRoot = join(root, 'sys')
  await put(join(procRoot, 'device-tree', 'model'), 'Raspberry Pi 4 Model B Rev 1.4\0')
  await put(join(sysRoot, 'class', 'thermal', 'thermal_zone0', 'temp'), '47236\n')
  const vcgencmd = join(root, 'vcgencmd')
  await put(vcgencmd, FAKE_VCGENCMD)
  await chmod(vcgencmd, 0o755)

  t.test('hostKind reads the device-tree model', async t => {
    t.equal(await hostKind(procRoot, sysRoot), 'raspberry')
    const other = join(root, 'other')
    await put(join(other, 'firmware', 'devicetree', 'base', 'model'), 'Raspberry Pi 5 Model B Rev 1.0\0')
    t.equal(await hostKind(join(root, 'nothing'), other), 'raspberry', 'or the sysfs copy of it')
    await put(join(root, 'odroid', 'device-tree', 'model'), 'Hardkernel ODROID-N2Plus\0')
    t.equal(await hostKind(join(root, 'odroid'), join(root, 'nothing')), 'pc', 'another board is read as a PC')
    t.equal(await hostKind(join(root, 'nothing'), join(root, 'nothing')), 'pc', 'no device tree: a PC')
  })

  t.test('a reading carries the parsed vcgencmd and sysfs values', async t => {
    const reader = await createSensorReader({ device: 'raspberry', procRoot, sysRoot, vcgencmd })
    t.equal(reader.kind, 'raspberry')
    t.equal(reader.device, 'raspberry')
    const reading = await reader.read()
    t.ok(checkPi.Check(reading), JSON.stringify([...checkPi.Errors(reading)].map(e => `${e.path} ${e.message}`)))
    t.match(reading, {
      device: 'raspberry',
      kind: 'raspberry',
      GPU_temp_celsius: 45.2,
      CPU_temp_celsius: 47.236,
      frequency_arm_hz: 1500345728,
      frequency_core_hz: 500000992,
      frequency_pwm_hz: 107143064,
      voltage_core_v: 0.85,
      voltage_sdram_c_v: 1.1,
      voltage_sdram_i_v: 1.1,
      voltage_sdram_p_v: null,
      memory_arm_bytes: 948 * 1024 * 1024,
      memory_gpu_bytes: 76 * 1024 * 1024,
      throttled: '0x50005'
    })
    t.ok(Math.abs(Date.parse(reading.loading_datetime) - Date.now()) < 10_000, 'taken now')
    const again = await reader.read()
    t.not(again.uuid, reading.uuid, 'every reading has its own uuid')
  })

  t.test('without vcgencmd the firmware values are null, not a crash', async t => {
    const reader = await createSensorReader({ device: 'pi-without-tools', procRoot, sysRoot, vcgencmd: join(root, 'no-such-vcgencmd') })
    const reading = await reader.read()
    t.ok(checkPi.Check(reading))
    for (const field of RASPBERRY_FIELDS) {
      if (field === 'CPU_temp_celsius') continue
      t.equal(reading[field as keyof typeof reading], null, `${field} is null`)
    }
    t.equal((reading as { CPU_temp_celsius: number | null }).CPU_temp_celsius, 47.236, 'sysfs still read')
  })
})

t.test('PC sensors from sysfs: package temperature and RAPL power', { skip: process.platform !== 'linux' && 'sysfs is Linux only' }, async t => {
  const root = await mkdtemp(join(tmpdir(), 'collector-pc-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const sysRoot = join(root, 'sys')
  await put(join(sysRoot, 'class', 'hwmon', 'hwmon1', 'temp1_label'), 'Core 0\n')
  await put(join(sysRoot, 'class', 'hwmon', 'hwmon1', 'temp1_input'), '41000\n')
  await put(join(sysRoot, 'class', 'hwmon', 'hwmon1', 'temp2_label'), 'Package id 0\n')
  await put(join(sysRoot, 'class', 'hwmon', 'hwmon1', 'temp2_input'), '52000\n')
  const rapl = join(sysRoot, 'class', 'powercap', 'intel-rapl:0')
  await put(join(rapl, 'energy_uj'), '1000000\n')
  await put(join(rapl, 'max_energy_range_uj'), '6100000\n')

  const reader = await createSensorReader({ device: 'pc-fake', kind: 'pc', sysRoot, procRoot: join(root, 'proc') })
  t.equal(reader.kind, 'pc')
  await put(join(rapl, 'energy_uj'), '6000000\n') // 5 J since the reader was made
  const reading = await reader.read()
  t.ok(checkPc.Check(reading), JSON.stringify([...checkPc.Errors(reading)].map(e => `${e.path} ${e.message}`)))
  const pc = reading as { TemperatureCPUPackage: number | null, PowerCPUPackage: number | null, LoadCPUTotal: number | null }
  t.equal(pc.TemperatureCPUPackage, 52, 'the package sensor, not a core')
  t.type(pc.PowerCPUPackage, 'number')
  t.ok((pc.PowerCPUPackage ?? 0) > 0 && (pc.PowerCPUPackage ?? 0) <= 50, `5 J over the time between samples: ${String(pc.PowerCPUPackage)} W`)
  t.type(pc.LoadCPUTotal, 'number')

  await put(join(rapl, 'energy_uj'), '500000\n') // wrapped: 0.1 J to the top, 0.5 J after
  const wrapped = await reader.read() as { PowerCPUPackage: number | null }
  t.type(wrapped.PowerCPUPackage, 'number', 'a wrapped counter still gives a figure')
})

t.test('a PC without those sensors reports null', async t => {
  const root = await mkdtemp(join(tmpdir(), 'collector-bare-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const reader = await createSensorReader({ device: 'bare', kind: 'pc', sysRoot: join(root, 'sys') })
  const reading = await reader.read() as Record<string, unknown>
  t.ok(checkPc.Check(reading))
  t.equal(reading.PowerCPUPackage, null, 'no RAPL counter: no power figure')
})

t.test('an invalid device id is refused', async t => {
  await t.rejects(createSensorReader({ device: 'bad id!', kind: 'pc' }), /Invalid device id/)
})

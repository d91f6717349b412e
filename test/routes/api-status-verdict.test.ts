import t from 'tap'
import { randomUUID } from 'node:crypto'
import { build, piReading } from '../helper.js'

// Issue 17's case table, through the ingest service, the table and the status route.
const PC_INPUTS = ['TemperatureCPUPackage', 'PowerCPUPackage', 'ClockCPUCoreOne', 'LoadCPUTotal']

function pc (device: string, sensors: Record<string, unknown>): Record<string, unknown> {
  return { uuid: randomUUID(), device, loading_datetime: new Date().toISOString(), ...sensors }
}

t.test('issue 17 cases: hardware evidence first, busy is not stressed, missing sensors never alarm', async t => {
  const app = await build(t, { env: { STATUS_CACHE_TTL_MS: '0' } })
  const status = async (device: string): Promise<Record<string, any>> => {
    const res = await app.inject(`/devices/${device}/status`)
    t.equal(res.statusCode, 200, `${device}: 200`)
    return res.json()
  }
  const result = await app.ingest.ingest([
    pc('busy', { LoadCPUTotal: 100, TemperatureCPUPackage: 60, ClockCPUCoreOne: 3500, ClockCPUMax: 3600, PowerCPUPackage: 35 }),
    pc('hot', { LoadCPUTotal: 100, TemperatureCPUPackage: 97, ClockCPUCoreOne: 2000, PowerCPUPackage: 40 }),
    pc('idle', { LoadCPUTotal: 3, TemperatureCPUPackage: 42, ClockCPUCoreOne: 1200, PowerCPUPackage: 4 }),
    pc('loadonly', { LoadCPUTotal: 60 }),
    pc('throttling', { LoadCPUTotal: 95, TemperatureCPUPackage: 72, ThrottleEventsCPU: 12 }),
    pc('near-limit', { LoadCPUTotal: 100, TemperatureCPUPackage: 98, ClockCPUCoreOne: 4800, PowerCPUPackage: 120 }),
    piReading({ device: 'pi-throttled', throttled: '0x4', CPU_temp_celsius: 55, GPU_temp_celsius: 55 }),
    piReading({ device: 'pi-hot', throttled: undefined, CPU_temp_celsius: 85, GPU_temp_celsius: 85 })
  ])
  t.same(result.rejected, [], 'all valid')
  t.equal(result.stored, 8)

  const busy = await status('busy')
  t.match(busy, { msg: 'The device is OK', stressed: false, source: 'model', missing: [] }, '100 % load at 60 °C, full clock, 35 W is OK')
  t.ok(busy.probability <= busy.threshold)
  t.equal(busy.threshold, 0.3, 'the model\'s threshold comes with the verdict')

  const hot = await status('hot')
  t.match(hot, { msg: 'The device is stressed', stressed: true, source: 'model' }, '100 % load at 97 °C, 2 GHz is stressed')
  t.ok(hot.reasons.some((r: { field: string }) => r.field === 'TemperatureCPUPackage'), 'a reason names the temperature')
  // 97 °C is 3 °C under the 100 °C reference limit: the near-limit rule decides, and its reason says so.
  t.match(hot.reasons[0], { field: 'TemperatureCPUPackage', value: 97, effect: /^3 °C under the CPU's limit \(100 °C\): within 10 °C/ }, 'the temperature comes first, and why')

  const nearLimit = await status('near-limit')
  t.match(nearLimit, { msg: 'The device is stressed', stressed: true, probability: 1, source: 'model', missing: [] },
    '98 °C at full load and 120 W is stressed: the power does not explain heat this close to the limit')
  t.match(nearLimit.reasons[0], { field: 'TemperatureCPUPackage', value: 98, effect: /^2 °C under the CPU's limit \(100 °C\)/ })

  t.match(await status('idle'), { msg: 'The device is OK', stressed: false, source: 'model', missing: [] }, 'idle is OK')

  const loadOnly = await status('loadonly')
  t.match(loadOnly, { msg: 'The device is OK', stressed: false, source: 'model', reasons: [] }, 'load alone is never stressed')
  t.same([...loadOnly.missing].sort(), PC_INPUTS.filter(f => f !== 'LoadCPUTotal').sort(), 'missing lists the other inputs')

  const throttling = await status('throttling')
  t.match(throttling, { msg: 'The device is stressed', stressed: true, probability: 1, source: 'hardware' })
  t.match(throttling.reasons, [{ field: 'ThrottleEventsCPU', value: 12 }], 'the kernel\'s count is the reason')
  t.notOk('threshold' in throttling, 'no threshold when the hardware decided')

  const piThrottled = await status('pi-throttled')
  t.match(piThrottled, { msg: 'The device is stressed', stressed: true, probability: 1, source: 'hardware' })
  t.match(piThrottled.reasons, [{ field: 'throttled', value: '0x4', effect: /throttled now/ }])

  const piHot = await status('pi-hot')
  t.match(piHot, { source: 'model', stressed: true, msg: 'The device is stressed' }, 'a Pi at 85 °C without a mask: the model decides')
  t.match(piHot.reasons, [{ field: 'CPU_temp_celsius', value: 85, effect: /^\+/ }], 'with its reasons')
  t.equal(piHot.threshold, 0.7, 'and the Pi model\'s own threshold')
  t.equal(nearLimit.threshold, 0.3, 'the near-limit rule keeps the model\'s threshold with the verdict')

  // Each stored reading carries the same account.
  const [reading] = (await app.inject('/devices/hot')).json()
  t.match(reading, { source: 'model', prediction: 1, missing: [], threshold: 0.3 })
  t.same(reading.reasons, hot.reasons)
})

t.test('an active GPU thermal slowdown is hardware evidence; the power cap of a busy GPU is not', async t => {
  // The status cache on (the default): the statuses come from what this process stored, not from the table.
  const app = await build(t)
  const cool = { LoadCPUTotal: 30, TemperatureCPUPackage: 50, ClockCPUCoreOne: 3400, PowerCPUPackage: 20, LoadGPUCore: 100, TemperatureGPUCore: 70 }
  await app.ingest.ingest([
    pc('gpu-hot', { ...cool, ThrottleReasonsGPU: ['sw_power_cap', 'sw_thermal_slowdown'] }),
    pc('gpu-busy', { ...cool, ThrottleReasonsGPU: ['sw_power_cap'] })
  ])
  const hot = (await app.inject('/devices/gpu-hot/status')).json()
  t.match(hot, { stressed: true, source: 'hardware', reasons: [{ field: 'ThrottleReasonsGPU', value: 'sw_thermal_slowdown' }] })
  t.match((await app.inject('/devices/gpu-busy/status')).json(), { stressed: false, source: 'model', threshold: 0.3 }, 'the threshold also from this process\'s own write')
})

t.test('the OpenAPI document shows source, reasons, missing and threshold on Status and Reading', async t => {
  const app = await build(t)
  const doc = (await app.inject('/docs/json')).json()
  for (const name of ['Status', 'Reading']) {
    const schema = doc.components.schemas[name]
    for (const field of ['source', 'reasons', 'missing', 'threshold']) t.ok(schema.properties[field], `${name}.${field}`)
    t.match(schema.properties.threshold, { type: 'number', minimum: 0, maximum: 1, description: /threshold/ }, `${name}.threshold is documented`)
  }
  const reading = doc.components.schemas.PcReading.properties
  for (const field of ['ThrottleEventsCPU', 'ClockCPUMax', 'TemperatureCPUCritical', 'PowerGPU', 'ClockGPUCore', 'ThrottleReasonsGPU']) {
    t.ok(reading[field], `PcReading.${field}`)
  }
  t.match(reading.ClockCPUMax.description, /MHz/, 'with units')
})

import { copyFile, mkdtemp, rm, writeFile, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { modelsDir } from '../../paths.js'
import { createPredictor } from '../../prediction/predictor.js'
import { NEAR_LIMIT_C } from '../../prediction/features.js'

t.test('shipped models', async t => {
  const predictor = await createPredictor()

  const hot = predictor.predict('pc', { ClockCPUCoreOne: 4200, TemperatureCPUPackage: 100, LoadCPUTotal: 100, PowerCPUPackage: 95 })
  t.match(hot, { prediction: 1, source: 'model', missing: [] }, 'a hot, fully loaded PC is stressed')
  // At the CPU's limit (100 °C without TemperatureCPUCritical) it throttles by design: stressed whatever its 95 W say.
  t.ok(hot.probability > 0.99, `at 100 °C, beyond doubt (${hot.probability})`)
  t.match(hot.reasons[0], { field: 'TemperatureCPUPackage', value: 100, effect: /limit \(100 °C\)/ }, 'because of its temperature')
  t.match(predictor.predict('pc', { TemperatureCPUPackage: 86, TemperatureCPUCritical: 85, PowerCPUPackage: 120 }),
    { prediction: 1, reasons: [{ field: 'TemperatureCPUPackage', effect: /limit \(85 °C\)/ }] }, 'the limit is the CPU\'s own when known')

  // Near the limit: within NEAR_LIMIT_C (10 °C) under it a CPU is about to throttle, so a high power no longer reads as
  // "the power explains the heat" (98 °C at 120 W and full load was 0.0001, 96 °C was 0).
  const busyHot = { LoadCPUTotal: 100, PowerCPUPackage: 120, ClockCPUCoreOne: 4800 }
  for (const temperature of [90, 94.5, 96, 97, 98, 99, 99.9]) {
    const near = predictor.predict('pc', { ...busyHot, TemperatureCPUPackage: temperature })
    t.match(near, { probability: 1, prediction: 1, source: 'model', missing: [] }, `${temperature} °C at 120 W is stressed`)
    t.same(near.reasons[0], {
      field: 'TemperatureCPUPackage',
      value: temperature,
      effect: `${Math.round((100 - temperature) * 10) / 10} °C under the CPU's limit (100 °C): within ${NEAR_LIMIT_C} °C of it, where throttling starts`
    }, `${temperature} °C: the temperature is the first reason, and says why`)
    t.ok(near.reasons.length <= 3 && near.reasons.slice(1).every(r => r.field !== 'TemperatureCPUPackage'), 'one reason for the temperature')
  }
  t.match(predictor.predict('pc', { ...busyHot, TemperatureCPUPackage: 100 }).reasons[0], { effect: "at the CPU's limit (100 °C), where it throttles" },
    'at the limit itself, the limit\'s own reason')
  t.match(predictor.predict('pc', { ...busyHot, TemperatureCPUPackage: 89.9 }), { prediction: 0 }, 'below the band the model decides (the power explains the heat)')
  t.match(predictor.predict('pc', { TemperatureCPUPackage: 80, TemperatureCPUCritical: 85, LoadCPUTotal: 100, PowerCPUPackage: 45, ClockCPUCoreOne: 3900 }),
    { probability: 1, prediction: 1, reasons: [{ field: 'TemperatureCPUPackage', value: 80, effect: /^5 °C under the CPU's limit \(85 °C\)/ }] },
    'the band follows the CPU\'s own limit')
  t.match(predictor.predict('pc', { TemperatureCPUPackage: 95, TemperatureCPUCritical: 110, LoadCPUTotal: 100, PowerCPUPackage: 45, ClockCPUCoreOne: 3900 }),
    { prediction: 0 }, '95 °C is 15 °C under a 110 °C limit: the model decides')
  t.match(predictor.predict('raspberry', { CPU_temp_celsius: 50, TemperatureCPUPackage: 99 }), { prediction: 0 }, 'the band is the PC\'s')
  // Issue 17's model: load enters only as ratios; more load alone never raises the probability of a healthy busy machine.
  let previous = 1
  for (const load of [40, 55, 70, 85, 100]) {
    const { probability } = predictor.predict('pc', { LoadCPUTotal: load, TemperatureCPUPackage: 60, ClockCPUCoreOne: 3500, ClockCPUMax: 3600, PowerCPUPackage: 35 })
    t.ok(probability <= previous && probability < predictor.models.pc.threshold, `60 °C, 35 W, load ${load} %: ${probability}`)
    previous = probability
  }
  const coolMaxClock = predictor.predict('pc', { LoadCPUTotal: 2, TemperatureCPUPackage: 45, ClockCPUCoreOne: 3900, PowerCPUPackage: 6 })
  t.equal(coolMaxClock.prediction, 0, `a cool idle CPU at its maximum clock (performance governor) is fine (${coolMaxClock.probability})`)
  const fields = predictor.predict('pc', { LoadCPUTotal: 100, TemperatureCPUPackage: 97, ClockCPUCoreOne: 2000, PowerCPUPackage: 40 }).reasons.map(r => r.field)
  t.same(fields, [...new Set(fields)], 'one reason per field: the features resting on it are summed')
  const idle = predictor.predict('pc', { ClockCPUCoreOne: 1500, TemperatureCPUPackage: 45, LoadCPUTotal: 3, PowerCPUPackage: 5 })
  t.equal(idle.prediction, 0, `an idle PC is fine (${idle.probability})`)
  t.ok(idle.probability < 0.1)

  t.same(predictor.predict('raspberry', { CPU_temp_celsius: 45, throttled: '0x4' }), {
    probability: 1, prediction: 1, source: 'hardware', reasons: [{ field: 'throttled', value: '0x4', effect: 'throttled now (reported by the firmware)' }], missing: []
  }, 'the mask beats the model')
  t.match(predictor.predict('raspberry', { throttled: 'throttled=0x80008' }), {
    probability: 1, prediction: 1, source: 'hardware', reasons: [{ effect: 'soft temperature limit now (reported by the firmware)' }], missing: ['CPU_temp_celsius']
  })
  const cool = predictor.predict('raspberry', { CPU_temp_celsius: 50, GPU_temp_celsius: 50, throttled: '0xe0000' })
  t.match(cool, { probability: 0, prediction: 0, source: 'model' }, 'bits that only "occurred" do not count; a cool Pi is fine')
  t.match(cool.reasons, [{ field: 'CPU_temp_celsius', value: 50, effect: /^-/ }], 'its temperature is the reason')
  t.equal(predictor.predict('raspberry', { CPU_temp_celsius: 85, throttled: '0x0' }).prediction, 1, 'a Pi at 85 °C is about to throttle')
  t.equal(predictor.predict('raspberry', { CPU_temp_celsius: 85, throttled: 'garbage' }).prediction, 1, 'an invalid mask is ignored')

  for (const kind of ['pc', 'raspberry'] as const) {
    const features = predictor.models[kind].features
    const { probability, prediction } = predictor.predict(kind, Object.fromEntries(features.map(f => [f, null])))
    t.ok(Number.isFinite(probability) && probability >= 0 && probability <= 1, `${kind}: null sensors give a number (${probability})`)
    t.ok(prediction === 0 || prediction === 1)
  }
  const partial = predictor.predict('pc', { ClockCPUCoreOne: 3600, TemperatureCPUPackage: 98, LoadCPUTotal: null })
  t.ok(Number.isFinite(partial.probability), 'some sensors missing')
  t.same(partial.missing, ['PowerCPUPackage', 'LoadCPUTotal'], 'named in `missing`')
  t.equal(partial.prediction, 1, 'a PC at 98 °C is stressed without its power and load')

  // Missing inputs never raise the probability: each subset of a healthy busy reading scores at most the healthy baseline's
  // worst, and a reading without a temperature is never stressed from load alone.
  for (const load of [0, 30, 60, 100]) {
    t.equal(predictor.predict('pc', { LoadCPUTotal: load }).prediction, 0, `load ${load} alone is not stressed`)
  }
  const full = { ClockCPUCoreOne: 3900, TemperatureCPUPackage: 65, LoadCPUTotal: 100, PowerCPUPackage: 45, ClockCPUMax: 4000 }
  t.equal(predictor.predict('pc', full).prediction, 0, 'a healthy busy PC is OK')
  for (const drop of Object.keys(full)) {
    const fewer: Record<string, unknown> = { ...full }
    delete fewer[drop]
    t.equal(predictor.predict('pc', fewer).prediction, 0, `... also without ${drop}`)
  }
  const baseline = predictor.predict('pc', {}).probability
  t.ok(baseline < 0.2, `nothing known: the healthy baseline (${baseline})`)

  // Hardware evidence on a PC: the kernel's throttle count and an NVIDIA slowdown reason.
  t.match(predictor.predict('pc', { ...full, ThrottleEventsCPU: 3 }), { prediction: 1, probability: 1, source: 'hardware', reasons: [{ field: 'ThrottleEventsCPU', value: 3 }] })
  t.match(predictor.predict('pc', { ...full, ThrottleEventsCPU: 0 }), { prediction: 0, source: 'model' }, 'no event, no evidence')
  t.match(predictor.predict('pc', { ...full, ThrottleReasonsGPU: ['hw_thermal_slowdown'] }), { prediction: 1, source: 'hardware' })
  t.match(predictor.predict('pc', { ...full, ThrottleReasonsGPU: ['sw_power_cap', 'gpu_idle'] }), { prediction: 0, source: 'model' }, 'a GPU at its power cap is busy')

  // The CPU's own limit: 90 °C is 10 °C under a 100 °C limit but 20 °C under a 110 °C one.
  const warm = { ClockCPUCoreOne: 3900, TemperatureCPUPackage: 88, LoadCPUTotal: 100, PowerCPUPackage: 45, ClockCPUMax: 4000 }
  const near = predictor.predict('pc', { ...warm, TemperatureCPUCritical: 90 })
  const far = predictor.predict('pc', { ...warm, TemperatureCPUCritical: 115 })
  t.ok(near.probability > far.probability, `closer to its limit, more stressed (${near.probability} > ${far.probability})`)

  const p = predictor.predict('pc', { ClockCPUCoreOne: 3000, TemperatureCPUPackage: 66, LoadCPUTotal: 20, PowerCPUPackage: 10 }).probability
  t.equal(p, Math.round(p * 1e4) / 1e4, 'rounded to 4 decimals')
  t.throws(() => predictor.predict('mac' as 'pc', {}), /Unknown device kind "mac"/)
})

t.test('missing or invalid model files fail at start, naming the file', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'model-predictor-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await copyFile(join(modelsDir, 'pc.json'), join(dir, 'pc.json'))
  await t.rejects(createPredictor({ modelsDir: dir }), { name: 'ModelFileError', message: `Invalid model file ${join(dir, 'raspberry.json')}: file not found` })

  await writeFile(join(dir, 'raspberry.json'), await readFile(join(modelsDir, 'pc.json')))
  await t.rejects(createPredictor({ modelsDir: dir }), { message: /raspberry\.json: "kind" is "pc", expected "raspberry"/ })

  const broken = JSON.parse(await readFile(join(modelsDir, 'raspberry.json'), 'utf8')) as Record<string, unknown>
  delete broken.threshold
  await writeFile(join(dir, 'raspberry.json'), JSON.stringify(broken))
  await t.rejects(createPredictor({ modelsDir: dir }), { message: /raspberry\.json: missing "threshold"/ })
})

import { copyFile, mkdtemp, rm, writeFile, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { modelsDir } from '../../paths.js'
import { createPredictor } from '../../prediction/predictor.js'

t.test('shipped models', async t => {
  const predictor = await createPredictor()

  const hot = predictor.predict('pc', { ClockCPUCoreOne: 4200, TemperatureCPUPackage: 100, LoadCPUTotal: 100, PowerCPUPackage: 95 })
  t.same(hot, { probability: 1, prediction: 1 }, 'a hot, fully loaded PC is stressed')
  const idle = predictor.predict('pc', { ClockCPUCoreOne: 1500, TemperatureCPUPackage: 45, LoadCPUTotal: 3, PowerCPUPackage: 5 })
  t.equal(idle.prediction, 0, `an idle PC is fine (${idle.probability})`)
  t.ok(idle.probability < 0.1)

  t.same(predictor.predict('raspberry', { CPU_temp_celsius: 45, throttled: '0x4' }), { probability: 1, prediction: 1 }, 'the mask beats the model')
  t.same(predictor.predict('raspberry', { throttled: 'throttled=0x80008' }), { probability: 1, prediction: 1 })
  const cool = predictor.predict('raspberry', { CPU_temp_celsius: 50, GPU_temp_celsius: 50, throttled: '0xe0000' })
  t.same(cool, { probability: 0, prediction: 0 }, 'bits that only "occurred" do not count; a cool Pi is fine')
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

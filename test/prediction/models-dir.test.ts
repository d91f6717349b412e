import t from 'tap'
import { copyFile, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { modelsDir } from '../../paths.js'
import { loadConfig } from '../../config.js'
import { spawnServer, tempDir } from '../helper.js'

t.test('MODELS_DIR: the shipped models by default, else the folder given', async t => {
  t.equal(loadConfig({}).modelsDir, modelsDir)
  t.equal(loadConfig({ MODELS_DIR: '/srv/models' }).modelsDir, '/srv/models')
})

t.test('a missing or invalid model file in MODELS_DIR stops start-up with one line naming the file', async t => {
  const dir = await tempDir(t, 'models-dir-')
  await copyFile(join(modelsDir, 'raspberry.json'), join(dir, 'raspberry.json'))
  const cases: Array<[string, () => Promise<void>, RegExp]> = [
    ['missing', async () => {}, /^Invalid model file .*pc\.json: file not found$/],
    ['not JSON', async () => { await writeFile(join(dir, 'pc.json'), '{"kind":') }, /^Invalid model file .*pc\.json: not valid JSON/],
    ['invalid', async () => {
      const model = JSON.parse(await readFile(join(modelsDir, 'pc.json'), 'utf8')) as Record<string, unknown>
      model.coef = [1]
      await writeFile(join(dir, 'pc.json'), JSON.stringify(model))
    }, /^Invalid model file .*pc\.json: "coef" has 1 entries but "features" has 5$/]
  ]
  for (const [name, prepare, line] of cases) {
    await prepare()
    const { output, exited } = spawnServer(t, { MODELS_DIR: dir, DATA_DIR: await tempDir(t), COLLECTOR: 'off', PORT: '0' })
    t.equal(await exited, 1, `${name}: exits 1`)
    const text = output().trim()
    t.equal(text.split('\n').length, 1, `${name}: one line (${text.slice(0, 300)})`)
    t.match(text, line, `${name}: names the file`)
    t.ok(text.includes(join(dir, 'pc.json')), `${name}: the path in MODELS_DIR`)
    t.notMatch(text, /at .*\.js:\d+/, `${name}: no stack trace`)
  }
})

t.test('a good MODELS_DIR is used', async t => {
  const dir = await tempDir(t, 'models-dir-')
  await copyFile(join(modelsDir, 'raspberry.json'), join(dir, 'raspberry.json'))
  const model = JSON.parse(await readFile(join(modelsDir, 'pc.json'), 'utf8')) as { intercept: number }
  // An intercept so high that every PC reading is stressed: only this folder's model can say so.
  model.intercept = 50
  await writeFile(join(dir, 'pc.json'), JSON.stringify(model))
  const { createPredictor } = await import('../../prediction/predictor.js')
  const predictor = await createPredictor({ modelsDir: loadConfig({ MODELS_DIR: dir }).modelsDir })
  t.equal(predictor.predict('pc', { TemperatureCPUPackage: 40 }).prediction, 1)
})

import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { modelsDir } from '../../paths.js'
import { loadModel } from '../../prediction/logistic.js'

const DATA = process.env.TRAINING_DATA_DIR ?? fileURLToPath(new URL('../../../../shared/data/training', import.meta.url))
const haveData = existsSync(join(DATA, 'data_rasb.csv'))
const cli = fileURLToPath(new URL('../../tools/train.js', import.meta.url))

function run (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise(resolve => {
    execFile(process.execPath, [cli, ...args], (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

t.test('trains a copy of the shared folder end to end', { skip: !haveData && `no training data at ${DATA}` }, async t => {
  const input = await mkdtemp(join(tmpdir(), 'model-cli-in-'))
  const out = join(await mkdtemp(join(tmpdir(), 'model-cli-out-')), 'models')
  t.teardown(async () => {
    await rm(input, { recursive: true, force: true })
    await rm(join(out, '..'), { recursive: true, force: true })
  })
  for (const name of await readdir(DATA)) await copyFile(join(DATA, name), join(input, name))

  const { code, stdout, stderr } = await run([input, '--out', out])
  t.equal(code, 0, stderr)
  t.match(stdout, /\| model \| split \| n \| stressed \| accuracy \| precision \| recall \| F1 \|/)
  t.match(stdout, /\| pc \| test \| 40 \|/)
  t.match(stdout, /\| raspberry \| test \| 46 \|/)
  t.same((await readdir(out)).sort(), ['EVALUATION.md', 'pc.json', 'raspberry.json'])
  for (const kind of ['pc', 'raspberry']) {
    const model = await loadModel(join(out, `${kind}.json`))
    const committed = await loadModel(join(modelsDir, `${kind}.json`))
    t.same(model.metrics, committed.metrics, `${kind}: same figures as the committed model`)
  }
  const evaluation = await readFile(join(out, 'EVALUATION.md'), 'utf8')
  t.match(evaluation, `npm run train -- ${input} --out ${out}`)
  t.match(evaluation, /seeded with 20221006/)
})

t.test('failures exit non-zero with one clear line', async t => {
  const missing = await run(['/nonexistent/training'])
  t.equal(missing.code, 1)
  t.equal(missing.stderr, 'train: training folder not found: /nonexistent/training\n')
  t.equal(missing.stdout, '')

  const dir = await mkdtemp(join(tmpdir(), 'model-cli-bad-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'mystery.csv'), 'a;b\n1;2')
  const unknown = await run([dir, '--out', join(dir, 'out')])
  t.equal(unknown.code, 1)
  t.match(unknown.stderr, /^train: mystery\.csv: unknown CSV shape \(columns: a, b\); expected a PC file with .+\n$/)
  t.equal(unknown.stderr.split('\n').length, 2, 'one line')
  t.notOk(existsSync(join(dir, 'out')), 'nothing written')

  await writeFile(join(dir, 'mystery.csv'), 'CPU_temp_celsius;throttled\n50;0x0\n"oops;0x8')
  const unreadable = await run([dir])
  t.equal(unreadable.code, 1)
  t.equal(unreadable.stderr, 'train: mystery.csv:3: column CPU_temp_celsius is not a number: "\\"oops"\n')

  const usage = await run([])
  t.equal(usage.code, 2)
  t.match(usage.stderr, /^train: missing the folder of CSV files\nusage: /)
})

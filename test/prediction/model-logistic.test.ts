import { mkdtemp, writeFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { compileModel, loadModel, ModelFileError, parseModel, predictProbability, sigmoid, type LogisticModel } from '../../prediction/logistic.js'

const metrics = { accuracy: 0.9, precision: 0.8, recall: 0.7, f1: 0.75, n: 10 }
const valid: LogisticModel = {
  kind: 'pc',
  version: 1,
  features: ['a', 'b'],
  mean: [10, 100],
  scale: [2, 50],
  coef: [1.5, -0.5],
  intercept: 0.25,
  threshold: 0.7,
  target: 'needs technical intervention',
  trainedAt: '2024-01-02T03:04:05.000Z',
  source: { files: ['x.csv'], rows: 50 },
  metrics: { test: metrics, train: metrics }
}

t.test('parseModel accepts a valid model and copies it', async t => {
  const parsed = parseModel(JSON.parse(JSON.stringify(valid)), 'm.json')
  t.same(parsed, valid)
})

t.test('parseModel rejects bad shapes, naming the file and the problem', async t => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['not an object', [], /not a JSON object/],
    ['missing key', { ...valid, coef: undefined }, /"coef" must be an array/],
    ['absent key', Object.fromEntries(Object.entries(valid).filter(([k]) => k !== 'intercept')), /missing "intercept"/],
    ['unexpected key', { ...valid, extra: 1 }, /unexpected key "extra"/],
    ['bad kind', { ...valid, kind: 'mac' }, /"kind" must be "pc" or "raspberry"/],
    ['bad version', { ...valid, version: 2 }, /unsupported "version" 2/],
    ['length mismatch', { ...valid, mean: [1] }, /"mean" has 1 entries but "features" has 2/],
    ['non-finite', { ...valid, coef: [1, null] }, /"coef"\[1\] must be a finite number/],
    ['zero scale', { ...valid, scale: [1, 0] }, /"scale" entries must be > 0/],
    ['threshold', { ...valid, threshold: 1.5 }, /"threshold" must be between 0 and 1/],
    ['date', { ...valid, trainedAt: 'yesterday' }, /"trainedAt" must be an ISO date-time/],
    ['duplicate features', { ...valid, features: ['a', 'a'] }, /duplicate/],
    ['metrics range', { ...valid, metrics: { test: { ...metrics, recall: 2 }, train: metrics } }, /"metrics.test.recall" must be between 0 and 1/],
    ['metrics n', { ...valid, metrics: { test: metrics, train: { ...metrics, n: 1.5 } } }, /"metrics.train.n" must be a non-negative integer/],
    ['source', { ...valid, source: { files: 'x.csv', rows: 1 } }, /"source.files" must be an array/]
  ]
  for (const [name, value, problem] of cases) {
    t.throws(() => parseModel(value, '/models/pc.json'), { name: 'ModelFileError', message: problem }, name)
    t.throws(() => parseModel(value, '/models/pc.json'), { message: /^Invalid model file \/models\/pc\.json: / }, `${name} names the file`)
  }
})

t.test('loadModel reports a missing file and invalid JSON with the path', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'model-logistic-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const missing = join(dir, 'nope.json')
  await t.rejects(loadModel(missing), new ModelFileError(missing, 'file not found'))
  const broken = join(dir, 'broken.json')
  await writeFile(broken, '{"kind": "pc",')
  await t.rejects(loadModel(broken), { message: new RegExp(`^Invalid model file ${broken}: not valid JSON`) })
  const good = join(dir, 'good.json')
  await writeFile(good, JSON.stringify(valid))
  t.same(await loadModel(good), valid)
})

t.test('predictProbability', async t => {
  const expected = sigmoid(0.25 + 1.5 * (12 - 10) / 2 - 0.5 * (150 - 100) / 50)
  t.equal(predictProbability(valid, { a: 12, b: 150 }), expected)
  t.equal(predictProbability(valid, { a: '12', b: ' 150 ' }), expected, 'numeric strings are accepted')
  // A missing sensor is imputed with the training mean, i.e. contributes nothing.
  const withoutB = sigmoid(0.25 + 1.5 * (12 - 10) / 2)
  for (const b of [undefined, null, '', 'n/a', Number.NaN, Number.POSITIVE_INFINITY, {}]) {
    t.equal(predictProbability(valid, { a: 12, b }), withoutB, `b = ${String(b)}`)
  }
  t.equal(predictProbability(valid, {}), sigmoid(0.25), 'no features at all: the intercept')
  t.equal(compileModel(valid)({ a: 12, b: 150 }), expected)
  t.equal(predictProbability(valid, { a: 1e300, b: 0 }), 1, 'extreme input saturates, no NaN')
  t.equal(predictProbability(valid, { a: -1e300, b: 0 }), 0)
  t.equal(sigmoid(-800), 0)
  t.equal(sigmoid(800), 1)
})

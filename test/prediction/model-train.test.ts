import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { modelsDir } from '../../paths.js'
import { loadModel, predictProbability, sigmoid } from '../../prediction/logistic.js'
import {
  chooseThresholdForRecall, cvFigures, kindOfColumns, fitLogistic, parseCsv, readTrainingFolder, repairDecimal, stratifiedSplit, trainFromFolder,
  TrainingDataError
} from '../../prediction/train.js'

// The original system's public training files; read in place, never copied into the repository.
const DATA = process.env.TRAINING_DATA_DIR ?? fileURLToPath(new URL('../../../../shared/data/training', import.meta.url))
const haveData = existsSync(join(DATA, 'data_rasb.csv'))

t.test('repairDecimal only touches impossible values', async t => {
  const cases: Array<[string, number, number]> = [
    ['GPU_temp_celsius', 837, 83.7],
    ['GPU_temp_celsius', 54, 54],
    ['CPU_temp_celsius', 8375, 83.75],
    ['CPU_temp_celsius', 82289, 82.289],
    ['CPU_temp_celsius', 594, 59.4],
    ['CPU_temp_celsius', 83.75, 83.75],
    ['CPU_temp_celsius', 149.9, 149.9],
    ['voltage_core_v', 9084, 0.9084],
    ['voltage_core_v', 946, 0.946],
    ['voltage_core_v', 0.8625, 0.8625],
    ['voltage_sdram_c_v', 11, 1.1],
    ['voltage_sdram_c_v', 1.1, 1.1],
    ['frequency_arm_hz', 1800404352, 1800404352]
  ]
  for (const [field, raw, expected] of cases) t.equal(repairDecimal(field, raw), expected, `${field} ${raw}`)
})

t.test('parseCsv: unnamed index column, comma decimals, no final newline, CRLF', async t => {
  const table = parseCsv(';a;b\r\n0;1,5;2\r\n;3;4,25', 'x.csv')
  t.same(table.header, ['', 'a', 'b'])
  t.equal(table.decimalComma, true)
  t.same(table.rows.map(r => r.cells), [['0', '1,5', '2'], ['', '3', '4,25']])
  t.same(parseCsv('a,b\n1.5,2\n', 'y.csv').decimalComma, false)
  t.throws(() => parseCsv('a;b\n1;2;3', 'z.csv'), new TrainingDataError('z.csv:2: expected 2 fields, got 3'))
  t.throws(() => parseCsv('\n\n', 'e.csv'), /e\.csv: empty file/)
})

t.test('kindOfColumns recognises a file from its header', async t => {
  t.equal(kindOfColumns(['', 'ClockCPUCoreOne', 'TemperatureCPUPackage', 'LoadCPUTotal', 'PowerCPUPackage', 'TemperatureGPUCore', 'NoTechnicalInterventionRequired']), 'pc')
  t.equal(kindOfColumns(['device', 'CPU_temp_celsius', 'throttled']), 'raspberry')
  t.equal(kindOfColumns(['ClockCPUCoreOne', 'TemperatureCPUPackage']), null)
  t.equal(kindOfColumns(['CPU_temp_celsius']), null, 'no target column')
})

t.test('stratifiedSplit is deterministic, disjoint and 80/20 per class', async t => {
  const y = Array.from({ length: 50 }, (_, i) => (i % 5 === 0 ? 1 : 0) as 0 | 1)
  const a = stratifiedSplit(y, 7)
  t.same(stratifiedSplit(y, 7), a, 'same seed, same split')
  t.not(JSON.stringify(stratifiedSplit(y, 8)), JSON.stringify(a), 'another seed, another split')
  t.same([...a.train, ...a.test].sort((p, q) => p - q), y.map((_, i) => i))
  t.equal(a.test.length, 10)
  t.equal(a.test.filter(i => y[i] === 1).length, 2)
})

t.test('fitLogistic reaches the penalised optimum (gradient ~ 0)', async t => {
  const z = [[-2], [-1], [-0.5], [0], [0.3], [1], [2], [0.5], [-0.2]]
  const y: Array<0 | 1> = [0, 0, 1, 0, 1, 1, 1, 0, 0]
  const l2 = 0.01
  const { coef, intercept } = fitLogistic(z, y, l2)
  let g0 = 0
  let g1 = l2 * coef[0]!
  z.forEach((row, i) => {
    const r = (sigmoid(intercept + coef[0]! * row[0]!) - y[i]!) / y.length
    g0 += r
    g1 += r * row[0]!
  })
  t.ok(Math.abs(g0) < 1e-10 && Math.abs(g1) < 1e-10, `gradient ${g0}, ${g1}`)
  t.ok(coef[0]! > 0)
})

t.test('chooseThresholdForRecall: the highest threshold meeting recall and accuracy, else the fewest errors', async t => {
  // 25 positives and 25 negatives; the positives' probabilities spread low, so recall 0.96 needs a low threshold.
  const y: Array<0 | 1> = [...Array.from({ length: 25 }, () => 1 as const), ...Array.from({ length: 25 }, () => 0 as const)]
  const p = [...Array.from({ length: 25 }, (_, i) => (i === 0 ? 0.2 : i === 1 ? 0.35 : 0.9)), ...Array.from({ length: 25 }, (_, i) => (i === 0 ? 0.3 : 0.05))]
  const grid = [0.1, 0.15, 0.25, 0.4, 0.5]
  // 0.5 and 0.4: two misses (recall 0.92); 0.25: one miss (0.96) and one false alarm, accuracy 0.96.
  t.same(chooseThresholdForRecall(p, y, 1, { recall: 0.96, accuracy: 0.95 }, grid), { threshold: 0.25, met: true, cv: cvFigures(p, y, 0.25, 1) })
  t.match(cvFigures(p, y, 0.25, 1), { recall: 0.96, accuracy: 0.96, errors: 2, missed: 1, rows: 50, positives: 25 })
  // Recall 1 needs 0.15, where accuracy is 0.98 (one false alarm); demanding accuracy 0.99 as well leaves none: then the fewest
  // errors, which is 0.15 again (0.25 has two), but the rule says it was not met.
  t.match(chooseThresholdForRecall(p, y, 1, { recall: 1, accuracy: 0.95 }, grid), { threshold: 0.15, met: true })
  t.match(chooseThresholdForRecall(p, y, 1, { recall: 1, accuracy: 0.99 }, grid), { threshold: 0.15, met: false })
  // No threshold reaches the recall: the fewest errors, the higher on ties (0.4 and 0.5: two misses each, no false alarm).
  t.match(chooseThresholdForRecall(p, y, 1, { recall: 1, accuracy: 0.5 }, [0.4, 0.5]), { threshold: 0.5, met: false })
  // Pooled repetitions count per repetition.
  t.match(cvFigures([...p, ...p], [...y, ...y], 0.25, 2), { rows: 50, positives: 25, errors: 4, missed: 2, recall: 0.96 })
})

t.test('a clean user CSV (correct units) is not mangled by the quirk fixes', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'model-train-clean-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const header = 'device;loading_datetime;GPU_temp_celsius;CPU_temp_celsius;frequency_arm_hz;frequency_core_hz;frequency_pwm_hz;voltage_core_v;voltage_sdram_c_v;voltage_sdram_i_v;voltage_sdram_p_v;memory_arm_bytes;memory_gpu_bytes;throttled'
  const temps: number[] = []
  const lines = [header]
  for (let i = 0; i < 60; i++) {
    const cpu = 45 + i * 0.7 + (i % 3) * 0.123
    temps.push(cpu)
    const hot = cpu > 80
    const c = (v: number, digits: number): string => v.toFixed(digits).replace('.', ',')
    lines.push(['pi', `2024-05-01@10:${String(i).padStart(2, '0')}:00`, c(cpu - 0.4, 1), c(cpu, 3), hot ? '1500000000' : '1800000000', '500000000', '107143064',
      c(hot ? 0.8625 : 0.9, 4), '1,1', '1,1', '1,1', '994050048', '79691776', hot ? '0x80008' : '0x0'].join(';'))
  }
  await writeFile(join(dir, 'my-pi.csv'), lines.join('\n'))
  const [data] = await readTrainingFolder(dir)
  t.equal(data?.kind, 'raspberry')
  t.same(data?.x.map(row => row[0]), temps.map(v => Number(v.toFixed(3))), 'temperatures read as written')
  t.ok(Object.values(data?.repaired ?? { x: 1 }).every(n => n === 0), 'nothing repaired')

  const [report] = await trainFromFolder(dir, { now: new Date('2024-05-02T00:00:00Z') })
  const model = report!.model
  t.ok(model.mean[0]! > 45 && model.mean[0]! < 90, `training mean ${model.mean[0]} is in °C`)
  t.ok(predictProbability(model, { CPU_temp_celsius: 86 }) > 0.7, 'hot')
  t.ok(predictProbability(model, { CPU_temp_celsius: 60 }) < 0.3, 'cool')
  t.equal(model.trainedAt, '2024-05-02T00:00:00.000Z')

  // The same data as a comma-separated file with decimal points.
  const commaDir = await mkdtemp(join(tmpdir(), 'model-train-comma-'))
  t.teardown(() => rm(commaDir, { recursive: true, force: true }))
  await writeFile(join(commaDir, 'pi.csv'), lines.map(l => l.replace(/,/g, '.').replace(/;/g, ',')).join('\n') + '\n')
  const [again] = await readTrainingFolder(commaDir)
  t.same(again?.x, data?.x)
})

t.test('folder errors are clear', async t => {
  await t.rejects(readTrainingFolder('/nonexistent/folder'), { name: 'TrainingDataError', message: 'training folder not found: /nonexistent/folder' })
  const dir = await mkdtemp(join(tmpdir(), 'model-train-bad-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await t.rejects(readTrainingFolder(dir), { message: `no .csv files in ${dir}` })
  await writeFile(join(dir, 'weird.csv'), 'foo;bar\n1;2')
  await t.rejects(readTrainingFolder(dir), { message: /^weird\.csv: unknown CSV shape \(columns: foo, bar\)/ })
  await writeFile(join(dir, 'weird.csv'), 'CPU_temp_celsius;throttled\n50,1;0x0\nwarm;0x8')
  await t.rejects(readTrainingFolder(dir), { message: 'weird.csv:3: column CPU_temp_celsius is not a number: "warm"' })
  await writeFile(join(dir, 'weird.csv'), 'CPU_temp_celsius;throttled\n50,1;0x0\n51;hot')
  await t.rejects(readTrainingFolder(dir), { message: 'weird.csv:3: throttled is not a hex mask: "hot"' })
  await writeFile(join(dir, 'weird.csv'), 'CPU_temp_celsius;throttled\n50,1;0x0\n51;0x0\n52;0x0\n53;0x8')
  await t.rejects(trainFromFolder(dir), { message: /need at least 2 rows of each class/ })
})

t.test('the shared data: quirks fixed, duplicates dropped', { skip: !haveData && `no training data at ${DATA}` }, async t => {
  const [pc, raspberry] = await readTrainingFolder(DATA)
  t.equal(pc?.kind, 'pc')
  t.equal(pc?.rowsRead, 392)
  t.equal(pc?.duplicatesDropped, 191, 'data_pc_2.csv repeats rows of data_pc_1.csv')
  t.equal(pc?.y.filter(v => v === 1).length, 101, 'needs intervention')
  t.equal(raspberry?.kind, 'raspberry')
  t.equal(raspberry?.x.length, 230)
  t.equal(raspberry?.y.filter(v => v === 1).length, 36, '0x80008 + 0xe0008 + 0xf0008')
  t.same(raspberry?.x.slice(0, 2), [[83.75], [82.289]], 'CPU_temp_celsius 8375 and 82289 repaired')
  t.equal(raspberry?.repaired.voltage_core_v, 230)
  t.ok(raspberry?.x.every(([v]) => v! > 40 && v! < 90))
})

t.test('training the shared data reproduces the committed models', { skip: !haveData && `no training data at ${DATA}` }, async t => {
  const reports = await trainFromFolder(DATA)
  t.same(reports.map(r => r.model.kind), ['pc', 'raspberry'])
  for (const { model } of reports) {
    const committed = await loadModel(join(modelsDir, `${model.kind}.json`))
    t.same(model.metrics, committed.metrics, `${model.kind}: metrics`)
    t.same(model.features, committed.features, `${model.kind}: features`)
    t.same(model.source, committed.source, `${model.kind}: source`)
    const close = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b))
    t.ok(close(model.intercept, committed.intercept), `${model.kind}: intercept`)
    t.same(model.healthy?.length, model.features.length, `${model.kind}: a healthy reference per feature`)
    for (const key of ['mean', 'scale', 'coef'] as const) {
      t.ok(model[key].every((v, i) => close(v, committed[key][i]!)), `${model.kind}: ${key}`)
    }
    // Sanity floor: below today's figures, high enough to catch a broken fit or a broken split. The PC floor is lower since
    // issue 17: the model no longer calls load, power or turbo clock stress, and many of the original's "needs intervention"
    // rows are busy machines at 57-70 °C (models/EVALUATION.md, "Why"); precision stays high.
    const test = model.metrics.test
    const floor = model.kind === 'pc' ? { accuracy: 0.7, recall: 0.4, precision: 0.9, f1: 0.6 } : { accuracy: 0.85, recall: 0.7, precision: 0.7, f1: 0.75 }
    t.ok(test.accuracy >= floor.accuracy && test.recall >= floor.recall && test.precision >= floor.precision && test.f1 >= floor.f1, `${model.kind}: ${JSON.stringify(test)}`)
    t.ok(test.brier !== undefined && test.brier < 0.25, `${model.kind}: Brier score reported and better than a coin (${test.brier})`)
    t.ok(test.n >= 40, `${model.kind}: test n`)
  }
})

import t from 'tap'
import { IngestService } from '../../ingest/service.js'
import { createPredictor } from '../../prediction/predictor.js'
import type { ReadingsRepository } from '../../storage/readings-repository.js'

const base = { uuid: '0f8e5c2a-3b7d-4c1e-9a52-6d4b8e1f2a3c', device: 'pc1', loading_datetime: '2024-01-01T00:00:00Z', LoadCPUTotal: 95 }

t.test('the new PC fields are validated, stored, and the verdict is part of the reading', async t => {
  const service = new IngestService({ repository: null as unknown as ReadingsRepository, predictor: await createPredictor() })
  const ok = service.validate({
    ...base,
    TemperatureCPUPackage: 72,
    ThrottleEventsCPU: 12,
    ClockCPUMax: 3600,
    TemperatureCPUCritical: 100,
    PowerGPU: 250.5,
    ClockGPUCore: 1800,
    ThrottleReasonsGPU: ['sw_power_cap'],
    TemperatureGPUCore: null
  })
  t.ok(ok.ok)
  if (!ok.ok) return
  t.match(ok.reading, {
    ThrottleEventsCPU: 12,
    ClockCPUMax: 3600,
    TemperatureCPUCritical: 100,
    PowerGPU: 250.5,
    ClockGPUCore: 1800,
    ThrottleReasonsGPU: ['sw_power_cap'],
    prediction: 1,
    probability: 1,
    source: 'hardware',
    reasons: [{ field: 'ThrottleEventsCPU', value: 12 }],
    missing: ['PowerCPUPackage', 'ClockCPUCoreOne']
  })
  t.notOk('TemperatureGPUCore' in ok.reading, 'null sensors are not stored')
  t.notOk('threshold' in ok.reading, 'no threshold when the hardware decided')
  const modelled = service.validate({ ...base, TemperatureCPUPackage: 60, ClockCPUCoreOne: 3500, ClockCPUMax: 3600, PowerCPUPackage: 35 })
  t.match(modelled, { ok: true, reading: { source: 'model', prediction: 0, threshold: 0.3 } }, 'the model\'s threshold is part of its verdict')

  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ ThrottleEventsCPU: -1 }, /^ThrottleEventsCPU must be a number from 0 to 1000000000, or null \(got -1\)$/],
    [{ ThrottleReasonsGPU: 'hw_slowdown' }, /^ThrottleReasonsGPU must be a list of at most 16 names matching/],
    [{ ThrottleReasonsGPU: ['HW slowdown'] }, /^ThrottleReasonsGPU must be a list/],
    [{ ClockCPUMax: 'fast' }, /^ClockCPUMax must be a number/]
  ]
  for (const [bad, reason] of cases) {
    const result = service.validate({ ...base, ...bad })
    t.notOk(result.ok, JSON.stringify(bad))
    if (!result.ok) t.match(result.reasons[0], reason)
  }
})

t.test('a predictor that gives only the two numbers (an older seam) still works', async t => {
  const service = new IngestService({ repository: null as unknown as ReadingsRepository, predictor: { predict: () => ({ probability: 0.25, prediction: 0 }) } })
  const result = service.validate(base)
  t.ok(result.ok)
  if (result.ok) {
    t.match(result.reading, { probability: 0.25, prediction: 0 })
    t.notOk('source' in result.reading || 'reasons' in result.reading || 'missing' in result.reading || 'threshold' in result.reading)
  }
})

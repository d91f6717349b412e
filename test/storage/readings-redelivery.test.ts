import t, { type Test } from 'tap'
import { DeleteCommand, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb'
import { createTable, claimSk, readingSk, STATUS_SK } from '../../storage/table.js'
import { ReadingsRepository } from '../../storage/readings-repository.js'
import type { Reading } from '../../schemas/readings.js'
import { dynalite, dynamoClient, uniqueTable } from '../helper.js'

// ReadingsRepository.put() of an identical redelivery (a duplicate: same device, uuid and content)
// whose model answer has changed since the first write (another model, another rule): the reading
// and its status keep the first write's whole answer, never a mix of the two verdicts.

let seq = 0
/** A PC reading as the ingest service stores it, with verdict A: stressed, by the model. */
function readingA (): Reading {
  seq++
  return {
    uuid: `0f8e5c2a-3b7d-4c1e-9a52-${String(seq).padStart(12, '0')}`,
    device: 'pc1',
    kind: 'pc',
    loading_datetime: new Date(Date.parse('2024-05-01T00:00:00.000Z') + seq * 60_000).toISOString(),
    LoadCPUTotal: 95,
    TemperatureCPUPackage: 98,
    prediction: 1,
    probability: 0.91,
    source: 'model',
    reasons: [{ field: 'TemperatureCPUPackage', value: 98, effect: '2 °C under the CPU\'s limit (100 °C): within 10 °C of it, where throttling starts' }],
    missing: ['PowerCPUPackage'],
    threshold: 0.3
  } as Reading
}

/** The same reading with verdict B: every field of the model's answer different. */
function withVerdictB (a: Reading): Reading {
  return {
    ...a,
    prediction: 0,
    probability: 0.12,
    source: 'hardware',
    reasons: [{ field: 'LoadCPUTotal', value: 95, effect: '+0.4' }, { field: 'TemperatureCPUPackage', value: 98, effect: '-1.0' }],
    missing: [],
    threshold: 0.7
  }
}

const ANSWER = ['prediction', 'probability', 'source', 'reasons', 'missing', 'threshold'] as const
function answerOf (record: Record<string, unknown> | undefined): Record<string, unknown> {
  return Object.fromEntries(ANSWER.filter(k => record !== undefined && k in record).map(k => [k, record![k]]))
}

async function setup (t: Test) {
  const db = await dynalite(t)
  const dynamo = await dynamoClient(t, db.endpoint)
  const table = uniqueTable()
  await createTable(dynamo.client, table)
  const repository = (): ReadingsRepository => new ReadingsRepository({ doc: dynamo.doc, table })
  const get = async (device: string, sk: string): Promise<Record<string, unknown> | undefined> =>
    (await dynamo.doc.send(new GetCommand({ TableName: table, Key: { device, sk }, ConsistentRead: true }))).Item
  const del = async (device: string, sk: string): Promise<void> => { await dynamo.doc.send(new DeleteCommand({ TableName: table, Key: { device, sk } })) }
  const put = async (item: Record<string, unknown>): Promise<void> => { await dynamo.doc.send(new PutCommand({ TableName: table, Item: item })) }
  return { repository, get, del, put }
}

/** Deletes the reading and status items (a crash before they were written), so a redelivery rewrites both. */
async function crash (s: Awaited<ReturnType<typeof setup>>, r: Reading): Promise<void> {
  await s.del(r.device, readingSk(r.loading_datetime, r.uuid))
  await s.del(r.device, STATUS_SK)
}

t.test('a redelivery with another verdict: the reading item and the status keep the first verdict entirely', async t => {
  const s = await setup(t)
  const a = readingA()
  const b = withVerdictB(a)
  const sk = readingSk(a.loading_datetime, a.uuid)
  t.same(await s.repository().put([a]), { stored: [a], duplicates: 0, conflicts: [] })
  const item = await s.get(a.device, sk)
  const status = await s.get(a.device, STATUS_SK)
  t.same(answerOf(item), answerOf(a as unknown as Record<string, unknown>), 'stored with verdict A')
  t.same((await s.get(a.device, claimSk(a.uuid)))?.verdict, { source: a.source, reasons: a.reasons, missing: a.missing, threshold: a.threshold }, 'the claim holds the rest of the answer')

  t.same(await s.repository().put([b]), { stored: [], duplicates: 1, conflicts: [] })
  t.same(await s.get(a.device, sk), item, 'the reading item is as first stored')
  t.same(await s.get(a.device, STATUS_SK), status, 'the status is untouched')

  // A crash had left neither the reading nor the status: the redelivery writes both, with verdict A.
  await crash(s, a)
  const repository = s.repository()
  t.same(await repository.put([b]), { stored: [], duplicates: 1, conflicts: [] })
  t.same(await s.get(a.device, sk), item, 'the reading item is rewritten as first stored')
  const [moved] = [...(await repository.getStatuses([a.device])).values()]
  t.same(answerOf(moved as unknown as Record<string, unknown>), answerOf(a as unknown as Record<string, unknown>), 'the status moved forward holds verdict A')
  t.equal(moved?.uuid, a.uuid)
})

t.test('in one call and in calls in flight together, the later delivery with another verdict is stored as the first', async t => {
  const s = await setup(t)
  const a = readingA()
  t.same(await s.repository().put([a, withVerdictB(a)]), { stored: [a], duplicates: 1, conflicts: [] })
  t.same(answerOf(await s.get(a.device, readingSk(a.loading_datetime, a.uuid))), answerOf(a as unknown as Record<string, unknown>))

  const c = readingA()
  const repository = s.repository()
  const [first, second] = await Promise.all([repository.put([c]), repository.put([withVerdictB(c)])])
  t.equal(first.stored.length, 1)
  t.equal(second.duplicates, 1)
  t.same(answerOf(await s.get(c.device, readingSk(c.loading_datetime, c.uuid))), answerOf(c as unknown as Record<string, unknown>))
  t.same(answerOf(await s.get(c.device, STATUS_SK)), answerOf(c as unknown as Record<string, unknown>), 'the status too')
})

/** The claim item as the service wrote it before claims held the verdict. */
function legacyClaim (r: Reading, hash: unknown): Record<string, unknown> {
  return {
    device: r.device,
    sk: claimSk(r.uuid),
    reading_sk: readingSk(r.loading_datetime, r.uuid),
    content_hash: hash,
    prediction: r.prediction,
    probability: r.probability
  }
}

t.test('a claim written before claims held the verdict', async t => {
  t.test('redelivered with the same prediction and probability: the redelivery\'s source, reasons, missing and threshold are kept', async t => {
    const s = await setup(t)
    const a = readingA()
    await s.repository().put([a])
    const claim = await s.get(a.device, claimSk(a.uuid))
    await s.put(legacyClaim(a, claim?.content_hash))
    await crash(s, a)
    // the same verdict, worded by a newer rule
    const again = { ...a, reasons: [{ field: 'TemperatureCPUPackage', value: 98, effect: '2 °C under the limit' }], missing: [], threshold: 0.35 }
    const repository = s.repository()
    t.same(await repository.put([again]), { stored: [], duplicates: 1, conflicts: [] })
    const item = await s.get(a.device, readingSk(a.loading_datetime, a.uuid))
    t.same(answerOf(item), answerOf(again as unknown as Record<string, unknown>))
    t.same(answerOf((await repository.getStatuses([a.device])).get(a.device) as unknown as Record<string, unknown>), answerOf(again as unknown as Record<string, unknown>), 'the status alike')
    t.notOk('verdict' in (await s.get(a.device, claimSk(a.uuid)) ?? {}), 'the older claim is not rewritten')
  })

  t.test('redelivered with another verdict: the claim\'s prediction and probability, nothing of the other verdict', async t => {
    const s = await setup(t)
    const a = readingA()
    await s.repository().put([a])
    await s.put(legacyClaim(a, (await s.get(a.device, claimSk(a.uuid)))?.content_hash))
    for (const redelivery of [withVerdictB(a), { ...a, probability: 0.95 }]) {
      await crash(s, a)
      const repository = s.repository()
      t.same(await repository.put([redelivery]), { stored: [], duplicates: 1, conflicts: [] })
      const item = await s.get(a.device, readingSk(a.loading_datetime, a.uuid))
      t.same(answerOf(item), { prediction: 1, probability: 0.91 }, `${redelivery.probability}: prediction and probability of the claim only`)
      t.match(item, { uuid: a.uuid, LoadCPUTotal: 95, TemperatureCPUPackage: 98 }, 'the reading itself')
      const status = (await repository.getStatuses([a.device])).get(a.device)
      t.same(answerOf(status as unknown as Record<string, unknown>), { prediction: 1, probability: 0.91 }, 'the status alike')
    }
  })
})

t.test('a claim whose verdict attribute is malformed: still the reading\'s claim, read as one without a verdict', async t => {
  const s = await setup(t)
  const malformed: unknown[] = [
    'model',
    { source: 'oracle' },
    { reasons: [{ field: 'TemperatureCPUPackage' }] },
    { reasons: 'TemperatureCPUPackage' },
    { missing: [1] },
    { threshold: 'high' }
  ]
  for (const verdict of malformed) {
    const a = readingA()
    await s.repository().put([a])
    const claim = await s.get(a.device, claimSk(a.uuid))
    await s.put({ ...claim, verdict })
    await crash(s, a)
    const repository = s.repository()
    t.same(await repository.put([withVerdictB(a)]), { stored: [], duplicates: 1, conflicts: [] }, `${JSON.stringify(verdict)}: a duplicate, not stored again`)
    t.same(answerOf(await s.get(a.device, readingSk(a.loading_datetime, a.uuid))), { prediction: 1, probability: 0.91 }, 'rewritten with the claim\'s prediction and probability only')
    t.same(answerOf((await repository.getStatuses([a.device])).get(a.device) as unknown as Record<string, unknown>), { prediction: 1, probability: 0.91 })
    t.same(await repository.put([{ ...a, LoadCPUTotal: 5 }]).then(r => r.conflicts.length), 1, 'other values under its uuid are still a conflict')
  }
})

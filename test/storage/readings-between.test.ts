import t, { type Test } from 'tap'
import { createTable } from '../../storage/table.js'
import { ReadingsRepository } from '../../storage/readings-repository.js'
import { StorageUnavailableError } from '../../storage/errors.js'
import { IngestService } from '../../ingest/service.js'
import { createPredictor } from '../../prediction/predictor.js'
import { dynalite, dynamoClient, dynamoProxy, pcReading, uniqueTable } from '../helper.js'

// ReadingsRepository.readingsBetween: the export's read, one device's readings oldest first, one
// Query a page, each page read only when the caller pulls it.

const base = Date.parse('2024-05-01T00:00:00.000Z')
const at = (i: number): string => new Date(base + i * 60_000).toISOString()

async function setup (t: Test) {
  const db = await dynalite(t)
  const proxy = await dynamoProxy(t, db.endpoint)
  const dynamo = await dynamoClient(t, proxy.endpoint)
  const table = uniqueTable()
  await createTable(dynamo.client, table)
  const repository = new ReadingsRepository({ doc: dynamo.doc, table })
  const ingest = new IngestService({ repository, predictor: await createPredictor() })
  // stored in shuffled order, beside another device's readings
  const order = Array.from({ length: 20 }, (_, i) => i).sort((a, b) => ((a * 7) % 20) - ((b * 7) % 20))
  const result = await ingest.ingest([
    ...order.map(i => pcReading({ loading_datetime: at(i), LoadCPUTotal: i })),
    ...Array.from({ length: 5 }, (_, i) => pcReading({ device: 'pc2', loading_datetime: at(i) }))
  ])
  t.equal(result.stored, 25)
  const calls = (): Record<string, number> => ({ ...proxy.calls })
  return { db, proxy, repository, calls }
}

async function collect (pages: AsyncGenerator<Array<{ loading_datetime: string }>>): Promise<string[][]> {
  const out: string[][] = []
  for await (const page of pages) out.push(page.map(r => r.loading_datetime))
  return out
}

t.test('every reading of the device, oldest first, one Query a page, never a Scan', async t => {
  const { proxy, repository } = await setup(t)
  proxy.calls = {}
  const pages = await collect(repository.readingsBetween('pc1', { pageSize: 7 }))
  t.same(pages.map(p => p.length), [7, 7, 6])
  t.same(pages.flat(), Array.from({ length: 20 }, (_, i) => at(i)), 'oldest first, each once, no status or claim item, no other device')
  t.same(proxy.calls, { Query: 3 }, 'three Queries and nothing else')

  proxy.calls = {}
  const exact = await collect(repository.readingsBetween('pc1', { pageSize: 10 }))
  t.same(exact.map(p => p.length), [10, 10], 'a last page that comes back empty is not yielded')
  t.same(proxy.calls, { Query: 3 })

  t.same((await collect(repository.readingsBetween('pc9'))), [], 'a device without readings: no page')
})

t.test('from and to are inclusive ISO bounds', async t => {
  const { repository } = await setup(t)
  t.same((await collect(repository.readingsBetween('pc1', { from: at(5), to: at(9) }))).flat(), [at(5), at(6), at(7), at(8), at(9)])
  t.same((await collect(repository.readingsBetween('pc1', { from: at(18) }))).flat(), [at(18), at(19)])
  t.same((await collect(repository.readingsBetween('pc1', { to: at(1) }))).flat(), [at(0), at(1)])
  t.same((await collect(repository.readingsBetween('pc1', { from: at(30) }))).flat(), [])
})

t.test('lazy: the next page is queried only when the caller pulls it; return() stops the reads', async t => {
  const { proxy, repository } = await setup(t)
  proxy.calls = {}
  const pages = repository.readingsBetween('pc1', { pageSize: 5 })
  t.same(proxy.calls, {}, 'nothing is read before the first pull')
  const first = await pages.next()
  t.equal(first.value?.length, 5)
  t.same(proxy.calls, { Query: 1 })
  await new Promise(resolve => setTimeout(resolve, 50))
  t.same(proxy.calls, { Query: 1 }, 'no read ahead')
  await pages.next()
  t.same(proxy.calls, { Query: 2 })
  t.same(await pages.return(), { value: undefined, done: true })
  t.same(proxy.calls, { Query: 2 }, 'none after return()')
})

t.test('a table that does not answer is a StorageUnavailableError, at the page it fails', async t => {
  const { db, repository } = await setup(t)
  const pages = repository.readingsBetween('pc1', { pageSize: 10 })
  t.equal((await pages.next()).value?.length, 10)
  await db.close()
  await t.rejects(pages.next(), StorageUnavailableError)
})

import t from 'tap'
import { setImmediate as turn } from 'node:timers/promises'
import { createDynamo, startEmbeddedDynamo } from '../../storage/client.js'
import { createTable } from '../../storage/table.js'
import { ReadingsRepository } from '../../storage/readings-repository.js'
import { pcReading, uniqueTable } from '../helper.js'
import { IngestService } from '../../ingest/service.js'
import { createPredictor } from '../../prediction/predictor.js'

// The embedded DynamoDB (dynalite in-process, the default without DYNAMODB_ENDPOINT) is closed by
// the app's onClose hook while background status reads may still be on their way: those are
// answered (or refused) first, and the process never sees dynalite touch its closed store.
t.test('closing the embedded DynamoDB with reads in flight: each settles, nothing is thrown', async t => {
  const predictor = await createPredictor()
  for (let round = 0; round < 6; round++) {
    const db = await startEmbeddedDynamo(null)
    const dynamo = await createDynamo({ mode: 'endpoint', endpoint: db.endpoint, dataDir: '' })
    t.teardown(() => dynamo.close())
    const table = uniqueTable()
    await createTable(dynamo.client, table)
    const repository = new ReadingsRepository({ doc: dynamo.doc, table })
    const ingest = new IngestService({ repository, predictor })
    const devices = Array.from({ length: 30 }, (_, i) => `d${i}`)
    await ingest.ingest(devices.map(device => pcReading({ device })))
    const reads = Promise.allSettled(Array.from({ length: 40 }, async () => await repository.getStatuses(devices)))
    for (let i = 0; i < round * 3; i++) await turn() // close at different points of the reads' way
    await db.close()
    const settled = await reads
    for (const s of settled) {
      if (s.status === 'fulfilled') t.equal(s.value.size, 30, 'a read answered before the close is whole')
      else t.type(s.reason, Error, 'a read refused by the close fails with an error')
    }
  }
})

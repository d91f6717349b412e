import { startEmbeddedDynamo } from '../../storage/client.js'
import { answerGc } from './gc.js'

// The bench's DynamoDB: dynalite in memory (no LevelDB files), in its own process so that its CPU
// is not the server's. Tells its endpoint over IPC.

const db = await startEmbeddedDynamo(null, 0)
process.send?.({ type: 'ready', endpoint: db.endpoint })
answerGc()

async function shutdown (): Promise<void> {
  await db.close()
  process.exit(0)
}
for (const event of ['SIGTERM', 'SIGINT', 'disconnect'] as const) {
  process.once(event, () => { shutdown().catch(() => { process.exit(1) }) })
}

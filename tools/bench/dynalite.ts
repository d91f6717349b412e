import { startEmbeddedDynamo } from '../../storage/client.js'
import { fullGc } from './gc.js'

// The bench's DynamoDB: dynalite in memory (no LevelDB files), in its own process so that its CPU
// is not the server's. Usage: node build/tools/bench/dynalite.js [port]; tells its endpoint over IPC.

const db = await startEmbeddedDynamo(null, Number(process.argv[2] ?? 0))
process.send?.({ type: 'ready', endpoint: db.endpoint, pid: process.pid })
// between two loads (tools/bench/gc.ts)
process.on('message', (msg: { type: string }) => {
  if (msg.type === 'gc') {
    fullGc()
    process.send?.({ type: 'gc' })
  }
})

async function shutdown (): Promise<void> {
  await db.close()
  process.exit(0)
}
process.once('SIGTERM', () => { shutdown().catch(() => { process.exit(1) }) })
process.once('SIGINT', () => { shutdown().catch(() => { process.exit(1) }) })
// the bench runner is gone: do not outlive it
process.once('disconnect', () => { shutdown().catch(() => { process.exit(1) }) })

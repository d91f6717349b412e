import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { dynaliteProcess } from '../helper.js'
import { brokers, noBroker, producer, waitUntil } from '../kafka-helper.js'
import { exactlyOnce, N, midStream, resumeTime, scenario, settle, startService } from '../fault-helper.js'

// no limit in the issue for this one: the consumer's write backoff (at most 5 s) and the backlog
const DYNAMO_RESUME_LIMIT_MS = 15_000

t.test('DynamoDB killed (SIGKILL) and restarted mid-stream: no reading lost or duplicated, and ingestion resumes', { skip: noBroker }, async t => {
  const db = await dynaliteProcess(t)
  const { topic, device, env } = scenario('dynamo', db.endpoint, brokers!)
  const p = await producer(t)
  // Issue 14 item 3: a consumer that cannot commit while messages wait reads down, with its reason.
  const service = await startService(t, { ...env, KAFKA_STALL_SECONDS: '2' })
  const { stream, served, expected } = await midStream(p, topic, device, service.base)
  t.ok(served > 100, `readings stored before the kill (${served} served)`)
  t.ok(stream.published.length < N, `mid-stream: ${stream.published.length} of ${N} published`)

  await db.kill('SIGKILL')
  const kafkaState = async (): Promise<{ http: number, kafka: { status: string, reason?: string } }> => {
    const res = await fetch(`${service.base}/health`)
    return { http: res.status, kafka: (await res.json() as { components: { kafka: { status: string, reason?: string } } }).components.kafka }
  }
  t.ok(await waitUntil(async () => (await kafkaState()).kafka.reason === 'stalled', 15_000), 'the consumer reads "stalled" once it has lag and no commit for KAFKA_STALL_SECONDS')
  t.equal((await kafkaState()).http, 503, '/health says 503 while DynamoDB is down')
  await db.start()
  const resume = await resumeTime(p, topic, device, service.base, Date.now())
  await stream.done
  const f = await settle(service.base, device, [...expected(), resume.uuid])
  exactlyOnce(t, 'DynamoDB SIGKILL', f, { 'DynamoDB back to a new reading stored': resume.ms })
  t.ok(resume.ms <= DYNAMO_RESUME_LIMIT_MS, `resumes within ${DYNAMO_RESUME_LIMIT_MS} ms of DynamoDB's return (took ${resume.ms} ms)`)
  t.equal(service.server.child.exitCode, null, 'the service kept running')
  // Idle for longer than the stall window with nothing waiting: not a stall.
  await sleep(3000)
  t.same(await kafkaState(), { http: 200, kafka: { status: 'up', reason: 'consuming' } }, 'an idle consumer without lag stays up')

  service.server.child.kill('SIGTERM')
  t.equal(await service.server.exited, 0, 'exits 0 on SIGTERM')
})

import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { dynaliteProcess, tempDir } from '../helper.js'
import { freePort, producer, waitUntil } from '../kafka-helper.js'
import { exactlyOnce, N, midStream, resumeTime, scenario, settle, startService } from '../fault-helper.js'

interface BrokerModule {
  testBrokerFromEnv: () => unknown
  startBroker: (o: { port: number, controllerPort: number, dataDir: string, log?: (m: string) => void }) =>
  Promise<{ brokers: string, pid: number, stop: () => Promise<void> }>
}

const brokerModule = await import(new URL('../../../tools/kafka-broker.mjs', import.meta.url).href) as BrokerModule
// Stopping the runner's broker would stop it under the test files that run alongside (TAP_JOBS), so
// this test stops a broker of its own, as test/kafka-resilience.test.ts does; it needs the runner's
// Kafka jars and Java, so it runs where the runner started a broker.
const skip = brokerModule.testBrokerFromEnv() === null ? 'needs the broker that `npm test` starts (not an external KAFKA_BROKERS)' : false

// no limit in the issue for this one: librdkafka's reconnect backoff (at most 5 s), the group's rejoin and the backlog
const BROKER_RESUME_LIMIT_MS = 20_000

t.test('the broker stopped and restarted mid-stream: no reading lost or duplicated, and ingestion resumes', { skip }, async t => {
  const dataDir = await tempDir(t, 'sensors-fault-kafka-')
  const ports = { port: await freePort(), controllerPort: await freePort() }
  let broker = await brokerModule.startBroker({ ...ports, dataDir, log: () => {} })
  t.teardown(() => broker.stop())
  const db = await dynaliteProcess(t)
  const { topic, device, env } = scenario('broker', db.endpoint, broker.brokers)
  const p = await producer(t, broker.brokers)
  const service = await startService(t, env)
  const { stream, served, expected } = await midStream(p, topic, device, service.base)
  t.ok(served > 100, `readings stored before the broker stops (${served} served)`)
  t.ok(stream.published.length < N, `mid-stream: ${stream.published.length} of ${N} published`)

  await broker.stop()
  await sleep(3000)
  broker = await brokerModule.startBroker({ ...ports, dataDir, log: () => {} })
  const resume = await resumeTime(p, topic, device, service.base, Date.now())
  await stream.done
  const f = await settle(service.base, device, [...expected(), resume.uuid])
  exactlyOnce(t, 'broker restart', f, { 'broker back to a new reading stored': resume.ms })
  t.ok(resume.ms <= BROKER_RESUME_LIMIT_MS, `resumes within ${BROKER_RESUME_LIMIT_MS} ms of the broker's return (took ${resume.ms} ms)`,
    { todo: 'issue 14 item 6: a rejoin can wait out the session timeout (34 s seen once)' })

  // Issue 14 item 13: a frozen broker (SIGSTOP: connections open, nothing answered) reads down, in fixed words.
  process.kill(broker.pid, 'SIGSTOP')
  t.teardown(() => { try { process.kill(broker.pid, 'SIGCONT') } catch {} })
  let frozen: { status: number, text: string } = { status: 0, text: '' }
  await waitUntil(async () => {
    const res = await fetch(`${service.base}/health`)
    frozen = { status: res.status, text: await res.text() }
    return res.status === 503
  }, 15_000)
  t.equal(frozen.status, 503, 'a frozen broker reads down')
  t.match(JSON.parse(frozen.text).components.kafka, { status: 'down', reason: /^(timeout|unreachable)$/ })
  t.notMatch(frozen.text, /127\.0\.0\.1|:\d{4,5}\b|ECONN|Broker|connected/, `no address or client message in /health: ${frozen.text}`)
  process.kill(broker.pid, 'SIGCONT')
  t.ok(await waitUntil(async () => (await fetch(`${service.base}/health`)).status === 200, 30_000), 'up again once the broker answers')

  service.server.child.kill('SIGTERM')
  t.equal(await service.server.exited, 0, 'exits 0 on SIGTERM')
})

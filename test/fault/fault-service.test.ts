import t from 'tap'
import { dynaliteProcess } from '../helper.js'
import { brokers, noBroker, producer } from '../kafka-helper.js'
import { exactlyOnce, N, midStream, RESUME_LIMIT_MS, resumeTime, scenario, settle, startService } from '../fault-helper.js'

// The service process stopped in the middle of a stream (killed, or asked to stop) and started again,
// while readings keep coming through the broker into a DynamoDB of its own (a dynalite process).
for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
  t.test(`${signal} mid-stream, then a restart: no reading lost or duplicated, and a new one is stored within ${RESUME_LIMIT_MS[signal] / 1000} s`, { skip: noBroker }, async t => {
    const db = await dynaliteProcess(t)
    const { topic, device, env } = scenario(signal.toLowerCase(), db.endpoint, brokers!)
    const p = await producer(t)
    const first = await startService(t, env)
    const { stream, served, expected } = await midStream(p, topic, device, first.base)
    t.ok(served > 100, `readings stored before the ${signal} (${served} served)`)
    t.ok(stream.published.length < N, `mid-stream: ${stream.published.length} of ${N} published`)

    first.server.child.kill(signal)
    const code = await first.server.exited
    if (signal === 'SIGTERM') t.equal(code, 0, `a SIGTERM drains and exits 0${code === 0 ? '' : `: ${first.server.output().slice(-1000)}`}`)

    const second = await startService(t, env)
    const resume = await resumeTime(p, topic, device, second.base, Date.now())
    await stream.done
    const f = await settle(second.base, device, [...expected(), resume.uuid])
    exactlyOnce(t, signal, f, { 'ready to a new reading stored': resume.ms })
    t.ok(resume.ms <= RESUME_LIMIT_MS[signal], `resumes within ${RESUME_LIMIT_MS[signal]} ms of being ready (took ${resume.ms} ms)`)

    second.server.child.kill('SIGTERM')
    t.equal(await second.server.exited, 0, 'the restarted service exits 0 on SIGTERM')
  })
}

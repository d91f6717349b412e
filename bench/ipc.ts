import { monitorEventLoopDelay } from 'node:perf_hooks'
import { fullGc } from './gc.js'

// What every process under load answers the runner over IPC: "gc" (a full collection, between
// two loads), "memory" (process.memoryUsage()), "loop-reset" and "loop" (how late the event loop
// ran its timers in between: the stalls a request waits behind).

const LOOP_TICK_MS = 10

export function answerRunner (): void {
  const loopDelay = monitorEventLoopDelay({ resolution: LOOP_TICK_MS })
  loopDelay.enable()
  process.on('message', (msg: { type: string }) => {
    if (msg.type === 'memory') process.send?.({ type: 'memory', ...process.memoryUsage() })
    if (msg.type === 'loop-reset') loopDelay.reset()
    if (msg.type === 'gc') {
      fullGc()
      process.send?.({ type: 'gc' })
    }
    if (msg.type === 'loop') {
      // the histogram holds the intervals between the timer's runs: the delay is what exceeds the tick
      const ms = (ns: number): number => Math.max(0, Math.round((ns - LOOP_TICK_MS * 1e6) / 1e4) / 100)
      process.send?.({ type: 'loop', p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) })
    }
  })
}

import { PerformanceObserver, constants, monitorEventLoopDelay } from 'node:perf_hooks'
import { fullGc } from './gc.js'

// What every process under load answers the runner over IPC: "gc" (a full collection, between
// two loads), "memory" (process.memoryUsage()), "loop-reset" and "loop" (how late the event loop
// ran its timers in between: the stalls a request waits behind; and the major GCs, the longest
// of those stalls, with their longest pause).

const LOOP_TICK_MS = 10

export function answerRunner (): void {
  const loopDelay = monitorEventLoopDelay({ resolution: LOOP_TICK_MS })
  loopDelay.enable()
  let majorGcs = 0
  let majorGcMaxMs = 0
  new PerformanceObserver(list => {
    for (const entry of list.getEntries()) {
      if ((entry as unknown as { detail?: { kind?: number } }).detail?.kind !== constants.NODE_PERFORMANCE_GC_MAJOR) continue
      majorGcs++
      majorGcMaxMs = Math.max(majorGcMaxMs, entry.duration)
    }
  }).observe({ entryTypes: ['gc'] })
  process.on('message', (msg: { type: string }) => {
    if (msg.type === 'memory') process.send?.({ type: 'memory', ...process.memoryUsage() })
    if (msg.type === 'loop-reset') {
      loopDelay.reset()
      majorGcs = 0
      majorGcMaxMs = 0
    }
    if (msg.type === 'gc') {
      fullGc()
      process.send?.({ type: 'gc' })
    }
    if (msg.type === 'loop') {
      // the histogram holds the intervals between the timer's runs: the delay is what exceeds the tick
      const ms = (ns: number): number => Math.max(0, Math.round((ns - LOOP_TICK_MS * 1e6) / 1e4) / 100)
      process.send?.({
        type: 'loop',
        p50: ms(loopDelay.percentile(50)),
        p99: ms(loopDelay.percentile(99)),
        max: ms(loopDelay.max),
        major_gcs: majorGcs,
        major_gc_max_ms: Math.round(majorGcMaxMs * 10) / 10
      })
    }
  })
}

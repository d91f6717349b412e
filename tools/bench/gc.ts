import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/**
 * A full garbage collection of this process, for the bench's processes between two loads (never
 * during one): the garbage one load leaves (the runner's bench data, a history load's bodies) is
 * then not collected inside the next load's measured window.
 */
export function fullGc (): void {
  if (gc === undefined) {
    setFlagsFromString('--expose-gc')
    gc = runInNewContext('gc') as () => void
  }
  gc()
}

let gc: (() => void) | undefined

/** In a process under load (server, floor, dynalite): a full GC when the runner sends "gc", then "gc" back. */
export function answerGc (): void {
  process.on('message', (msg: { type?: string }) => {
    if (msg.type !== 'gc') return
    fullGc()
    process.send?.({ type: 'gc' })
  })
}

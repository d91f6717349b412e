import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/**
 * A full garbage collection of this process, for the bench's processes between two loads (never
 * during one): the garbage one load leaves (the history ceiling's 41 KB bodies, the runner's bench
 * data) is then not collected inside the next load's measured window.
 */
export function fullGc (): void {
  if (gc === undefined) {
    setFlagsFromString('--expose-gc')
    gc = runInNewContext('gc') as () => void
  }
  gc()
}

let gc: (() => void) | undefined

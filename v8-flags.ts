import { setFlagsFromString } from 'node:v8'
import type { Config } from './config.js'

/**
 * V8 flags of the service's processes, set before anything else is loaded (server.ts and the
 * bench's server import this module first). See docs/adr/0003-no-allocation-site-pretenuring.md.
 *
 * `--no-allocation-site-pretenuring`: under a polling load V8 decides that Node's per-request
 * objects (IncomingMessage, ServerResponse and their stream state) outlive young collections and
 * allocates them straight into the old generation, where they die within milliseconds; the heap
 * then needs a mark-compact every ~2 s, with pauses of 5-20 ms that every request in flight
 * waits behind. Without pretenuring they die young, as they should.
 */
export const V8_FLAGS = ['--no-allocation-site-pretenuring'] as const

for (const flag of V8_FLAGS) setFlagsFromString(flag)

/**
 * Flags of the api role alone, set once the configuration is known (`setRoleFlags`, from
 * server.ts and the bench's server): the garbage collector reads them each time it decides.
 *
 * `--heap-growing-percent=10`: after each mark-compact the old generation may grow by 10 % before
 * the next one, not by V8's own factor (up to 2x for a small heap). When caches fill and many
 * history pages load at once the heap otherwise grows well past what it holds, and the pages
 * stay committed: ~11 MB of the api task's RSS under polling (140 against 152 MB). Not for
 * ingest: its heap turns over with every batch, and the extra mark-compacts cost a quarter more
 * CPU per reading (0.25 against 0.20 ms) for memory the ingest task has (ADR 0003).
 */
export const API_V8_FLAGS = ['--heap-growing-percent=10'] as const

export function setRoleFlags (role: Config['ROLE']): void {
  if (role === 'api') for (const flag of API_V8_FLAGS) setFlagsFromString(flag)
}

import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

// The api task's memory for the server under load. Node.js sizes V8's heap from the memory it
// can use (a cgroup's limit when there is one): in a 1 GiB Fargate task Node 26 takes a 536 MB
// heap limit and a small young generation, on a 24 GiB host an 8-times larger heap that it fills
// lazily. So the server runs in a memory cgroup of the task's size when this process may make one
// (Linux, cgroup v1 or v2, write access: root, or a delegated subtree); elsewhere on the host's
// memory, and the report says which.

export interface MemoryCgroup {
  dir: string
  limitMib: number
  /** argv that starts `command` inside the cgroup (the shell joins it, then execs: same pid, fds, env) */
  wrap: (command: string, args: string[]) => { command: string, args: string[] }
  remove: () => void
}

/** Where this process's memory cgroup is, and the file that limits it. */
export function ownCgroup (): { dir: string, limitFile: string } | undefined {
  let lines: string[]
  try {
    lines = readFileSync('/proc/self/cgroup', 'utf8').split('\n')
  } catch {
    return undefined
  }
  const v1 = lines.map(l => l.split(':')).find(([, controllers]) => controllers?.split(',').includes('memory'))
  if (v1 !== undefined && existsSync('/sys/fs/cgroup/memory')) {
    return { dir: join('/sys/fs/cgroup/memory', v1.slice(2).join(':')), limitFile: 'memory.limit_in_bytes' }
  }
  const v2 = lines.find(l => l.startsWith('0::'))
  if (v2 !== undefined && existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    return { dir: join('/sys/fs/cgroup', v2.slice(3)), limitFile: 'memory.max' }
  }
  return undefined
}

/** A new memory cgroup of `limitMib` under this process's own; undefined (and why) when none can be made. */
export function memoryCgroup (name: string, limitMib: number): MemoryCgroup | { reason: string } {
  if (process.platform !== 'linux') return { reason: `no cgroups on ${process.platform}` }
  const own = ownCgroup()
  if (own === undefined) return { reason: 'no memory cgroup controller found' }
  const dir = join(own.dir, name)
  try {
    mkdirSync(dir)
  } catch (err) {
    return { reason: `cannot create ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }
  }
  try {
    writeFileSync(join(dir, own.limitFile), String(limitMib * 1024 * 1024))
  } catch (err) {
    try { rmdirSync(dir) } catch {}
    return { reason: `cannot set ${own.limitFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }
  }
  const procs = join(dir, 'cgroup.procs')
  return {
    dir,
    limitMib,
    wrap: (command, args) => ({ command: '/bin/sh', args: ['-c', `echo $$ > '${procs}' && exec "$@"`, 'sh', command, ...args] }),
    remove: () => {
      // every process in it has exited by now; rmdir fails while one is left (then it stays)
      try { rmdirSync(dir) } catch {}
    }
  }
}

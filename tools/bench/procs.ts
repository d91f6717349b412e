import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, rmSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'

// Child processes of the bench: every one is spawned here, tracked, and stopped by its own pid.

export function log (msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`)
}

export interface Child {
  name: string
  proc: ChildProcess
  pid: number
  /** next IPC message of that type (rejects if the child exits first or after timeoutMs) */
  message: <T = Record<string, unknown>>(type: string, timeoutMs?: number) => Promise<T>
  send: (msg: Record<string, unknown>) => void
  /** recent output of the child (stdout and stderr), for error messages */
  output: () => string
  stop: (timeoutMs?: number) => Promise<void>
  exited: Promise<number | null>
}

const children = new Set<Child>()
/** other processes of the run (spawned without IPC), killed if the run ends early */
export const otherProcesses = new Set<ChildProcess>()

/**
 * Spawns `node <script> ...args` with an IPC channel. The child's stdout and stderr go to our
 * stderr, prefixed: stdout stays free for the report (`--json`).
 */
export interface SpawnOptions {
  /** the node binary (default: this one) */
  node?: string
  /** rewrites the command line, e.g. to start it inside a cgroup (the pid stays the node process's) */
  wrap?: (command: string, args: string[]) => { command: string, args: string[] }
}

export function spawnNode (name: string, script: string, args: string[], env: NodeJS.ProcessEnv, options: SpawnOptions = {}): Child {
  const plain = { command: options.node ?? process.execPath, args: [script, ...args] }
  const { command, args: argv } = options.wrap?.(plain.command, plain.args) ?? plain
  const proc = spawn(command, argv, { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
  if (proc.pid === undefined) throw new Error(`cannot spawn ${name}`)
  let out = ''
  const relay = (d: Buffer): void => {
    const text = d.toString()
    out = (out + text).slice(-20_000)
    for (const line of text.split('\n')) if (line.trim() !== '') process.stderr.write(`[${name}] ${line}\n`)
  }
  proc.stdout?.on('data', relay)
  proc.stderr?.on('data', relay)
  const exited = new Promise<number | null>(resolve => {
    proc.once('exit', code => { resolve(code) })
  })
  const messages: Array<Record<string, unknown>> = []
  const waiters: Array<{ type: string, resolve: (m: Record<string, unknown>) => void }> = []
  proc.on('message', (m: Record<string, unknown>) => {
    const i = waiters.findIndex(w => w.type === m.type)
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(m)
    else messages.push(m)
  })
  const child: Child = {
    name,
    proc,
    pid: proc.pid,
    output: () => out,
    exited,
    send (msg) {
      if (proc.connected) proc.send(msg)
    },
    async message<T> (type: string, timeoutMs = 60_000): Promise<T> {
      const i = messages.findIndex(m => m.type === type)
      if (i >= 0) return messages.splice(i, 1)[0] as T
      let timer: NodeJS.Timeout | undefined
      try {
        return await Promise.race([
          new Promise<T>(resolve => { waiters.push({ type, resolve: m => { resolve(m as T) } }) }),
          exited.then(code => { throw new Error(`${name} exited (code ${String(code)}) while waiting for "${type}"\n${out.slice(-3000)}`) }),
          new Promise<T>((_resolve, reject) => {
            timer = setTimeout(() => { reject(new Error(`${name}: no "${type}" within ${timeoutMs} ms\n${out.slice(-3000)}`)) }, timeoutMs)
          })
        ])
      } finally {
        clearTimeout(timer)
      }
    },
    async stop (timeoutMs = 15_000) {
      children.delete(child)
      if (proc.exitCode !== null || proc.signalCode !== null) return
      proc.kill('SIGTERM')
      const done = await Promise.race([exited.then(() => true), sleep(timeoutMs, undefined, { ref: false }).then(() => false)])
      if (!done) {
        proc.kill('SIGKILL')
        await exited
      }
    }
  }
  children.add(child)
  return child
}

/** Temporary directories of the run, removed at the end whatever happens (also on SIGINT). */
export const tempDirs = new Set<string>()

export function removeTempDirs (): void {
  for (const dir of tempDirs) {
    try { rmSync(dir, { recursive: true, force: true }) } catch {}
    tempDirs.delete(dir)
  }
}

/** Stops every child still running (on failure or interruption). */
export async function stopAll (): Promise<void> {
  await Promise.all([...children].map(async c => { await c.stop(5000) }))
}

export function killAllNow (): void {
  for (const c of children) {
    try { c.proc.kill('SIGKILL') } catch {}
  }
  for (const p of otherProcesses) {
    try { p.kill('SIGKILL') } catch {}
  }
}

// ---- /proc sampling (Linux): RSS and CPU time of a process, without touching it

const TICKS_PER_SECOND = 100

/** resident set size in bytes, or undefined off Linux */
export function rssBytes (pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? undefined : Number(m[1]) * 1024
  } catch {
    return undefined
  }
}

/**
 * user + system CPU seconds of a process, or undefined off Linux; `withChildren`: plus those of
 * its children that have ended (and been waited for)
 */
export function cpuSeconds (pid: number, withChildren = false): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // fields after the command name (which may hold spaces), numbered from 3
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const own = Number(fields[11]) + Number(fields[12])
    return (withChildren ? own + Number(fields[13]) + Number(fields[14]) : own) / TICKS_PER_SECOND
  } catch {
    return undefined
  }
}

/** busy CPU seconds of the whole machine (all cores), or undefined off Linux */
export function machineBusySeconds (): number | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait
    const t = line.trim().split(/\s+/).slice(1, 9).map(Number)
    return t.reduce((sum, x, i) => i === 3 || i === 4 ? sum : sum + x, 0) / TICKS_PER_SECOND
  } catch {
    return undefined
  }
}

/**
 * CPU use of some processes over a window, in % of one core, and `others`: what every other
 * process of the machine used meanwhile (on a shared machine, the noise of that figure).
 */
export class CpuMeter {
  private readonly start = new Map<string, number | undefined>()
  private readonly startedAt = performance.now()
  private readonly machineStart = machineBusySeconds()
  private readonly runnerStart = cpuSeconds(process.pid)
  /** `withChildren`: names of processes whose ended children count as theirs (the load's wrk) */
  constructor (private readonly pids: Record<string, number>, private readonly withChildren: ReadonlySet<string> = new Set()) {
    for (const [name, pid] of Object.entries(pids)) this.start.set(name, cpuSeconds(pid, withChildren.has(name)))
  }

  read (): Record<string, number> {
    const seconds = (performance.now() - this.startedAt) / 1000
    const out: Record<string, number> = {}
    let ours = 0
    for (const [name, pid] of Object.entries({ ...this.pids, runner: process.pid })) {
      const a = name === 'runner' ? this.runnerStart : this.start.get(name)
      const b = cpuSeconds(pid, this.withChildren.has(name))
      if (a !== undefined && b !== undefined && seconds > 0) {
        out[name] = Math.round((b - a) / seconds * 100)
        ours += b - a
      }
    }
    const machineEnd = machineBusySeconds()
    if (this.machineStart !== undefined && machineEnd !== undefined && seconds > 0) {
      out.others = Math.max(0, Math.round((machineEnd - this.machineStart - ours) / seconds * 100))
    }
    return out
  }
}

/** Samples the RSS of a process every `everyMs` until stopped; keeps the maximum. */
export class RssSampler {
  max = 0
  private readonly timer: NodeJS.Timeout
  constructor (private readonly pid: number, everyMs = 200) {
    this.sample()
    this.timer = setInterval(() => { this.sample() }, everyMs)
  }

  private sample (): void {
    const rss = rssBytes(this.pid)
    if (rss !== undefined && rss > this.max) this.max = rss
  }

  stop (): number {
    this.sample()
    clearInterval(this.timer)
    return this.max
  }
}

export async function waitExit (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  await once(child, 'exit')
}

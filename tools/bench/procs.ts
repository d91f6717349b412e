import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'

// Child processes of the bench: every one is spawned here, tracked, and stopped by its own pid.

export function log (msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`)
}

export interface Child {
  pid: number
  /** next IPC message of that type (rejects if the child exits first or after timeoutMs) */
  message: <T = Record<string, unknown>>(type: string, timeoutMs?: number) => Promise<T>
  send: (msg: Record<string, unknown>) => void
  stop: (timeoutMs?: number) => Promise<void>
}

export interface SpawnOptions {
  /** the node binary (default: this one) */
  node?: string
  /** rewrites the command line, e.g. to start it inside a cgroup (the pid stays the node process's) */
  wrap?: (command: string, args: string[]) => { command: string, args: string[] }
}

const children = new Set<{ child: Child, proc: ChildProcess }>()
/** processes spawned without IPC (the start-up runs), killed if the run ends early */
export const otherProcesses = new Set<ChildProcess>()
/** temporary directories of the run, removed at the end whatever happens */
export const tempDirs = new Set<string>()

/** `node <script> ...args` with an IPC channel; its output goes to our stderr, prefixed (stdout is the report's). */
export function spawnNode (name: string, script: string, args: string[], env: NodeJS.ProcessEnv, options: SpawnOptions = {}): Child {
  const plain = { command: options.node ?? process.execPath, args: [script, ...args] }
  const { command, args: argv } = options.wrap?.(plain.command, plain.args) ?? plain
  const proc = spawn(command, argv, { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
  if (proc.pid === undefined) throw new Error(`cannot spawn ${name}`)
  let out = ''
  const relay = (d: Buffer): void => {
    const text = d.toString()
    out = (out + text).slice(-5000)
    for (const line of text.split('\n')) if (line.trim() !== '') process.stderr.write(`[${name}] ${line}\n`)
  }
  proc.stdout?.on('data', relay)
  proc.stderr?.on('data', relay)
  const exited = new Promise<number | null>(resolve => { proc.once('exit', resolve) })
  const inbox: Array<Record<string, unknown>> = []
  const waiters: Array<{ type: string, resolve: (m: Record<string, unknown>) => void }> = []
  proc.on('message', (m: Record<string, unknown>) => {
    const i = waiters.findIndex(w => w.type === m.type)
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(m)
    else inbox.push(m)
  })
  const child: Child = {
    pid: proc.pid,
    send (msg) { if (proc.connected) proc.send(msg) },
    async message<T> (type: string, timeoutMs = 60_000): Promise<T> {
      const i = inbox.findIndex(m => m.type === type)
      if (i >= 0) return inbox.splice(i, 1)[0] as T
      let timer: NodeJS.Timeout | undefined
      try {
        return await Promise.race([
          new Promise<T>(resolve => { waiters.push({ type, resolve: m => { resolve(m as T) } }) }),
          exited.then(code => { throw new Error(`${name} exited (code ${String(code)}) while waiting for "${type}"\n${out}`) }),
          new Promise<T>((_resolve, reject) => {
            timer = setTimeout(() => { reject(new Error(`${name}: no "${type}" within ${timeoutMs} ms\n${out}`)) }, timeoutMs)
          })
        ])
      } finally {
        clearTimeout(timer)
      }
    },
    async stop (timeoutMs = 15_000) {
      children.delete(entry)
      if (proc.exitCode !== null || proc.signalCode !== null) return
      proc.kill('SIGTERM')
      if (!await Promise.race([exited.then(() => true), sleep(timeoutMs, false, { ref: false })])) {
        proc.kill('SIGKILL')
        await exited
      }
    }
  }
  const entry = { child, proc }
  children.add(entry)
  return child
}

/** On failure or interruption: stops every child still running, removes the temporary directories. */
export async function stopAll (): Promise<void> {
  await Promise.all([...children].map(async ({ child }) => { await child.stop(5000) }))
  removeTempDirs()
}

/** At exit, whatever happened: nothing of the run outlives it. */
export function killAllNow (): void {
  for (const p of [...[...children].map(c => c.proc), ...otherProcesses]) {
    try { p.kill('SIGKILL') } catch {}
  }
  removeTempDirs()
}

function removeTempDirs (): void {
  for (const dir of tempDirs) {
    try { rmSync(dir, { recursive: true, force: true }) } catch {}
    tempDirs.delete(dir)
  }
}

// ---- /proc sampling (Linux): RSS and CPU time of a process, without touching it

/** user + system CPU seconds of a process (Linux), or undefined */
export function cpuSeconds (pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // fields after the command name (which may hold spaces), numbered from 3: utime is 14, stime 15
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return undefined
  }
}

/** Samples the RSS of a process every 200 ms until stopped; keeps the maximum (MB). */
export class RssSampler {
  private max = 0
  private readonly timer = setInterval(() => { this.sample() }, 200)
  constructor (private readonly pid: number) {
    this.sample()
  }

  private sample (): void {
    try {
      const kb = Number(/VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'))?.[1] ?? 0)
      this.max = Math.max(this.max, kb / 1024)
    } catch {}
  }

  stop (): number {
    this.sample()
    clearInterval(this.timer)
    return Math.round(this.max * 10) / 10
  }
}

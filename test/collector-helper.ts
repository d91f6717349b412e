import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export const CLI = fileURLToPath(new URL('../collector/cli.js', import.meta.url))

export interface Run { code: number | null, stdout: string, stderr: string, ms: number }

/** The collector CLI with this process's environment minus the collector's own settings, plus `env`. */
export function runCli (args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<Run> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([key]) =>
    !key.startsWith('KAFKA_') && key !== 'DEVICE_NAME' && key !== 'COLLECT_INTERVAL_SECONDS'))
  const started = Date.now()
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, timeoutMs)
    child.on('error', reject)
    child.on('close', code => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr, ms: Date.now() - started })
    })
  })
}

import { execFileSync, spawnSync } from 'node:child_process'
import { accessSync, constants, mkdirSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'

// Which Node.js runs the service in the start-up and HTTP parts. The product ships as the container
// image, whose Node.js major is the Dockerfile's (`FROM node:<major>-…`); this machine's may be
// another. `image` (the default) measures the service on the image's major: its binary comes from
// the npm registry's node-<platform>-<arch> package, cached where tools/check-image-build.sh keeps
// it (${XDG_CACHE_HOME:-~/.cache}/sensors-api/node-<major>), fetched on first use. `this`: the
// Node.js running the bench.

export interface ServiceNode {
  path: string
  /** `node --version` of it */
  version: string
  /** for the report: "image (Node.js 26)" or "this (the bench's own)" */
  source: string
  /** why `image` was asked for and this Node.js runs instead */
  fallback?: string
  /** the image's runtime settings of the process (Dockerfile ENV, `RUNTIME_ENV`): what the service runs with */
  env: Record<string, string>
}

/**
 * The settings of the image's runtime stage that shape the process rather than the app (V8's heap,
 * glibc's malloc arenas): the service runs with them in the bench as in the image, whichever Node.js.
 */
export const RUNTIME_ENV = ['NODE_OPTIONS', 'MALLOC_ARENA_MAX'] as const

/** `ENV` settings of the Dockerfile's last stage (continuation lines joined; `KEY=value`, `KEY="value"`). */
export function runtimeEnv (dockerfile: string): Record<string, string> {
  const lines = readFileSync(dockerfile, 'utf8').replace(/\\\r?\n/g, ' ').split(/\r?\n/)
  const lastFrom = lines.findLastIndex(line => /^\s*FROM\s/i.test(line))
  const env: Record<string, string> = {}
  for (const line of lines.slice(lastFrom + 1)) {
    const m = /^\s*ENV\s+(.*)$/i.exec(line)
    if (m === null) continue
    for (const [, key, quoted, plain] of m[1]!.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(?:"([^"]*)"|(\S*))/g)) {
      if ((RUNTIME_ENV as readonly string[]).includes(key!)) env[key!] = quoted ?? plain ?? ''
    }
  }
  return env
}

const THIS = { path: process.execPath, version: process.version, source: 'this (the bench\'s own)' }

function imageNode (dockerfile: string, log: (msg: string) => void): { path: string, major: number } {
  const majors = new Set([...readFileSync(dockerfile, 'utf8').matchAll(/^\s*FROM\s+(?:--\S+\s+)*node:(\d+)\b/gim)].map(m => Number(m[1])))
  if (majors.size !== 1) throw new Error(`the Dockerfile's FROM lines name ${majors.size} Node.js majors, not one`)
  const major = [...majors][0]!
  const pkg = `node-${process.platform}-${process.arch}`
  const dir = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'sensors-api', `node-${major}`)
  const bin = join(dir, 'node_modules', pkg, 'bin', 'node')
  const executable = (): boolean => { try { accessSync(bin, constants.X_OK); return true } catch { return false } }
  if (!executable()) {
    log(`fetching Node.js ${major} (${pkg} from the npm registry) into ${dir}`)
    mkdirSync(dir, { recursive: true })
    try {
      execFileSync('npm', ['install', '--no-save', '--no-package-lock', '--ignore-scripts', '--no-audit', '--no-fund', `${pkg}@${major}`], {
        cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000
      })
    } catch (err) {
      const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim().split('\n').slice(-3).join(' ') ?? ''
      throw new Error(`npm install ${pkg}@${major} failed${stderr !== '' ? `: ${stderr}` : ''}`)
    }
    if (!executable()) throw new Error(`${pkg}@${major} has no bin/node`)
  }
  return { path: bin, major }
}

/** `image`, falling back to this Node.js (saying why) when the image's binary cannot be had, or `this`. */
export function resolveServiceNode (choice: 'image' | 'this', dockerfile: string, log: (msg: string) => void): ServiceNode {
  const env = runtimeEnv(dockerfile)
  if (choice === 'this') return { ...THIS, env }
  try {
    const { path, major } = imageNode(dockerfile, log)
    const version = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 30_000 }).stdout?.trim() ?? ''
    if (!/^v\d+\./.test(version)) throw new Error(`${path} --version answered "${version}"`)
    return { path, version, source: `image (Node.js ${major})`, env }
  } catch (err) {
    const fallback = (err as Error).message
    log(`the image's Node.js cannot be had (${fallback}): the service runs on this one, ${process.version}`)
    return { ...THIS, fallback, env }
  }
}

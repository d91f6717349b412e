import { execFileSync, spawnSync } from 'node:child_process'
import { accessSync, constants, mkdirSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'

// Which Node.js runs the service in the bench. The product ships as the container image, whose
// Node.js major is the Dockerfile's (`FROM node:<major>-…`); this machine's may be another (an
// end-of-life 20 here). `image` measures the service on the image's major: its binary comes from
// the npm registry's node-<platform>-<arch> package, cached where tools/check-image-build.sh
// keeps it (${XDG_CACHE_HOME:-~/.cache}/sensors-api/node-<major>), fetched on first use.

export interface ServiceNode {
  /** the binary */
  path: string
  /** `node --version` of it */
  version: string
  /** what it is, for the report: "image (Node.js 26)", "this (the bench's own)", or the path given */
  source: string
  /** why `image` was asked for and this Node.js runs instead */
  fallback?: string
}

/** The Node.js major of the Dockerfile's FROM lines (all stages must agree). */
export function imageMajor (dockerfile: string): number {
  const majors = new Set([...dockerfile.matchAll(/^\s*FROM\s+(?:--\S+\s+)*node:(\d+)\b/gim)].map(m => Number(m[1])))
  if (majors.size !== 1) throw new Error(`the Dockerfile's FROM lines name ${majors.size === 0 ? 'no node:<major> image' : `several Node.js majors (${[...majors].join(', ')})`}`)
  return [...majors][0]!
}

function versionOf (path: string): string {
  const out = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 30_000 })
  const version = out.stdout?.trim() ?? ''
  if (out.status !== 0 || !/^v\d+\./.test(version)) {
    throw new Error(`${path} --version: ${out.error?.message ?? (out.stderr?.trim() || `exit ${String(out.status)}`)}`)
  }
  return version
}

function executable (path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** The image's Node.js from the cache, fetched into it first if missing; throws if neither works. */
function imageNode (dockerfilePath: string, log: (msg: string) => void): { path: string, major: number } {
  const major = imageMajor(readFileSync(dockerfilePath, 'utf8'))
  if (process.platform !== 'linux' && process.platform !== 'darwin') throw new Error(`no node package for ${process.platform}`)
  const pkg = `node-${process.platform}-${process.arch}`
  const dir = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'sensors-api', `node-${major}`)
  const bin = join(dir, 'node_modules', pkg, 'bin', 'node')
  if (!executable(bin)) {
    log(`fetching Node.js ${major} (${pkg} from the npm registry) into ${dir}`)
    mkdirSync(dir, { recursive: true })
    try {
      execFileSync('npm', ['install', '--no-save', '--no-package-lock', '--ignore-scripts', '--no-audit', '--no-fund', `${pkg}@${major}`], {
        cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000
      })
    } catch (err) {
      const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim().split('\n').slice(-3).join(' ')
      throw new Error(`npm install ${pkg}@${major} failed${stderr !== undefined && stderr !== '' ? `: ${stderr}` : ''}`)
    }
    if (!executable(bin)) throw new Error(`${pkg}@${major} has no ${join('bin', 'node')}`)
  }
  return { path: bin, major }
}

/**
 * `--node=`: `image` (the default), `this` (the Node.js running the bench), or the path of a node
 * binary. `image` falls back to this Node.js, saying why, when its binary cannot be had (offline,
 * an unknown platform); a path that does not run is an error.
 */
export function resolveServiceNode (choice: string, dockerfilePath: string, log: (msg: string) => void): ServiceNode {
  if (choice === 'this') return { path: process.execPath, version: process.version, source: 'this (the bench\'s own)' }
  if (choice !== 'image') return { path: choice, version: versionOf(choice), source: choice }
  try {
    const { path, major } = imageNode(dockerfilePath, log)
    return { path, version: versionOf(path), source: `image (Node.js ${major})` }
  } catch (err) {
    const fallback = (err as Error).message
    log(`the image's Node.js cannot be had (${fallback}): the service runs on this one, ${process.version}`)
    return { path: process.execPath, version: process.version, source: 'this (the bench\'s own)', fallback }
  }
}

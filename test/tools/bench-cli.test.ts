import { execFile } from 'node:child_process'
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { packageRoot } from '../../paths.js'
import { tempDir } from '../helper.js'
import { ownCgroup } from '../../tools/bench/cgroup.js'
import { runtimeEnv } from '../../tools/bench/node.js'

// The bench's CLI: the choice of the service's Node.js (`--node`), through the start-up part only
// (a few seconds), whose report names the Node.js that ran the service; and the HTTP part in quick
// mode: its ratios to the ceilings and the floor, and where its server runs (a memory cgroup of
// the api task's size, or the host's memory). The run itself fails when a ceiling does not go
// through the same lifecycle as its real route (run.ts, sameLifecycle).

const cli = fileURLToPath(new URL('../../tools/bench/run.js', import.meta.url))

interface Run { code: number, stdout: string, stderr: string }

function bench (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise(resolve => {
    execFile(process.execPath, [cli, '--quick', '--only=startup', '--json', ...args], { env: { ...process.env, ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

interface Report {
  startup: { node: string, ready_ms: number }
  context: { node: string, service_node: { version: string, source: string, fallback?: string, env: Record<string, string> } }
}

function report (run: Run): Report {
  if (run.code !== 0) throw new Error(`the bench exited ${run.code}: ${run.stderr.slice(-2000)}`)
  return JSON.parse(run.stdout) as Report
}

const major = Number(/^FROM\s+node:(\d+)/m.exec(await readFile(join(packageRoot, 'Dockerfile'), 'utf8'))?.[1])
const pkg = `node-${process.platform}-${process.arch}`

t.test('the Dockerfile names one Node.js major', async t => {
  t.ok(major >= 20, `FROM node:${major}`)
})

t.test('the image\'s runtime settings: ENV of the last stage, NODE_OPTIONS and MALLOC_ARENA_MAX only', async t => {
  const dir = await tempDir(t, 'bench-dockerfile-')
  const file = join(dir, 'Dockerfile')
  await writeFile(file, [
    'FROM node:26 AS build',
    'ENV NODE_OPTIONS="--max-old-space-size=4096" MALLOC_ARENA_MAX=8',
    'FROM node:26-slim AS runtime',
    'ENV NODE_ENV=production \\',
    '    NODE_OPTIONS="--max-semi-space-size=4 --no-warnings" \\',
    '    PORT=3000',
    'env MALLOC_ARENA_MAX=2',
    'CMD ["node", "dist/server.js"]'
  ].join('\n'))
  t.same(runtimeEnv(file), { NODE_OPTIONS: '--max-semi-space-size=4 --no-warnings', MALLOC_ARENA_MAX: '2' })
  await writeFile(file, 'FROM node:26\nENV PORT=3000\n')
  t.same(runtimeEnv(file), {}, 'none set: none passed')
})

t.test('--node=this: the service starts on the bench\'s own Node.js', async t => {
  const r = report(await bench(['--node=this']))
  t.same(r.context.service_node.env, runtimeEnv(join(packageRoot, 'Dockerfile')), 'with the image\'s runtime settings')
  t.ok(r.context.service_node.env.NODE_OPTIONS !== undefined, 'the Dockerfile sets NODE_OPTIONS')
  t.equal(r.startup.node, process.version)
  t.equal(r.context.service_node.version, process.version)
  t.match(r.context.service_node.source, /^this/)
  t.ok(r.startup.ready_ms > 0)
  t.notMatch(JSON.stringify(r), tmpdir(), 'no machine path in the report')
})

t.test('--node=image (the default) takes the image\'s major from the cache', async t => {
  const cache = await tempDir(t, 'bench-node-cache-')
  // the cached binary is this Node.js under the image major's name: the lookup is what is tested
  const bin = join(cache, 'sensors-api', `node-${major}`, 'node_modules', pkg, 'bin')
  await mkdir(bin, { recursive: true })
  await symlink(process.execPath, join(bin, 'node'))
  const run = await bench([], { XDG_CACHE_HOME: cache, npm_config_registry: 'http://127.0.0.1:9/' })
  const r = report(run)
  t.equal(r.context.service_node.source, `image (Node.js ${major})`)
  t.equal(r.context.service_node.fallback, undefined)
  t.equal(r.startup.node, process.version)
  t.notMatch(run.stderr, /fetching/, 'nothing fetched: it was cached')
  t.notMatch(run.stdout, cache, 'the cache path is not in the report')
})

t.test('--node=image without the binary and without the registry: this Node.js, and why', async t => {
  const cache = await tempDir(t, 'bench-node-cache-')
  const run = await bench(['--node=image'], { XDG_CACHE_HOME: cache, npm_config_registry: 'http://127.0.0.1:9/', npm_config_fetch_retries: '0' })
  const r = report(run)
  t.match(run.stderr, new RegExp(`fetching Node.js ${major} \\(${pkg} from the npm registry\\)`))
  t.match(run.stderr, /the image's Node.js cannot be had \(npm install .* failed/)
  t.match(r.context.service_node.fallback, new RegExp(`npm install ${pkg}@${major} failed`))
  t.match(r.context.service_node.source, /^this/)
  t.equal(r.startup.node, process.version)
})

t.test('the HTTP part: the server in a memory cgroup of the api task\'s size when one can be made, else the host\'s memory and why', async t => {
  const taskMib = Number(/variable\s+"api_memory"\s*\{[^}]*?default\s*=\s*(\d+)/.exec(await readFile(join(packageRoot, 'deploy', 'variables.tf'), 'utf8'))?.[1])
  const cgroupsBefore = await benchCgroups()
  const run = await new Promise<Run>(resolve => {
    execFile(process.execPath, [cli, '--quick', '--only=http', '--json', '--node=this'], { timeout: 300_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
  t.equal(run.code, 0, run.stderr.slice(-2000))
  const r = JSON.parse(run.stdout) as {
    memory: { rss_mb_under_load: number, task_memory_mib: number | null, host_memory_reason?: string }
    http: Record<string, number>
    verdicts: Array<{ figure: string, value: number | null, verdict: string }>
  }
  t.ok(r.memory.rss_mb_under_load > 0)
  t.ok(r.http.status_floor_rps! > 0 && r.http.history_floor_rps! > 0, 'the floor answered both loads')
  t.ok(r.http.ceiling_rps! > 0 && r.http.history_ceiling_rps! > 0, 'the ceilings answered both loads')
  // each ratio is its round's real route over its reference (one round in quick mode)
  t.equal(r.http.status_vs_floor, Math.round(r.http.status_rps! / r.http.status_floor_rps! * 1000) / 1000)
  t.equal(r.http.history_vs_floor, Math.round(r.http.history_rps! / r.http.history_floor_rps! * 1000) / 1000)
  t.equal(r.http.status_vs_ceiling, Math.round(r.http.status_rps! / r.http.ceiling_rps! * 1000) / 1000)
  t.equal(r.http.status_scraped_vs_ceiling, Math.round(r.http.status_scraped_rps! / r.http.ceiling_rps! * 1000) / 1000, 'the status load with a scrape a second')
  for (const figure of ['http.status_vs_floor', 'http.history_vs_floor', 'http.status_vs_ceiling', 'http.status_scraped_vs_ceiling', 'http.history_p99_ms', 'memory.rss_mb_under_load']) {
    const row = r.verdicts.find(v => v.figure === figure)
    t.match(row?.verdict, /^(pass|MISS)$/, `${figure} judged`)
  }
  t.equal(r.verdicts.find(v => v.figure === 'startup.ready_ms')?.verdict, '-', 'a part not run is not judged')
  if (r.memory.task_memory_mib !== null) {
    // the bench checks that the server saw the limit (process.constrainedMemory()) or fails
    t.equal(r.memory.task_memory_mib, taskMib, `in a cgroup of api_memory's default, ${taskMib} MiB`)
    t.match(run.stderr, `server in a memory cgroup of ${taskMib} MiB`)
    t.same(await benchCgroups(), cgroupsBefore, 'the cgroup is removed at the end')
  } else {
    t.match(r.memory.host_memory_reason, /\S/, 'why not in a cgroup')
    t.match(run.stderr, /server on the host's memory: no cgroup/)
  }
})

/** the bench's cgroups under this process's memory cgroup (v1 or v2) */
async function benchCgroups (): Promise<string[]> {
  const own = ownCgroup()
  return own === undefined ? [] : (await readdir(own.dir).catch(() => [])).filter(name => name.startsWith('sensors-bench-'))
}

t.test('--node= anything but image or this: usage, no report', async t => {
  for (const arg of ['--node=', `--node=${join(tmpdir(), 'no-such-dir', 'node')}`]) {
    const run = await bench([arg])
    t.equal(run.code, 1, arg)
    t.equal(run.stdout, '')
    t.match(run.stderr, /--node: image or this/)
  }
})

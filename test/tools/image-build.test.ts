// Opt-in: CHECK_IMAGE_BUILD=1 runs tools/check-image-build.sh, which replays the Dockerfile's
// build stage outside Docker (npm ci with the librdkafka compile, build, prune) on the
// Dockerfile's Node.js major and starts the runtime stage's CMD. It takes 3-5 minutes.
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

function findRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'scripts', 'check-image-build.sh'))) return dir
    const up = dirname(dir)
    if (up === dir) return fileURLToPath(new URL('../../..', import.meta.url))
    dir = up
  }
}

const enabled = process.env.CHECK_IMAGE_BUILD === '1'
const TIMEOUT_MS = 30 * 60 * 1000
// Tell the tap runner too: its default per-file timeout is 30 s.
if (enabled) t.setTimeout(TIMEOUT_MS)

t.test('the Dockerfile builds and the image starts and stops cleanly (outside Docker)', {
  skip: enabled ? false : 'takes minutes (compiles librdkafka): set CHECK_IMAGE_BUILD=1 to run tools/check-image-build.sh',
  timeout: TIMEOUT_MS
}, async t => {
  const root = findRoot()
  // As root (CI), let the script apt-get the build stage's packages the machine lacks.
  const args = [join(root, 'scripts', 'check-image-build.sh'), ...(process.getuid?.() === 0 ? ['--apt'] : [])]
  const started = Date.now()
  const code = await new Promise<number | null>((resolve, reject) => {
    // The script's output goes to stderr so that it never mixes with this file's TAP stream.
    const child = spawn('bash', args, { cwd: root, stdio: ['ignore', 2, 2] })
    child.on('error', reject)
    child.on('exit', resolve)
  })
  t.equal(code, 0, `tools/check-image-build.sh exited ${String(code)} after ${Math.round((Date.now() - started) / 1000)}s`)
})

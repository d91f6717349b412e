// Preload that CPU-profiles a process until it exits, for the bench's servers:
//   npm run bench -- --only=http --set NODE_OPTIONS=--import=$PWD/build/tools/bench/cpu-profile.js --set CPU_PROFILE_DIR=/tmp/prof
//   node build/tools/bench/profile-summary.js /tmp/prof/*.cpuprofile
// (`--cpu-prof` itself is not allowed in NODE_OPTIONS on Node 20.) The in-process inspector
// session answers synchronously, so the profile is written from the 'exit' event.
import { Session } from 'node:inspector'
import { mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const dir = process.env.CPU_PROFILE_DIR ?? join(tmpdir(), 'sensors-bench-profiles')
const session = new Session()
session.connect()
session.post('Profiler.enable')
session.post('Profiler.start')
process.on('exit', () => {
  session.post('Profiler.stop', (err, result) => {
    if (err !== null) return
    mkdirSync(dir, { recursive: true })
    const file = join(dir, `${process.argv[1]?.split('/').at(-1)?.replace(/\.js$/, '') ?? 'node'}-${process.pid}.cpuprofile`)
    writeFileSync(file, JSON.stringify(result.profile))
    process.stderr.write(`cpu profile: ${file}\n`)
  })
})

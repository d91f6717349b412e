#!/usr/bin/env node
// Schemathesis over the service's own OpenAPI document, as CI runs it (`.ci/run`, after the tests):
// starts `node dist/server.js` (built first if dist/ is missing) on a free port with the embedded
// DynamoDB in a temp dir and this host's collector publishing as `pc1` every second, so
// `/devices/pc1` and `/devices/pc1/status` answer 200; waits for the status, runs schemathesis
// against /docs/json, stops the service. Exits with schemathesis's code (non-zero on any failed
// check: 5xx, schema violation…), or 1 when the service does not come up or dies meanwhile.
//
//   node tools/schemathesis.mjs [extra schemathesis args]
//
// Environment: SCHEMATHESIS_MAX_EXAMPLES (default 50, per operation), SCHEMATHESIS_PYTHON (the Python
// whose pip installed schemathesis; default `python3`), SCHEMATHESIS_SEED, SCHEMATHESIS_REPORT_DIR (write a JUnit report there).
//
// Checks: all of them. None is excluded (if one ever has to be, list it in EXCLUDED with the reason);
// what a check allows per operation, where the document cannot express a rule, is in
// tools/schemathesis.toml with the reason.

import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { freePort } from './kafka-broker.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const say = (msg) => console.error(`[schemathesis] ${msg}`)

/** check name -> why it is not run (empty: every check runs) */
const EXCLUDED = {}

const maxExamples = process.env.SCHEMATHESIS_MAX_EXAMPLES || '50'
const python = process.env.SCHEMATHESIS_PYTHON || 'python3'

async function main () {
  if (!fs.existsSync(path.join(root, 'dist', 'server.js'))) {
    say('dist/server.js missing: building…')
    const built = spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' })
    if (built.status !== 0) return built.status || 1
  }

  const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sensors-schemathesis-'))
  const reportDir = process.env.SCHEMATHESIS_REPORT_DIR
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  // The service sees only what is set here: no Kafka, no AWS, no settings of the caller's shell.
  const env = { PATH: process.env.PATH, HOME: process.env.HOME }
  Object.assign(env, {
    PORT: String(port),
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    COLLECTOR: 'on',
    DEVICE_NAME: 'pc1',
    COLLECT_INTERVAL_SECONDS: '1',
    LOG_LEVEL: 'warn',
    // thousands of requests from one address: the default limit would answer most with 429
    RATE_LIMIT_PER_MINUTE: '0'
  })
  let out = ''
  const server = spawn(process.execPath, [path.join(root, 'dist', 'server.js')], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  for (const stream of [server.stdout, server.stderr]) stream.on('data', (d) => { out = (out + d.toString()).slice(-20_000) })
  const state = { exit: null }
  const exited = new Promise((resolve) => server.on('exit', (code, signal) => { state.exit = { code, signal }; resolve() }))
  const stop = async () => {
    if (state.exit !== null) return
    server.kill('SIGTERM')
    const late = setTimeout(() => server.kill('SIGKILL'), 15_000)
    await exited
    clearTimeout(late)
  }
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => { server.kill('SIGKILL'); process.exit(signal === 'SIGINT' ? 130 : 143) })
  }

  try {
    say(`service on ${base} (data in ${dataDir}); waiting for /devices/pc1/status…`)
    const until = Date.now() + 60_000
    let ready = false
    while (!ready && Date.now() < until && state.exit === null) {
      ready = await fetch(`${base}/devices/pc1/status`).then((r) => r.status === 200, () => false)
      if (!ready) await sleep(250)
    }
    if (!ready) {
      say(`the service did not answer 200 on /devices/pc1/status within 60 s; its output:\n${out}`)
      return 1
    }

    const excluded = Object.keys(EXCLUDED)
    for (const [check, why] of Object.entries(EXCLUDED)) say(`check excluded: ${check}: ${why}`)
    const args = [
      '-m', 'schemathesis.cli',
      '--config-file', path.join(root, 'tools', 'schemathesis.toml'),
      'run', `${base}/docs/json`,
      '--url', base,
      '--checks', 'all',
      ...(excluded.length > 0 ? ['--exclude-checks', excluded.join(',')] : []),
      '--max-examples', maxExamples,
      '--workers', '1',
      '--request-timeout', '10',
      '--suppress-health-check', 'too_slow',
      // fixed by default so that a CI failure can be replayed (the coverage phase is deterministic anyway)
      '--seed', process.env.SCHEMATHESIS_SEED || '20261202',
      '--generation-database', 'none',
      ...(reportDir ? ['--report', 'junit', '--report-dir', reportDir] : []),
      ...process.argv.slice(2)
    ]
    say(`${python} ${args.join(' ')}`)
    const started = Date.now()
    const code = await new Promise((resolve) => {
      const st = spawn(python, args, { cwd: dataDir, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, NO_COLOR: '1' } })
      st.on('error', (err) => { say(`cannot run ${python}: ${err.message}`); resolve(127) })
      st.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)))
    })
    say(`schemathesis exited with ${code} after ${((Date.now() - started) / 1000).toFixed(1)} s`)
    if (state.exit !== null) {
      say(`the service exited during the run (${JSON.stringify(state.exit)}); its output:\n${out}`)
      return 1
    }
    return code
  } finally {
    await stop()
    if (out.trim() !== '') say(`service output (warnings and errors):\n${out.slice(-4000)}`)
    await fsp.rm(dataDir, { recursive: true, force: true }).catch(() => {})
  }
}

process.exit(await main())

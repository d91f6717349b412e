#!/usr/bin/env node
// `npm test`: build, start a real Kafka broker, run the compiled tap tests, stop the broker.
//
//   npm test                               all of build/test/**/*.test.js
//   npm test -- build/test/foo.test.js     one file (test/foo.test.ts is mapped to it too)
//   npm test -- test/prediction/            the compiled tests of a folder of test/
//   npm test -- --grep=foo                 other args are passed to tap as they are
//
// Environment:
//   SKIP_BUILD=1          skip `npm run build:tools` (tests must already be compiled into build/)
//   KAFKA_BROKERS=h:p     use that broker instead of starting one (tests cannot restart it)
//   KAFKA_KEEP_DATA=1     keep the broker's temporary data dir (it is also kept when tests fail)
//   TAP_JOBS=n            test files run in parallel (default 2)
//
// Contract with the tests (environment of every test process):
//   KAFKA_BROKERS               "127.0.0.1:<port>" of a real single-node Kafka 4 (KRaft) broker,
//                               on free ports (never 9092, so `npm run kafka` can run alongside);
//                               auto.create.topics.enable=true, 3 partitions, replication factor 1.
//   KAFKA_TEST_DATA_DIR         the broker's data dir        } only when this runner started the
//   KAFKA_TEST_CONTROLLER_PORT  its KRaft controller port    } broker: a test may then stop and
//   KAFKA_TEST_OWNER_PID        this runner's pid            } restart it ("broker restarted while
//                                                              the service runs").
//   To stop/restart it, import the helpers from tools/kafka-broker.mjs (from build/test/kafka/x.test.js:
//   `await import(new URL('../../../tools/kafka-broker.mjs', import.meta.url).href)`):
//     stopTestBroker()                  stops it (SIGTERM; data kept)
//     startTestBroker()                 starts it again, same ports and data dir; resolves when it
//                                       serves requests
//     restartTestBroker({ downMs })     both, with an optional pause
//   The restarted broker belongs to this runner, not to the test process: it survives the test
//   and is stopped here at the end. Other test files may run in parallel (TAP_JOBS) and see the
//   outage; a test that restarts the broker should tolerate that or be run alone.
//   Skip such a test when testBrokerFromEnv() returns null (external KAFKA_BROKERS).
//
// The broker is always stopped at the end, also when tests fail or on SIGINT/SIGTERM; the exit
// code is tap's.

import { spawn } from 'node:child_process'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ensureKafkaJars, freePorts, startBroker, stopBrokerAt } from './kafka-broker.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const say = (msg) => console.error(`[test] ${msg}`)

let broker = null
let dataDir = null
let child = null
let interrupted = null

let cleaning = null
function cleanup (keepData) {
  cleaning ??= doCleanup(keepData)
  return cleaning
}

async function doCleanup (keepData) {
  if (dataDir) {
    try {
      if (broker) await broker.stop()
      else await stopBrokerAt(dataDir) // interrupted while it was starting
    } catch (err) {
      say(`could not stop Kafka cleanly: ${err.message}`)
    }
    if (keepData || process.env.KAFKA_KEEP_DATA) {
      say(`Kafka data and logs kept in ${dataDir}`)
    } else {
      await fsp.rm(dataDir, { recursive: true, force: true }).catch(() => {})
    }
  }
}

function onSignal (signal) {
  if (interrupted) return
  interrupted = signal
  say(`${signal}: stopping…`)
  if (child && child.exitCode === null) {
    try { child.kill(signal) } catch {}
  } else {
    // not in the tap phase: stop the broker and leave now
    cleanup(false).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
  }
}
process.on('SIGINT', () => onSignal('SIGINT'))
process.on('SIGTERM', () => onSignal('SIGTERM'))

function runChild (cmd, args, opts = {}, onStdout = null) {
  return new Promise((resolve, reject) => {
    child = spawn(cmd, args, { cwd: root, stdio: onStdout ? ['inherit', 'pipe', 'inherit'] : 'inherit', ...opts })
    if (onStdout) {
      child.stdout.on('data', (chunk) => { process.stdout.write(chunk); onStdout(chunk.toString()) })
    }
    child.on('error', reject)
    child.on('exit', (code, signal) => resolve(code ?? (signal === 'SIGINT' ? 130 : 1)))
  })
}

// tap's closing summary ("# { total: 9, pass: 8, fail: 1, skip: 0 }") as the plain
// "N passed, N failed" line that CI reads.
function summaryScanner () {
  let tail = ''
  let summary = null
  return {
    scan (text) {
      tail = (tail + text).slice(-4096)
      const matches = [...tail.matchAll(/^# \{ total: (\d+)([^}]*)\}/gm)]
      const last = matches[matches.length - 1]
      if (last) {
        const count = (name) => Number(new RegExp(`${name}: (\\d+)`).exec(last[2])?.[1] ?? 0)
        summary = { pass: count('pass'), fail: count('fail'), skip: count('skip') + count('todo') }
      }
    },
    line () {
      if (!summary) return null
      return `${summary.pass} passed, ${summary.fail} failed${summary.skip ? `, ${summary.skip} skipped` : ''}`
    }
  }
}

function npmCommand () {
  const execPath = process.env.npm_execpath
  if (execPath && /\.[cm]?js$/.test(execPath)) return [process.execPath, [execPath]]
  return ['npm', []]
}

function listTests (dir) {
  if (!fs.existsSync(dir)) return []
  return fs.readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.test.js'))
    .map((f) => path.relative(root, path.join(dir, f)))
    .sort()
}

// `test/foo.test.ts` -> `build/test/foo.test.js` (the tests run compiled); a folder of test/
// (`test/prediction/`) -> its compiled tests, not the .ts sources tap would otherwise run
function mapArg (arg) {
  if (arg.startsWith('-')) return [arg]
  const m = /^(?:\.\/)?(test\/.+)\.([cm]?)ts$/.exec(arg)
  if (m) return [`build/${m[1]}.${m[2]}js`]
  const folder = /^(?:\.\/)?(test(?:\/.*?)?)\/?$/.exec(arg)
  if (folder && fs.statSync(path.resolve(root, arg), { throwIfNoEntry: false })?.isDirectory()) {
    const compiled = listTests(path.join(root, 'build', folder[1]))
    if (compiled.length > 0) return compiled
  }
  return [arg]
}

function isFileArg (arg) {
  return !arg.startsWith('-') && (/\.[cm]?js$/.test(arg) || fs.existsSync(path.resolve(root, arg)))
}

async function main () {
  const started = Date.now()
  if (!process.env.SKIP_BUILD) {
    say('building…')
    const [npm, pre] = npmCommand()
    const code = await runChild(npm, [...pre, 'run', 'build:tools', '--silent'])
    child = null
    if (interrupted) return interrupted === 'SIGINT' ? 130 : 143
    if (code !== 0) {
      say(`build failed (exit ${code})`)
      return code || 1
    }
  } else {
    say('SKIP_BUILD set: using the compiled tests in build/')
  }

  const env = { ...process.env }
  if (process.env.KAFKA_BROKERS) {
    say(`using KAFKA_BROKERS=${process.env.KAFKA_BROKERS} (not starting a broker)`)
  } else {
    say('starting Kafka…')
    const t0 = Date.now()
    const libs = await ensureKafkaJars({ log: say })
    const [port, controllerPort] = await freePorts(2)
    dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sensors-api-test-kafka-'))
    broker = await startBroker({ port, controllerPort, dataDir, libs, log: say })
    if (interrupted) return interrupted === 'SIGINT' ? 130 : 143
    say(`Kafka ready on ${broker.brokers} in ${((Date.now() - t0) / 1000).toFixed(1)} s (logs: ${broker.logFile})`)
    Object.assign(env, {
      KAFKA_BROKERS: broker.brokers,
      KAFKA_TEST_DATA_DIR: dataDir,
      KAFKA_TEST_CONTROLLER_PORT: String(controllerPort),
      KAFKA_TEST_OWNER_PID: String(process.pid)
    })
  }

  const extra = process.argv.slice(2).flatMap(mapArg)
  const files = extra.some(isFileArg) ? [] : listTests(path.join(root, 'build', 'test'))
  if (!extra.some(isFileArg) && files.length === 0) {
    say('no compiled tests found in build/test (did the build run?)')
    return 1
  }
  const tap = path.join(root, 'node_modules', '.bin', 'tap')
  const args = [
    // Coverage of the service's code (source-mapped to the .ts files), printed as a summary; the
    // tools, the tests and dependencies are not counted. COVERAGE=0 turns it off.
    ...(process.env.COVERAGE === '0'
      ? ['--disable-coverage', '--allow-empty-coverage']
      : ['--allow-incomplete-coverage', '--coverage-report=text-summary', '--coverage-report=text',
          '--coverage-exclude=build/tools/**', '--coverage-exclude=build/test/**', '--coverage-exclude=tools/**', '--coverage-exclude=test/**']),
    '--timeout=300',
    `--jobs=${process.env.TAP_JOBS || 2}`,
    ...extra,
    ...files
  ]
  say(`running tap (${files.length ? `${files.length} files` : extra.filter(isFileArg).join(' ')})…`)
  const summary = summaryScanner()
  const code = await runChild(tap, args, { env }, (text) => summary.scan(text))
  const closing = summary.line()
  if (closing) console.log(closing)
  child = null
  say(`tap exited with ${code} after ${((Date.now() - started) / 1000).toFixed(1)} s`)
  return interrupted ? (code || 130) : code
}

let exitCode = 1
try {
  exitCode = await main()
} catch (err) {
  if (interrupted) {
    exitCode = interrupted === 'SIGINT' ? 130 : 143
  } else {
    say(err.stack || err.message)
    exitCode = 1
  }
} finally {
  if (dataDir && !cleaning) say('stopping Kafka…')
  await cleanup(exitCode !== 0 && !interrupted)
}
process.exit(exitCode)

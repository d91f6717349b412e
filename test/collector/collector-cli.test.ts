import { spawn } from 'node:child_process'
import t from 'tap'
import { CLI, runCli } from '../collector-helper.js'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { PC_FIELDS, RASPBERRY_FIELDS, ReadingSchemaByKind, type DeviceKind } from '../../schemas/devices.js'

function lines (text: string): string[] {
  return text.split('\n').filter(line => line !== '')
}

t.test('--once --stdout prints one reading of this host that passes its schema', async t => {
  const run = await runCli(['--once', '--stdout', '--device', 'test-host'])
  t.equal(run.code, 0, run.stderr)
  t.equal(run.stderr, '', 'with --stdout the missing KAFKA_BROKERS is no news')
  const out = lines(run.stdout)
  t.equal(out.length, 1, 'exactly one JSON line')
  const reading = JSON.parse(out[0] ?? '') as Record<string, unknown>
  const kind = reading.kind as DeviceKind
  t.ok(kind === 'pc' || kind === 'raspberry', `kind is ${String(kind)}`)
  const check = TypeCompiler.Compile(ReadingSchemaByKind[kind])
  t.ok(check.Check(reading), JSON.stringify([...check.Errors(reading)].map(e => `${e.path} ${e.message}`)))
  t.equal(reading.device, 'test-host')
  t.ok(!Number.isNaN(Date.parse(reading.loading_datetime as string)), 'loading_datetime is a date')

  const fields: readonly string[] = kind === 'pc' ? PC_FIELDS : RASPBERRY_FIELDS
  // The GPU fields, and the fields issue 17 added, are absent where the host cannot tell.
  const optional = new Set(['ThrottleEventsCPU', 'ClockCPUMax', 'TemperatureCPUCritical'])
  const required = kind === 'pc' ? fields.filter(f => !f.includes('GPU') && !optional.has(f)) : fields
  for (const field of required) {
    t.ok(field in reading, `${field} is present (a value or null)`)
  }
  for (const field of fields) {
    const value = reading[field]
    // 0 throttle events is a real count
    if (value === undefined || value === null || field === 'ThrottleEventsCPU') continue
    t.not(value, 0, `${field} is a real figure, not an invented 0`)
  }
  if (kind === 'pc') {
    const load = reading.LoadCPUTotal
    t.type(load, 'number', 'the CPU load is measured')
    t.ok((load as number) >= 0 && (load as number) <= 100, `load ${String(load)} is a percentage`)
    const nulls = fields.filter(f => reading[f] === null)
    t.comment(`this host: ${JSON.stringify(reading)}; null: ${nulls.join(', ') || 'none'}`)
  }
})

t.test('without KAFKA_BROKERS nor --stdout it prints and says that nothing is published', async t => {
  const run = await runCli(['--once', '--device', 'test-host'])
  t.equal(run.code, 0)
  t.equal(lines(run.stdout).length, 1)
  t.match(run.stderr, /KAFKA_BROKERS is not set.*publishing nothing/)
})

t.test('the device id defaults to DEVICE_NAME', async t => {
  const run = await runCli(['--once', '--stdout'], { DEVICE_NAME: 'env-host' })
  t.equal(run.code, 0, run.stderr)
  t.equal((JSON.parse(run.stdout) as { device: string }).device, 'env-host')
})

t.test('--kind forces the sensor set', async t => {
  const run = await runCli(['--once', '--stdout', '--kind', 'raspberry', '--device', 'forced-pi'])
  t.equal(run.code, 0, run.stderr)
  const reading = JSON.parse(run.stdout) as Record<string, unknown>
  t.equal(reading.kind, 'raspberry')
  t.ok(TypeCompiler.Compile(ReadingSchemaByKind.raspberry).Check(reading), 'a Raspberry Pi reading, with nulls where this host has no such sensor')
})

t.test('--help prints the usage and exits 0', async t => {
  const run = await runCli(['--help'])
  t.equal(run.code, 0)
  t.match(run.stdout, /usage: npm run collect -- \[--device ID\]/)
  t.match(run.stdout, /--interval SECONDS/)
})

const badArgs: Array<[string[], RegExp]> = [
  [['--bogus'], /^collect: Unknown option '--bogus'$/],
  [['--device', 'bad id!'], /^collect: invalid --device "bad id!"/],
  [['--device'], /^collect: Option '--device <value>' argument missing$/],
  [['--kind', 'mac'], /^collect: invalid --kind "mac"/],
  [['--interval', '0'], /^collect: invalid --interval "0"/],
  [['--interval', 'soon'], /^collect: invalid --interval "soon"/],
  [['--topic', 'a topic'], /^collect: invalid --topic "a topic"/],
  [['--once', 'extra'], /^collect: Unexpected argument 'extra'$/]
]
for (const [args, message] of badArgs) {
  t.test(`${args.join(' ')} → exit 2 with a one-line reason and the usage`, async t => {
    const run = await runCli(args)
    t.equal(run.code, 2)
    const err = lines(run.stderr)
    t.match(err[0], message)
    t.match(err[1], /^usage: /)
    t.equal(err.length, 2, 'no stack trace')
    t.equal(run.stdout, '')
  })
}

t.test('a bad KAFKA_BROKERS stops it with the configuration error, exit 1', async t => {
  const run = await runCli(['--once'], { KAFKA_BROKERS: 'a, b' })
  t.equal(run.code, 1)
  t.match(run.stderr, /^Invalid configuration: KAFKA_BROKERS .*\n$/)
  t.equal(lines(run.stderr).length, 1)
})

t.test('SIGTERM stops the loop and exits 0', async t => {
  const child = spawn(process.execPath, [CLI, '--stdout', '--interval', '0.2', '--device', 'loop-host'], {
    env: Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('KAFKA_'))),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  // wait for two readings, then stop it
  await new Promise<void>(resolve => {
    child.stdout.on('data', () => { if (lines(stdout).length >= 2) resolve() })
  })
  const started = Date.now()
  child.kill('SIGTERM')
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  t.equal(code, 0)
  t.ok(Date.now() - started < 5000, 'promptly')
  const readings = lines(stdout).map(line => JSON.parse(line) as { uuid: string })
  t.ok(readings.length >= 2)
  t.equal(new Set(readings.map(r => r.uuid)).size, readings.length, 'each reading has its own uuid')
})

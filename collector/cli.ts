import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig, type Config } from '../config.js'
import { DEVICE_ID_PATTERN, type DeviceKind, type PcReading, type RaspberryReading } from '../schemas/devices.js'
import { createPublisher, type Publisher } from './publisher.js'
import { createSensorReader, type SensorReader } from './reader.js'

const USAGE = 'usage: npm run collect -- [--device ID] [--kind pc|raspberry] [--interval SECONDS] [--once] [--stdout] [--topic NAME]'

const HELP = `Reads this host's sensors and publishes one reading per interval to Kafka.

${USAGE}

  --device ID         device id (default: DEVICE_NAME, else the host name)
  --kind pc|raspberry sensor set (default: detected; "raspberry" on a Raspberry Pi)
  --interval SECONDS  time between readings (default: COLLECT_INTERVAL_SECONDS, 5)
  --once              take one reading, wait for its delivery, exit (non-zero when not delivered)
  --stdout            print each reading as one JSON line
  --topic NAME        Kafka topic (default: the device id)
  -h, --help          this text

Publishes when KAFKA_BROKERS is set (with KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* for managed clusters);
without it, readings are printed and nothing is published.
`

const TOPIC = /^[A-Za-z0-9._-]{1,249}$/
const DEVICE_ID = new RegExp(DEVICE_ID_PATTERN)

class UsageError extends Error {}

interface CliOptions {
  device?: string
  kind?: DeviceKind
  interval?: number
  once: boolean
  stdout: boolean
  topic?: string
  help: boolean
}

type Reading = PcReading | RaspberryReading

function parseCli (argv: string[]): CliOptions {
  let values
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        device: { type: 'string' },
        kind: { type: 'string' },
        interval: { type: 'string' },
        once: { type: 'boolean', default: false },
        stdout: { type: 'boolean', default: false },
        topic: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false }
      }
    }))
  } catch (err) {
    // Node's messages go on with advice about positionals; the first sentence is the problem.
    throw new UsageError((err as Error).message.split(/\.\s/)[0] ?? 'invalid arguments')
  }
  const { device, kind, interval, topic } = values
  if (device !== undefined && !DEVICE_ID.test(device)) {
    throw new UsageError(`invalid --device "${device}": use letters, digits, "_", "." or "-", 1 to 64 characters, starting with a letter or digit`)
  }
  if (kind !== undefined && kind !== 'pc' && kind !== 'raspberry') throw new UsageError(`invalid --kind "${kind}": use pc or raspberry`)
  const seconds = interval === undefined ? undefined : Number(interval)
  if (seconds !== undefined && !(Number.isFinite(seconds) && seconds > 0 && seconds <= 86_400)) {
    throw new UsageError(`invalid --interval "${interval ?? ''}": use a number of seconds above 0 and at most 86400`)
  }
  if (topic !== undefined && (!TOPIC.test(topic) || topic === '.' || topic === '..')) {
    throw new UsageError(`invalid --topic "${topic}": use letters, digits, ".", "_" or "-", up to 249 characters`)
  }
  return { device, kind, interval: seconds, topic, once: values.once, stdout: values.stdout, help: values.help }
}

function log (message: string): void {
  process.stderr.write(`collect: ${message}\n`)
}

/**
 * While a broker is down every reading fails the same way: say it once, then how many more did,
 * instead of a line per reading.
 */
function createFailureLog (windowMs = 60_000): { failed(message: string): void, delivered(): void, flush(): void } {
  let last: string | null = null
  let repeats = 0
  let since = 0
  const flush = (): void => {
    if (repeats > 0) log(`(the same for ${repeats} more reading${repeats === 1 ? '' : 's'})`)
    repeats = 0
  }
  return {
    failed (message) {
      if (message === last && Date.now() - since < windowMs) {
        repeats++
        return
      }
      flush()
      log(message)
      last = message
      since = Date.now()
    },
    delivered () {
      if (last !== null) {
        flush()
        log('delivering again')
      }
      last = null
    },
    flush
  }
}

function printReading (reading: Reading): void {
  process.stdout.write(`${JSON.stringify(reading)}\n`)
}

async function collectOnce (reader: SensorReader, emit: (reading: Reading) => Promise<void>): Promise<number> {
  try {
    await emit(await reader.read())
    return 0
  } catch (err) {
    log((err as Error).message)
    return 1
  }
}

/** Reads at a fixed rate (missed slots are skipped, not bunched); publishing never delays the next reading. */
function collectForever (reader: SensorReader, emit: (reading: Reading) => Promise<void>, intervalMs: number, publisher: Publisher | null): Promise<number> {
  return new Promise(resolve => {
    const deliveries = new Set<Promise<void>>()
    const failures = createFailureLog()
    let stopping = false
    let timer: NodeJS.Timeout | undefined
    let current: Promise<void> = Promise.resolve()
    let next = Date.now()

    const tick = async (): Promise<void> => {
      let reading: Reading
      try {
        reading = await reader.read()
      } catch (err) {
        log(`reading failed: ${(err as Error).message}`)
        return
      }
      const delivery = emit(reading).then(() => { failures.delivered() }, err => { failures.failed((err as Error).message) })
      deliveries.add(delivery)
      delivery.then(() => { deliveries.delete(delivery) }, () => {})
    }

    const schedule = (): void => {
      if (stopping) return
      const now = Date.now()
      while (next <= now) next += intervalMs
      timer = setTimeout(() => {
        current = tick().finally(schedule)
      }, next - now)
    }

    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        log(`${signal} again: exiting without waiting for deliveries`)
        process.exit(1)
      }
      stopping = true
      clearTimeout(timer)
      resolve(drain())
    }

    const drain = async (): Promise<number> => {
      await current
      // close() flushes what is queued and fails the rest; a publish still waiting for a connection is not waited for.
      await publisher?.close()
      await Promise.race([Promise.allSettled(deliveries), sleep(100)])
      failures.flush()
      return 0
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)

    current = tick().finally(schedule)
  })
}

async function main (argv: string[]): Promise<number> {
  let cli: CliOptions
  try {
    cli = parseCli(argv)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`collect: ${err.message}\n${USAGE}\n`)
    return 2
  }
  if (cli.help) {
    process.stdout.write(HELP)
    return 0
  }

  let config: Config
  try {
    config = loadConfig(process.env)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`${err.message}\n`)
    return 1
  }

  const device = cli.device ?? config.deviceName
  const topic = cli.topic ?? device
  const intervalSeconds = cli.interval ?? config.COLLECT_INTERVAL_SECONDS
  const publishing = config.brokers.length > 0
  const printing = cli.stdout || !publishing

  const reader = await createSensorReader({ device, kind: cli.kind })
  // A single reading may wait longer for the brokers; the loop retries with every reading instead.
  const publisher = publishing
    ? createPublisher(config, { clientId: `sensors-collector-${device}`, connectTimeoutMs: cli.once ? 8000 : 5000 })
    : null
  const emit = async (reading: Reading): Promise<void> => {
    if (printing) printReading(reading)
    await publisher?.publish(topic, device, reading)
  }

  if (!publishing && !cli.stdout) log('KAFKA_BROKERS is not set: printing readings, publishing nothing')
  if (cli.once) {
    const code = await collectOnce(reader, emit)
    await publisher?.close()
    return code
  }
  log(`reading ${reader.kind} sensors as "${device}" every ${intervalSeconds} s` +
    (publishing ? `, publishing to topic "${topic}" on ${config.brokers.join(',')}` : ''))
  return collectForever(reader, emit, intervalSeconds * 1000, publisher)
}

// A closed pipe (`| head`) ends the output; it is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0)
  throw err
})

main(process.argv.slice(2)).then(
  code => { process.exit(code) },
  (err: unknown) => {
    process.stderr.write(`collect: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exit(1)
  }
)

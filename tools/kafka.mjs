#!/usr/bin/env node
// `npm run kafka`: a local single-node Apache Kafka broker in the foreground.
//   KAFKA_PORT             (default 9092)  client listener on 127.0.0.1
//   KAFKA_CONTROLLER_PORT  (default 9093)  KRaft controller listener
//   KAFKA_DATA_DIR         (default ./data/kafka, git-ignored) — topics survive restarts
//   KAFKA_LOG_LEVEL        (default WARN)  broker log level (log file: <data dir>/broker.log)
// Ctrl-C / SIGTERM stops the broker.

import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ensureKafkaJars, startBroker } from './kafka-broker.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const port = Number(process.env.KAFKA_PORT || 9092)
const controllerPort = Number(process.env.KAFKA_CONTROLLER_PORT || 9093)
const dataDir = path.resolve(root, process.env.KAFKA_DATA_DIR || path.join('data', 'kafka'))
const log = (msg) => console.error(`[kafka] ${msg}`)

let broker = null
let stopping = false
async function shutdown (signal) {
  if (stopping) return
  stopping = true
  log(`${signal}: stopping the broker…`)
  try {
    if (broker) await broker.stop()
  } finally {
    process.exit(signal === 'SIGINT' ? 130 : 143)
  }
}
process.on('SIGINT', () => { shutdown('SIGINT') })
process.on('SIGTERM', () => { shutdown('SIGTERM') })

try {
  const libs = await ensureKafkaJars({ log })
  log(`starting on 127.0.0.1:${port} (controller ${controllerPort}), data in ${dataDir}…`)
  const b = await startBroker({ port, controllerPort, dataDir, libs, log, foreground: true, fastStartup: false })
  broker = b
  if (stopping) await b.stop()
  console.log(`Kafka broker ready on ${b.brokers}`)
  // stay in the foreground until the broker exits or we are told to stop
  const timer = setInterval(() => {
    try {
      process.kill(b.pid, 0)
    } catch {
      clearInterval(timer)
      if (!stopping) {
        log(`the broker exited unexpectedly; see ${b.logFile}`)
        process.exit(1)
      }
    }
  }, 1000)
} catch (err) {
  log(err.message)
  process.exit(1)
}

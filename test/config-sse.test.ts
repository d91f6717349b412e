import t from 'tap'
import { ConfigError, loadConfig } from '../config.js'

// SSE_HEARTBEAT_SECONDS and SSE_BUFFER_KB (issue 16): defaults, and bad values refused naming the variable.
t.test('the event streams\' settings: defaults 15 s and 256 KB, bad values refused with the variable named', async t => {
  const config = loadConfig({})
  t.equal(config.SSE_HEARTBEAT_SECONDS, 15)
  t.equal(config.SSE_BUFFER_KB, 256)
  t.equal(loadConfig({ SSE_HEARTBEAT_SECONDS: '0.5', SSE_BUFFER_KB: '16' }).SSE_HEARTBEAT_SECONDS, 0.5)
  for (const [key, value] of [['SSE_HEARTBEAT_SECONDS', '0'], ['SSE_HEARTBEAT_SECONDS', 'often'], ['SSE_HEARTBEAT_SECONDS', '7200'],
    ['SSE_BUFFER_KB', '0'], ['SSE_BUFFER_KB', 'lots'], ['SSE_BUFFER_KB', '100000']] as const) {
    let error: unknown
    try {
      loadConfig({ [key]: value })
    } catch (err) {
      error = err
    }
    t.ok(error instanceof ConfigError, `${key}=${value} is refused`)
    t.match((error as Error).message, new RegExp(`^Invalid configuration: ${key} must be .*\\(got "${value}"\\)$`))
  }
})

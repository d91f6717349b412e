import module from 'node:module'
// first: V8 flags that must hold before the service allocates anything much
import { setRoleFlags } from './v8-flags.js'
import type { Config } from './config.js'

// On-disk cache of compiled module code (Node >= 22.8; absent on Node 20, so feature-detected):
// later starts skip compiling the dependencies. The cache goes to the OS temp dir; when the operator
// sets NODE_COMPILE_CACHE, Node has already enabled it there (NODE_DISABLE_COMPILE_CACHE=1 turns it
// off). A cache that cannot be written only means a slower start: this never throws.
// Everything below is imported dynamically so that it is loaded with the cache on.
if (process.env.NODE_COMPILE_CACHE === undefined) {
  (module as { enableCompileCache?: () => unknown }).enableCompileCache?.()
}

const { ConfigError, loadConfig } = await import('./config.js')

let config: Config
try {
  config = loadConfig()
} catch (err) {
  // One clear line, no stack trace: the operator fixes the variable and starts again.
  process.stderr.write(`${err instanceof ConfigError ? err.message : String(err)}\n`)
  process.exit(1)
}
setRoleFlags(config.ROLE)

// The models too are checked before anything else loads: a missing or invalid file in MODELS_DIR is one line naming it.
const { createPredictor } = await import('./prediction/predictor.js')
let predictor: Awaited<ReturnType<typeof createPredictor>> | undefined
if (config.ROLE !== 'api') {
  try {
    predictor = await createPredictor({ modelsDir: config.modelsDir })
  } catch (err) {
    process.stderr.write(`${err instanceof Error && err.name === 'ModelFileError' ? err.message : String(err)}\n`)
    process.exit(1)
  }
}

// Loaded after the configuration is known to be good, so a bad value fails in milliseconds.
const [{ default: Fastify }, { default: closeWithGrace }, { default: app }, { serverOptions }] = await Promise.all([
  import('fastify'), import('close-with-grace'), import('./app.js'), import('./server-options.js')
])
const fastify = Fastify(serverOptions(config))

closeWithGrace({ delay: config.SHUTDOWN_TIMEOUT_MS }, async function ({ signal, err }) {
  if (err !== undefined) fastify.log.error({ err }, 'closing after an error')
  else fastify.log.info({ signal }, 'shutting down')
  await fastify.close()
})

try {
  await fastify.register(app, predictor !== undefined ? { config, predictor } : { config })
  await fastify.listen({ port: config.PORT, host: config.HOST })
} catch (err) {
  fastify.log.fatal({ err }, `could not start: ${(err as Error).message}`)
  await fastify.close().catch(() => {})
  process.exit(1)
}

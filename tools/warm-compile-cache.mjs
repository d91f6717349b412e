// Fills Node's on-disk compile cache (NODE_COMPILE_CACHE, Node >= 22.8) with the compiled code of
// every module the service can load, so that a new container starts as fast as a restarted one.
// The Dockerfile's build stage runs it as the runtime's user (Node keeps one cache per uid) after
// `npm prune`, with the same paths as the runtime image:
//   NODE_COMPILE_CACHE=.compile-cache node tools/warm-compile-cache.mjs
// It only imports: entry points that start something (server.js, the collector CLI) are skipped;
// modules the service imports lazily (dynalite, node-rdkafka, systeminformation) are imported here.
import module from 'node:module'
import { readdirSync } from 'node:fs'
import { join, relative } from 'node:path'
import { pathToFileURL, fileURLToPath } from 'node:url'

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..')
if (typeof module.flushCompileCache !== 'function' || module.getCompileCacheDir?.() === undefined) {
  console.log('warm-compile-cache: no compile cache here (Node >= 22.8 with NODE_COMPILE_CACHE set): nothing to do')
  process.exit(0)
}

const SKIP = new Set(['server.js', 'collector/cli.js'])
const SKIP_DIRS = new Set(['test', 'bench', 'scripts'])
const files = []
const walk = dir => {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    const rel = relative(join(root, 'dist'), path)
    if (entry.isDirectory()) { if (!SKIP_DIRS.has(rel)) walk(path) } else if (entry.name.endsWith('.js') && !SKIP.has(rel)) files.push(path)
  }
}
walk(join(root, 'dist'))
for (const file of files) await import(pathToFileURL(file).href)
for (const name of ['dynalite', 'node-rdkafka', 'systeminformation']) await import(name)
module.flushCompileCache()
console.log(`warm-compile-cache: ${files.length} modules of dist/ and their dependencies compiled into ${module.getCompileCacheDir()}`)

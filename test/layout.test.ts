import t from 'tap'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

// Issue 15 item 4: code that does not need Fastify lives in folders named for what it does and
// imports nothing from fastify, @fastify/* or fastify-plugin; only the plugins, the routes and the
// root-level wiring files do. Read from the sources (compiled to build/test/layout.test.js).
const root = fileURLToPath(new URL('../../', import.meta.url))
const DOMAIN = ['storage', 'ingest', 'kafka', 'prediction', 'read-model', 'http', 'collector', 'schemas', 'alerts']
const FASTIFY = /(?:from\s+|import\s*\(\s*)['"](?:fastify|fastify-plugin|@fastify\/[^'"]+)['"]/

async function sources (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(join(root, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...await sources(path))
    else if (entry.name.endsWith('.ts')) out.push(path)
  }
  return out
}

t.test('the domain folders import nothing from Fastify', async t => {
  for (const dir of DOMAIN) {
    const files = await sources(dir)
    t.ok(files.length > 0, `${dir}/ has sources`)
    for (const file of files) t.notMatch(await readFile(join(root, file), 'utf8'), FASTIFY, `${file} does not import Fastify`)
  }
  for (const file of ['config.ts', 'log.ts', 'paths.ts', 'v8-flags.ts']) {
    t.notMatch(await readFile(join(root, file), 'utf8'), FASTIFY, `${file} does not import Fastify`)
  }
})

t.test('the check sees an import of Fastify where there is one', async t => {
  t.match(await readFile(join(root, 'app.ts'), 'utf8'), FASTIFY, 'app.ts wires Fastify')
  t.match(await readFile(join(root, 'plugins/app/health.ts'), 'utf8'), FASTIFY)
})

import t from 'tap'
import { readFile } from 'node:fs/promises'
import { ConfigSchema } from '../config.js'

// Every setting the service reads is documented where operators look for it (STYLE.md 8).
t.test('every configuration key is in the README\'s table and in .env.example', async t => {
  const root = new URL('../../', import.meta.url)
  const readme = await readFile(new URL('README.md', root), 'utf8')
  const example = await readFile(new URL('.env.example', root), 'utf8')
  const keys = Object.keys(ConfigSchema.properties)
  t.ok(keys.length > 20, `${keys.length} keys`)
  for (const key of keys) {
    t.match(readme, new RegExp('\\| `' + key + '`|`' + key + '`(, `[A-Z_]+`)* \\|'), `README documents ${key}`)
    t.match(example, new RegExp('^# ' + key + '=', 'm'), `.env.example lists ${key}`)
  }
})

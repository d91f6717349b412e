// Self time of a .cpuprofile by package (node_modules/<pkg>), Node internals, and this project's
// files: `node build/tools/bench/profile-summary.js <file.cpuprofile> [top]`.
import { readFileSync } from 'node:fs'

interface Node { id: number, callFrame: { functionName: string, url: string } }
interface Profile { nodes: Node[], samples: number[], timeDeltas: number[] }

const [file, top = '25'] = process.argv.slice(2)
if (file === undefined) {
  process.stderr.write('usage: node build/tools/bench/profile-summary.js <file.cpuprofile> [top]\n')
  process.exit(2)
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
const byId = new Map(profile.nodes.map(n => [n.id, n]))
function bucket ({ functionName, url }: Node['callFrame']): string {
  if (functionName === '(garbage collector)' || functionName === '(idle)' || functionName === '(program)') return functionName
  const pkg = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url)?.[1]
  if (pkg !== undefined) return pkg
  if (url.startsWith('node:')) return 'node internals'
  if (url === '') return `native: ${functionName || '(anonymous)'}`
  return url.replace(/^.*\/dist\//, 'dist/')
}
const self = new Map<string, number>()
let total = 0
profile.samples.forEach((id, i) => {
  const us = profile.timeDeltas[i] ?? 0
  total += us
  const key = bucket(byId.get(id)!.callFrame)
  self.set(key, (self.get(key) ?? 0) + us)
})
const busy = total - (self.get('(idle)') ?? 0)
process.stdout.write(`${file}: ${Math.round(total / 1000)} ms sampled, ${Math.round(busy / 1000)} ms busy\n`)
for (const [key, us] of [...self].filter(([key]) => key !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, Number(top))) {
  process.stdout.write(`${String(Math.round(us / 1000)).padStart(8)} ms  ${(100 * us / busy).toFixed(1).padStart(5)} %  ${key}\n`)
}

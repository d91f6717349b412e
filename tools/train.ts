// npm run train -- <folder of CSV files> [--out models/]
// Trains one logistic regression per device kind found in the folder and writes <kind>.json plus EVALUATION.md.
import { resolve } from 'node:path'
import { modelsDir } from '../paths.js'
import { formatFiguresTable, trainFromFolder, TrainingDataError, writeTrainingOutputs } from '../prediction/train.js'
import { ModelFileError } from '../prediction/logistic.js'

const USAGE = 'usage: npm run train -- <folder of CSV files> [--out <dir>]'

class UsageError extends Error {}

function parseArgs (argv: readonly string[]): { folder: string, out: string } {
  let folder: string | undefined
  let out: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--out' || arg === '-o') {
      out = argv[++i]
      if (out === undefined || out === '') throw new UsageError('--out needs a directory')
    } else if (arg.startsWith('--out=')) {
      out = arg.slice('--out='.length)
    } else if (arg.startsWith('-')) {
      throw new UsageError(`unknown option ${arg}`)
    } else if (folder === undefined) {
      folder = arg
    } else {
      throw new UsageError(`unexpected argument ${arg}`)
    }
  }
  if (folder === undefined) throw new UsageError('missing the folder of CSV files')
  return { folder, out: out ?? modelsDir }
}

async function main (argv: readonly string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE)
    return
  }
  const { folder, out } = parseArgs(argv)
  // The nested cross-validation takes seconds: the CLI runs it, the tests that retrain need not.
  const reports = await trainFromFolder(resolve(folder), { nested: true })
  const command = `npm run train -- ${argv.join(' ')}`
  const written = await writeTrainingOutputs(reports.map(r => ({ ...r, folder })), resolve(out), command)
  console.log(formatFiguresTable(reports))
  for (const r of reports) {
    console.log(`${r.model.kind}: features ${r.model.features.join(', ')}; ${r.model.source.rows} rows from ${r.model.source.files.join(', ')}; L2 ${r.l2}`)
  }
  console.log(`wrote ${written.join(', ')}`)
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err)
  const known = err instanceof TrainingDataError || err instanceof ModelFileError || err instanceof UsageError
  // One line, so that scripts and humans see the cause at once.
  console.error(`train: ${(known ? message : `unexpected error: ${message}`).replace(/\s*\n\s*/g, ' ')}`)
  if (err instanceof UsageError) console.error(USAGE)
  process.exitCode = err instanceof UsageError ? 2 : 1
})

// Targets of the bench figures (issues 15 and 16) and their verdicts. Targets are read by people: the bench
// never fails on a missed target, only when the harness itself breaks.

interface Target { op: '>=' | '<='; value: number }

export const TARGETS: Record<string, Target> = {
  'http.status_vs_ceiling': { op: '>=', value: 0.8 },
  'http.status_vs_floor': { op: '>=', value: 0.5 },
  'http.status_p99_ms': { op: '<=', value: 10 },
  'http.history_vs_ceiling': { op: '>=', value: 0.5 },
  'http.history_vs_floor': { op: '>=', value: 0.5 },
  'http.history_p99_ms': { op: '<=', value: 10 },
  'ingest.vs_ceiling': { op: '>=', value: 0.7 },
  'memory.rss_mb_under_load': { op: '<=', value: 150 },
  'startup.ready_ms': { op: '<=', value: 1500 },
  // issue 16
  'fleet.page_p50_ms': { op: '<=', value: 50 },
  'stats.month_p50_ms': { op: '<=', value: 50 },
  'sse.delivery_p99_ms': { op: '<=', value: 2000 },
  // issue 19: the status ratio holds with a /metrics scrape a second
  'http.status_scraped_vs_ceiling': { op: '>=', value: 0.8 }
}

/** the table's rows, in this order; those without a target are the ratios' terms */
const FIGURES = [
  'http.ceiling_rps', 'http.status_floor_rps', 'http.status_rps', 'http.status_vs_ceiling', 'http.status_vs_floor', 'http.status_p99_ms', 'http.status_floor_p99_ms',
  'http.status_scraped_rps', 'http.status_scraped_vs_ceiling',
  'http.history_ceiling_rps', 'http.history_floor_rps', 'http.history_rps', 'http.history_vs_ceiling', 'http.history_vs_floor', 'http.history_p99_ms', 'http.history_floor_p99_ms',
  'http.history_gzip_rps', 'http.history_gzip_p99_ms',
  'ingest.ceiling_msgs_per_s', 'ingest.kafka_to_table_msgs_per_s', 'ingest.vs_ceiling',
  'memory.rss_mb_under_load', 'startup.ready_ms',
  'fleet.devices', 'fleet.page_p50_ms', 'stats.buckets', 'stats.month_p50_ms',
  'sse.subscribers', 'sse.delivery_p50_ms', 'sse.delivery_p99_ms', 'sse.rss_mb'
]

export interface Verdict { figure: string, value: number | null, target: string, verdict: 'pass' | 'MISS' | '-' }

function lookup (report: Record<string, unknown>, figure: string): number | null {
  let node: unknown = report
  for (const key of figure.split('.')) node = (node as Record<string, unknown> | undefined)?.[key]
  return typeof node === 'number' && Number.isFinite(node) ? node : null
}

export function verdicts (report: Record<string, unknown>): Verdict[] {
  return FIGURES.map(figure => {
    const value = lookup(report, figure)
    const t = TARGETS[figure]
    if (t === undefined) return { figure, value, target: '', verdict: '-' }
    const ok = t.op === '>=' ? value !== null && value >= t.value : value !== null && value <= t.value
    // '-': a part not run (--only)
    return { figure, value, target: `${t.op} ${t.value}`, verdict: value === null ? '-' : ok ? 'pass' : 'MISS' }
  })
}

function show (value: number | null): string {
  if (value === null) return 'n/a'
  if (Math.abs(value) < 10 && !Number.isInteger(value)) return value.toFixed(2)
  return Math.round(value).toLocaleString('en-US')
}

export function table (rows: Verdict[]): string {
  const cells = [['figure', 'value', 'target', 'verdict'], ...rows.map(r => [r.figure, show(r.value), r.target, r.verdict])]
  const widths = [0, 1, 2, 3].map(i => Math.max(...cells.map(c => c[i]!.length)))
  const line = (c: string[]): string => c.map((cell, i) => i === 1 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)).join('  ').trimEnd()
  return [line(cells[0]!), widths.map(w => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n')
}

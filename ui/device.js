import { STATE_WORDS, banner, firingAlerts, formatAge, formatNumber, getJson, liveStatuses, stateOf } from './common.js'

// The device view: its status and why, charts of every field from /stats (min–max band and
// average), the Raspberry Pi throttling flags over time, a CSV download, live updates.

const device = decodeURIComponent(location.pathname.split('/').pop() ?? '')
const RANGES = { '1h': 3600, '24h': 86400, '7d': 7 * 86400, '30d': 30 * 86400 }
const FLAGS = ['under_voltage', 'arm_frequency_capped', 'throttled', 'soft_temperature_limit']
const charts = new Map() // field -> uPlot
let chartsAt = 0

document.getElementById('device-name').textContent = device
document.title = `${device} · sensors-api`

function range () {
  const seconds = RANGES[new FormData(document.getElementById('ranges')).get('range')] ?? RANGES['24h']
  const to = new Date()
  return { from: new Date(to.getTime() - seconds * 1000).toISOString(), to: to.toISOString() }
}

// The model's own threshold, as the API reports it with the verdict; readings stored before it did have none.
function thresholdText (status) {
  return typeof status.threshold === 'number' && Number.isFinite(status.threshold)
    ? ` (threshold ${Number(status.threshold.toFixed(2))})`
    : ''
}

function showStatus (status) {
  const el = document.getElementById('status')
  const state = stateOf(status)
  const flags = status.throttled_flags ?? {}
  const now = FLAGS.filter(flag => flags[flag] === true)
  const why = status.stale
    ? `No reading for ${formatAge(status.age_seconds)}: the device is not reporting.`
    : status.source === 'hardware' || now.length > 0
      ? `The device itself reports throttling now: ${now.join(', ').replaceAll('_', ' ') || 'its throttled flags'}.`
      : `Predicted from its newest reading: probability ${formatNumber(status.probability, 3)} of being stressed${thresholdText(status)}.`
  const reasons = Array.isArray(status.reasons) ? status.reasons.filter(r => r !== null && typeof r === 'object') : []
  el.replaceChildren()
  const head = document.createElement('p')
  const badge = document.createElement('span')
  badge.className = `state ${state}`
  badge.dataset.state = state
  badge.textContent = STATE_WORDS[state]
  head.append(badge, ` ${status.msg} · ${status.kind === 'raspberry' ? 'Raspberry Pi' : 'PC'} · newest reading ${new Date(status.loading_datetime).toLocaleString()}`)
  const text = document.createElement('p')
  text.className = 'why'
  text.textContent = why + (reasons.length > 0 ? ' Main factors:' : '')
  el.append(head, text)
  if (reasons.length > 0) el.append(reasonList(reasons))
}

// One line per factor: the field, its value and its effect as the API words it (an effect may hold
// commas and parentheses of its own, so a line each, not a comma-separated sentence). Text only.
function reasonList (reasons) {
  const list = document.createElement('ul')
  list.className = 'reasons'
  for (const r of reasons) {
    const item = document.createElement('li')
    item.dataset.field = String(r.field)
    const value = typeof r.value === 'string' ? r.value : formatNumber(r.value)
    item.append(`${r.field} ${value}`)
    if (typeof r.effect === 'string' && r.effect !== '') {
      const effect = document.createElement('span')
      effect.className = 'effect'
      effect.textContent = ` (${r.effect})`
      item.append(effect)
    }
    list.append(item)
  }
  return list
}

function chartOf (field, buckets, width) {
  const x = buckets.map(b => Date.parse(b.start) / 1000)
  const avg = buckets.map(b => b.fields[field]?.avg ?? null)
  const min = buckets.map(b => b.fields[field]?.min ?? null)
  const max = buckets.map(b => b.fields[field]?.max ?? null)
  return {
    options: {
      width,
      height: 180,
      series: [
        {},
        { label: 'max', stroke: 'rgba(53,102,184,0.3)', width: 1 },
        { label: 'min', stroke: 'rgba(53,102,184,0.3)', width: 1 },
        { label: 'avg', stroke: '#3566b8', width: 2 }
      ],
      bands: [{ series: [1, 2], fill: 'rgba(53,102,184,0.15)' }],
      legend: { show: true }
    },
    data: [x, max, min, avg]
  }
}

async function loadCharts () {
  chartsAt = Date.now()
  const { from, to } = range()
  document.getElementById('csv').href = `/devices/${encodeURIComponent(device)}/export?format=csv&from=${from}&to=${to}`
  const stats = await getJson(`/devices/${encodeURIComponent(device)}/stats?from=${from}&to=${to}`)
  const fields = [...new Set(stats.buckets.flatMap(b => Object.keys(b.fields)))]
  const box = document.getElementById('charts')
  for (const [field, chart] of charts) if (!fields.includes(field)) { chart.destroy(); charts.delete(field) }
  box.replaceChildren(...fields.map(field => {
    const section = document.createElement('div')
    section.className = 'chart'
    section.dataset.chart = field
    const title = document.createElement('h3')
    title.textContent = `${field} (${stats.interval} buckets)`
    section.append(title)
    const { options, data } = chartOf(field, stats.buckets, 440)
    charts.get(field)?.destroy()
    charts.set(field, new uPlot({ ...options, title: undefined }, data, section))
    return section
  }))
  if (fields.length === 0) box.textContent = 'No readings in this range.'
  if (stats.kind === 'raspberry') await loadFlags(from, to)
}

async function loadFlags (from, to) {
  const readings = await getJson(`/devices/${encodeURIComponent(device)}?limit=1000&from=${from}&to=${to}`)
  const flagged = readings.filter(r => r.throttled_flags != null).reverse()
  const section = document.getElementById('flags')
  section.hidden = false
  const box = section.querySelector('[data-chart="throttled_flags"]')
  box.replaceChildren()
  if (flagged.length === 0) { box.textContent = 'No throttling report in this range.'; return }
  const x = flagged.map(r => Date.parse(r.loading_datetime) / 1000)
  const series = FLAGS.map((flag, i) => flagged.map(r => (r.throttled_flags[flag] ? i + 0.8 : i)))
  charts.get('throttled_flags')?.destroy()
  charts.set('throttled_flags', new uPlot({
    width: 900,
    height: 160,
    series: [{}, ...FLAGS.map((flag, i) => ({ label: flag, stroke: ['#b3261e', '#c77700', '#6a1b9a', '#00695c'][i], width: 2 }))],
    axes: [{}, { values: (_u, ticks) => ticks.map(() => '') }]
  }, [x, ...series], box))
}

async function loadStatus () {
  try {
    showStatus(await getJson(`/devices/${encodeURIComponent(device)}/status`))
    banner()
  } catch (err) {
    if (err.status === 404) document.getElementById('status').textContent = 'No readings from this device yet.'
    else banner(`The data shown is not current: ${err.message}. Retrying…`)
  }
}

document.getElementById('ranges').addEventListener('change', () => { loadCharts().catch(err => banner(`Charts could not be read: ${err.message}`)) })
liveStatuses(`/devices/${encodeURIComponent(device)}/events`, {
  onStatus (status) {
    showStatus(status)
    // the charts follow at most every 10 s
    if (Date.now() - chartsAt > 10_000) loadCharts().catch(() => {})
  },
  onState (up) {
    if (!up) banner('Live updates are interrupted: the status may not be current. Reconnecting…')
    else banner()
  }
})
firingAlerts(document.getElementById('alerts'), device)
await loadStatus()
await loadCharts().catch(err => banner(`Charts could not be read: ${err.message}`))

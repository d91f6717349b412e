import { STATE_WORDS, banner, firingAlerts, formatAge, formatNumber, getJson, liveStatuses, stateOf } from './common.js'

// The fleet view: counts, a table of every device sorted by risk, filters, live rows.
// Uses only the public API: /fleet, /fleet/events, /devices/{device}, /devices/{device}/stats.

const TEMPERATURE = { pc: 'TemperatureCPUPackage', raspberry: 'CPU_temp_celsius' }
const LOAD = { pc: 'LoadCPUTotal' }
/** Rows whose latest reading and last hour are fetched, and how many at once. */
const DETAILED_ROWS = 200
const DETAIL_CONCURRENCY = 6

const rows = document.getElementById('rows')
const filters = document.getElementById('filters')
const statuses = new Map() // device -> { status, receivedAt }
let live = false
let failedSince

function filter () {
  const form = new FormData(filters)
  return { state: form.get('state') || '', kind: form.get('kind') || '' }
}

function matches (status) {
  const { state, kind } = filter()
  return (state === '' || stateOf(status) === state) && (kind === '' || status.kind === kind)
}

function risk (a, b) {
  const hot = s => (s.stale || s.stressed ? 0 : 1)
  return hot(a) - hot(b) || b.probability - a.probability || (a.device < b.device ? -1 : a.device > b.device ? 1 : 0)
}

function cell (text, className) {
  const td = document.createElement('td')
  if (className) td.className = className
  td.textContent = text
  return td
}

function rowOf (status) {
  const tr = document.createElement('tr')
  tr.dataset.device = status.device
  const link = document.createElement('a')
  link.href = `/ui/devices/${encodeURIComponent(status.device)}`
  link.textContent = status.device
  const name = document.createElement('td')
  name.append(link)
  const state = document.createElement('td')
  const badge = document.createElement('span')
  state.append(badge)
  tr.append(name, cell(status.kind === 'raspberry' ? 'Raspberry Pi' : 'PC'), state, cell('', 'num probability'), cell('', 'num age'),
    cell('–', 'num temperature'), cell('–', 'num load'), cell('', 'spark'))
  fill(tr, status)
  return tr
}

function fill (tr, status) {
  const state = stateOf(status)
  tr.dataset.state = state
  const badge = tr.children[2].firstChild
  badge.className = `state ${state}`
  badge.textContent = STATE_WORDS[state]
  badge.title = status.msg
  tr.querySelector('.probability').textContent = formatNumber(status.probability, 3)
  tr.querySelector('.age').textContent = formatAge(ageOf(status.device))
}

function ageOf (device) {
  const entry = statuses.get(device)
  return entry === undefined ? NaN : entry.status.age_seconds + (Date.now() - entry.receivedAt) / 1000
}

function render () {
  const shown = [...statuses.values()].map(e => e.status).filter(matches).sort(risk)
  const existing = new Map([...rows.querySelectorAll('tr[data-device]')].map(tr => [tr.dataset.device, tr]))
  rows.replaceChildren(...shown.map(status => {
    const tr = existing.get(status.device)
    if (tr === undefined) return rowOf(status)
    fill(tr, status)
    return tr
  }))
  if (shown.length === 0) {
    const tr = document.createElement('tr')
    tr.className = 'empty'
    tr.append(cell('No device matches.'))
    tr.firstChild.colSpan = 8
    rows.append(tr)
  }
}

function showCounts (counts) {
  for (const key of ['total', 'ok', 'stressed', 'stale']) {
    document.querySelector(`[data-count="${key}"] .n`).textContent = String(counts[key] ?? '–')
  }
}

async function load () {
  const { state, kind } = filter()
  const query = new URLSearchParams({ limit: '1000' })
  if (kind !== '') query.set('kind', kind)
  document.getElementById('csv').href = `/fleet?${new URLSearchParams({ ...Object.fromEntries(query), ...(state ? { state } : {}), format: 'csv' })}`
  try {
    const fleet = await getJson(`/fleet?${query}`)
    statuses.clear()
    const now = Date.now()
    for (const status of fleet.devices) statuses.set(status.device, { status, receivedAt: now })
    showCounts(fleet.counts)
    failedSince = undefined
    if (live) banner()
    render()
    details([...statuses.values()].map(e => e.status).filter(matches).sort(risk).slice(0, DETAILED_ROWS))
  } catch (err) {
    failedSince ??= new Date()
    banner(`The data shown is not current: the fleet could not be read (${err.message}) since ${failedSince.toLocaleTimeString()}. Retrying…`)
    setTimeout(load, 5000)
  }
}

let countsTimer
function recount () {
  clearTimeout(countsTimer)
  countsTimer = setTimeout(async () => {
    const { kind } = filter()
    try {
      showCounts((await getJson(`/fleet?limit=1${kind ? `&kind=${kind}` : ''}`)).counts)
    } catch {}
  }, 500)
}

async function details (list) {
  let next = 0
  await Promise.all(Array.from({ length: DETAIL_CONCURRENCY }, async () => {
    while (next < list.length) await detail(list[next++])
  }))
}

async function detail (status) {
  const tr = rows.querySelector(`tr[data-device="${CSS.escape(status.device)}"]`)
  if (tr === null) return
  const temperature = TEMPERATURE[status.kind]
  const loadField = LOAD[status.kind]
  try {
    const [latest] = await getJson(`/devices/${encodeURIComponent(status.device)}?limit=1`)
    if (latest !== undefined) {
      tr.querySelector('.temperature').textContent = latest[temperature] == null ? '–' : `${formatNumber(latest[temperature])} °C`
      tr.querySelector('.load').textContent = loadField === undefined || latest[loadField] == null ? '–' : `${formatNumber(latest[loadField])} %`
    }
    const from = new Date(Date.now() - 3600_000).toISOString()
    const stats = await getJson(`/devices/${encodeURIComponent(status.device)}/stats?interval=1m&from=${from}`)
    tr.querySelector('.spark').replaceChildren(sparkline(stats.buckets.map(b => b.fields[temperature]?.avg).filter(v => typeof v === 'number')))
  } catch (err) {
    console.warn(`details of ${status.device}`, err.message)
  }
}

function sparkline (values) {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg')
  svg.setAttribute('class', 'spark')
  svg.setAttribute('viewBox', '0 0 120 24')
  svg.setAttribute('role', 'img')
  svg.setAttribute('aria-label', values.length > 0 ? `temperature over the last hour, ${formatNumber(Math.min(...values))} to ${formatNumber(Math.max(...values))} °C` : 'no readings in the last hour')
  if (values.length > 1) {
    const lo = Math.min(...values)
    const span = Math.max(...values) - lo || 1
    const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline')
    line.setAttribute('points', values.map((v, i) => `${(i / (values.length - 1)) * 118 + 1},${22 - ((v - lo) / span) * 20}`).join(' '))
    svg.append(line)
  }
  return svg
}

filters.addEventListener('change', () => { load() })
liveStatuses('/fleet/events', {
  onStatus (status) {
    const known = statuses.get(status.device)
    statuses.set(status.device, { status, receivedAt: Date.now() })
    render()
    recount()
    if (known === undefined || known.status.uuid !== status.uuid) detail(status)
  },
  onState (up) {
    live = up
    if (up && failedSince === undefined) banner()
    else if (!up) banner('Live updates are interrupted: the rows may not be current. Reconnecting…')
  }
})
// Ages move on between events.
setInterval(() => {
  for (const tr of rows.querySelectorAll('tr[data-device]')) tr.querySelector('.age').textContent = formatAge(ageOf(tr.dataset.device))
}, 1000)
load()
firingAlerts(document.getElementById('alerts'))

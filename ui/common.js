// Shared by the fleet and device pages: the service's own API, nothing else.

export const STATE_WORDS = { ok: 'OK', stressed: 'Stressed', stale: 'Not reporting' }

export function stateOf (status) {
  if (status.stale) return 'stale'
  return status.stressed ? 'stressed' : 'ok'
}

export async function getJson (url) {
  const res = await fetch(url, { headers: { accept: 'application/json' } })
  if (!res.ok) {
    const body = await res.json().catch(() => ({}))
    const err = new Error(body.message ?? `${res.status} ${res.statusText}`)
    err.status = res.status
    throw err
  }
  return await res.json()
}

/** Says, at the top of the page, that what is shown may not be current (and why), or clears it. */
export function banner (text) {
  const el = document.getElementById('banner')
  if (text === undefined) {
    el.hidden = true
    el.textContent = ''
  } else {
    el.hidden = false
    el.textContent = text
  }
}

export function formatAge (seconds) {
  if (!Number.isFinite(seconds)) return '–'
  if (seconds < 60) return `${Math.round(seconds)} s`
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h`
  return `${Math.round(seconds / 86400)} d`
}

export function formatNumber (value, digits = 1) {
  return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : '–'
}

/**
 * An EventSource that reports whether it is live: `onStatus(status)` for each status event,
 * `onState(live)` when the stream drops (the browser reconnects by itself) or comes back.
 */
export function liveStatuses (url, { onStatus, onState }) {
  const source = new EventSource(url)
  source.addEventListener('status', event => {
    try {
      onStatus(JSON.parse(event.data))
    } catch (err) {
      console.warn('an event that is not a status', err)
    }
  })
  source.addEventListener('open', () => onState(true))
  source.addEventListener('error', () => onState(false))
  return source
}

/**
 * The firing alerts (GET /alerts?state=firing) in `section`, hidden when there are none; read again
 * every 10 s. `device`: only that device's.
 */
export function firingAlerts (section, device) {
  const query = new URLSearchParams({ state: 'firing', limit: '50', ...(device ? { device } : {}) })
  const refresh = async () => {
    try {
      const { alerts } = await getJson(`/alerts?${query}`)
      const list = document.createElement('ul')
      for (const alert of alerts) {
        const li = document.createElement('li')
        li.dataset.alertRule = alert.rule
        li.dataset.alertDevice = alert.device
        const link = document.createElement('a')
        link.href = `/ui/devices/${encodeURIComponent(alert.device)}`
        link.textContent = alert.device
        li.append(link, ` — ${alert.rule}, firing since ${new Date(alert.since).toLocaleString()}`)
        list.append(li)
      }
      const title = document.createElement('h2')
      title.textContent = `Firing alerts (${alerts.length})`
      section.replaceChildren(title, list)
      section.hidden = alerts.length === 0
    } catch (err) {
      console.warn('alerts', err.message)
    }
  }
  refresh()
  setInterval(refresh, 10_000)
}

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

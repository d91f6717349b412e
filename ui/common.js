// Shared by the fleet and device pages: the service's own API, nothing else.

export const STATE_WORDS = { ok: 'OK', stressed: 'Stressed', stale: 'Not reporting' }

export function stateOf (status) {
  if (status.stale) return 'stale'
  return status.stressed ? 'stressed' : 'ok'
}

// API keys (API_KEYS): the key the user gave is kept for this tab's session only (sessionStorage)
// and sent as X-API-Key on every request. An EventSource cannot send a header: POST /auth/session
// trades the key for a short-lived HttpOnly, SameSite=Strict cookie the event streams accept.
const KEY_STORE = 'sensors-api-key'
let keyPrompt
let session

function storedKey () {
  try {
    return sessionStorage.getItem(KEY_STORE) ?? undefined
  } catch {
    return undefined
  }
}

function keyHeaders () {
  const key = storedKey()
  return key === undefined ? {} : { 'x-api-key': key }
}

/** Shows the key form (once, however many requests were refused) and resolves when a key is given. */
function askForKey (message) {
  if (keyPrompt !== undefined) return keyPrompt
  keyPrompt = new Promise(resolve => {
    const form = document.createElement('form')
    form.id = 'api-key-form'
    form.className = 'api-key'
    const label = document.createElement('label')
    label.textContent = message
    const input = document.createElement('input')
    input.type = 'password'
    input.name = 'key'
    input.autocomplete = 'off'
    input.required = true
    const button = document.createElement('button')
    button.type = 'submit'
    button.textContent = 'Use key'
    label.append(input)
    form.append(label, button)
    form.addEventListener('submit', event => {
      event.preventDefault()
      sessionStorage.setItem(KEY_STORE, input.value)
      form.remove()
      keyPrompt = undefined
      session = undefined
      openSession()
      resolve()
    })
    document.body.prepend(form)
    input.focus()
  })
  return keyPrompt
}

/** The event streams' session cookie, when a key is kept; resolves once the cookie is set (or there is no key). */
export function openSession () {
  if (session !== undefined) return session
  if (storedKey() === undefined) return Promise.resolve()
  session = fetch('/auth/session', { method: 'POST', headers: keyHeaders() }).then(res => {
    if (!res.ok) session = undefined
    // renewed before the hour it is valid ends
    else setTimeout(() => { session = undefined; openSession() }, 30 * 60_000)
  }, () => { session = undefined })
  return session
}

/** fetch with the kept key; on a 401, asks for a key and tries again. */
export async function authFetch (url, options = {}) {
  for (;;) {
    const res = await fetch(url, { ...options, headers: { ...options.headers, ...keyHeaders() } })
    if (res.status !== 401) return res
    await askForKey(storedKey() === undefined ? 'This service needs an API key: ' : 'That key was refused. API key: ')
  }
}

export async function getJson (url) {
  const res = await authFetch(url, { headers: { accept: 'application/json' } })
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
  let source
  const connect = () => {
    source = new EventSource(url)
    source.addEventListener('status', event => {
      try {
        onStatus(JSON.parse(event.data))
      } catch (err) {
        console.warn('an event that is not a status', err)
      }
    })
    source.addEventListener('open', () => onState(true))
    source.addEventListener('error', () => {
      onState(false)
      // A refused stream (no or an expired session) is not retried by the browser: a new session, then again.
      if (source.readyState === EventSource.CLOSED) setTimeout(() => { openSession().then(connect) }, 2000)
    })
  }
  openSession().then(connect)
  return { close: () => source?.close() }
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

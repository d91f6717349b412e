// What each channel type sends for one notification, and the sending (fetch with a timeout).
import { createHmac } from 'node:crypto'
import type { Channel } from './rules.js'
import type { Status } from '../schemas/readings.js'

/** The webhook's body; the other channels are made from it. */
export interface Notification {
  id: string
  rule: string
  device: string
  state: 'firing' | 'resolved'
  since: string
  at: string
  status: Status
}

export interface Request {
  url: string
  headers: Record<string, string>
  body: string
}

export type SendResult = { ok: true } | { ok: false, retry: boolean, reason: string }

function deviceLink (publicUrl: string | undefined, device: string): string | undefined {
  return publicUrl === undefined ? undefined : `${publicUrl.replace(/\/+$/, '')}/ui/devices/${encodeURIComponent(device)}`
}

/** The short human text of the chat channels. */
export function text (n: Notification, publicUrl?: string): string {
  const head = n.state === 'firing' ? `FIRING: ${n.rule} on ${n.device}` : `RESOLVED: ${n.rule} on ${n.device}`
  const parts = [head]
  const probability = n.status.probability
  if (typeof probability === 'number') parts.push(`probability ${probability.toFixed(2)}`)
  const reasons = n.status.reasons
  if (Array.isArray(reasons) && reasons.length > 0) {
    const top = reasons[0]!
    parts.push(`top reason ${String(top.field)} = ${String(top.value)} (${String(top.effect)})`)
  }
  if (n.status.stale === true) parts.push('not reporting')
  parts.push(`since ${n.since}`)
  const link = deviceLink(publicUrl, n.device)
  return parts.join(', ') + (link !== undefined ? `\n${link}` : '')
}

export function request (channel: Channel, n: Notification, publicUrl?: string): Request {
  const headers: Record<string, string> = { 'idempotency-key': n.id }
  switch (channel.type) {
    case 'webhook': {
      const body = JSON.stringify(n)
      headers['content-type'] = 'application/json'
      if (channel.secret !== undefined) headers['x-signature-256'] = `sha256=${createHmac('sha256', channel.secret).update(body).digest('hex')}`
      return { url: channel.url!, headers, body }
    }
    case 'telegram': {
      headers['content-type'] = 'application/json'
      const body = JSON.stringify({ chat_id: channel.chat_id, text: text(n, publicUrl), disable_web_page_preview: true })
      return { url: `${channel.api_url!}/bot${channel.bot_token!}/sendMessage`, headers, body }
    }
    case 'ntfy': {
      headers['content-type'] = 'text/plain; charset=utf-8'
      headers.title = `${n.state === 'firing' ? 'Firing' : 'Resolved'}: ${n.rule} on ${n.device}`
      headers.priority = channel.priority ?? (n.state === 'firing' ? '4' : '3')
      headers.tags = [n.state === 'firing' ? 'warning' : 'white_check_mark', ...(channel.tags ?? [])].join(',')
      const link = deviceLink(publicUrl, n.device)
      if (link !== undefined) headers.click = link
      return { url: channel.url!, headers, body: text(n) }
    }
    case 'slack': {
      headers['content-type'] = 'application/json'
      return { url: channel.url!, headers, body: JSON.stringify({ text: text(n, publicUrl) }) }
    }
  }
}

/** One attempt. 5xx, 408, 429, timeouts and network errors are worth another; other 4xx are not. */
export async function send (req: Request, timeoutMs: number): Promise<SendResult> {
  try {
    const res = await fetch(req.url, { method: 'POST', headers: req.headers, body: req.body, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' })
    await res.arrayBuffer().catch(() => {})
    if (res.status >= 200 && res.status < 300) return { ok: true }
    const retry = res.status >= 500 || res.status === 408 || res.status === 429
    return { ok: false, retry, reason: `HTTP ${res.status}` }
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } }
    return { ok: false, retry: true, reason: e.name === 'TimeoutError' ? 'timeout' : (e.cause?.code ?? e.name) }
  }
}

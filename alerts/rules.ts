// ALERTS_FILE (issue 18): channels and rules, YAML or JSON, `${NAME}` from the environment,
// validated with TypeBox. Every problem is one line naming the file and what is wrong.
import { readFileSync, statSync } from 'node:fs'
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { parse as parseYaml } from 'yaml'

export const CHANNEL_TYPES = ['webhook', 'telegram', 'ntfy', 'slack'] as const
export const RULE_KINDS = ['stressed', 'stale', 'field'] as const
const MAX_FILE_BYTES = 1024 * 1024

const Name = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' })
const Url = Type.String({ pattern: '^https?://' })
const Duration = Type.Union([Type.Number({ minimum: 0, maximum: 86_400 * 30 }), Type.String()])

const ChannelSchema = Type.Object({
  name: Name,
  type: Type.String(),
  url: Type.Optional(Url),
  secret: Type.Optional(Type.String()),
  bot_token: Type.Optional(Type.String({ minLength: 1 })),
  chat_id: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Number()])),
  api_url: Type.Optional(Url),
  priority: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 5 }), Type.String()])),
  tags: Type.Optional(Type.Array(Type.String()))
}, { additionalProperties: false })

const RuleSchema = Type.Object({
  name: Name,
  when: Type.String(),
  for_seconds: Type.Optional(Duration),
  devices: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { minItems: 1 })),
  channels: Type.Array(Type.String(), { minItems: 1 }),
  field: Type.Optional(Type.String({ minLength: 1 })),
  above: Type.Optional(Type.Number()),
  clear_below: Type.Optional(Type.Number())
}, { additionalProperties: false })

const DeliverySchema = Type.Object({
  retry_for_seconds: Type.Optional(Duration),
  timeout_seconds: Type.Optional(Duration),
  backoff_seconds: Type.Optional(Duration)
}, { additionalProperties: false })

const FileSchema = Type.Object({
  channels: Type.Array(ChannelSchema, { minItems: 1 }),
  rules: Type.Array(RuleSchema, { minItems: 1 }),
  delivery: Type.Optional(DeliverySchema)
}, { additionalProperties: false })

export type ChannelType = typeof CHANNEL_TYPES[number]
export type RuleKind = typeof RULE_KINDS[number]

export interface Channel {
  name: string
  type: ChannelType
  url?: string
  secret?: string
  bot_token?: string
  chat_id?: string
  api_url?: string
  priority?: string
  tags?: string[]
}

export interface Rule {
  name: string
  when: RuleKind
  forSeconds: number
  devices: RegExp[]
  channels: string[]
  field?: string
  above?: number
  clearBelow?: number
}

export interface AlertsConfig {
  channels: Channel[]
  rules: Rule[]
  delivery: { retryForMs: number, timeoutMs: number, backoffMs: number }
}

export class AlertsFileError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'AlertsFileError'
  }
}

/** `30`, `"30"`, `"30s"`, `"5m"`, `"1h"` in seconds; undefined when it is none of these. */
export function seconds (value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(value)
  if (m === null) return undefined
  const n = Number(m[1])
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd']
  return n * unit
}

/** A device glob (`*`, `?`) as an anchored expression. */
export function globToRegExp (glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')
  return new RegExp(`^${body}$`)
}

/** `${NAME}` from `env`, in every string of the parsed document; a name not set is an error. */
function substitute (value: unknown, env: NodeJS.ProcessEnv, path: string): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const v = env[name]
      if (v === undefined) throw new AlertsFileError(`${path} uses \${${name}}, which is not set in the environment`)
      return v
    })
  }
  if (Array.isArray(value)) return value.map((v, i) => substitute(v, env, `${path}[${i}]`))
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, env, path === '' ? k : `${path}.${k}`)]))
  }
  return value
}

function duration (value: number | string | undefined, where: string, fallback: number): number {
  if (value === undefined) return fallback
  const s = seconds(value)
  if (s === undefined) throw new AlertsFileError(`${where} is not a duration (seconds, or a number with s, m, h or d; got ${JSON.stringify(value)})`)
  return s
}

/** Parses and checks an alerts document (its text, YAML or JSON). */
export function parseAlerts (text: string, env: NodeJS.ProcessEnv = process.env): AlertsConfig {
  let doc: unknown
  try {
    doc = parseYaml(text, { maxAliasCount: 100 }) // JSON is YAML
  } catch (err) {
    throw new AlertsFileError(`does not parse: ${(err as Error).message.split('\n')[0]!}`)
  }
  doc = substitute(doc, env, '')
  // Types and names first, so the messages below can name the offending entry.
  const docObj = doc as { channels?: unknown[], rules?: unknown[] } | null
  for (const [i, c] of (Array.isArray(docObj?.channels) ? docObj.channels : []).entries()) {
    const type = (c as { type?: unknown } | null)?.type
    if (!CHANNEL_TYPES.includes(type as ChannelType)) {
      throw new AlertsFileError(`channels[${i}] has an unknown type ${JSON.stringify(type)} (one of ${CHANNEL_TYPES.join(', ')})`)
    }
  }
  for (const [i, r] of (Array.isArray(docObj?.rules) ? docObj.rules : []).entries()) {
    const when = (r as { when?: unknown } | null)?.when
    if (!RULE_KINDS.includes(when as RuleKind)) {
      throw new AlertsFileError(`rules[${i}].when is ${JSON.stringify(when)}: one of ${RULE_KINDS.join(', ')}`)
    }
    const d = (r as { for_seconds?: unknown }).for_seconds
    if (d !== undefined && (typeof d !== 'number' && typeof d !== 'string')) throw new AlertsFileError(`rules[${i}].for_seconds is not a duration`)
    if (d !== undefined) duration(d as number | string, `rules[${i}].for_seconds`, 0)
  }
  const error = Value.Errors(FileSchema, doc).First()
  if (error !== undefined) throw new AlertsFileError(`${error.path === '' ? 'the document' : error.path.slice(1).replace(/\//g, '.')} ${error.message.toLowerCase()}`)
  const file = doc as Static<typeof FileSchema>

  const names = new Set<string>()
  const channels: Channel[] = file.channels.map((c, i) => {
    if (names.has(c.name)) throw new AlertsFileError(`channels[${i}]: the name "${c.name}" is used twice`)
    names.add(c.name)
    const type = c.type as ChannelType
    const need = (key: keyof typeof c): void => {
      if (c[key] === undefined) throw new AlertsFileError(`channel "${c.name}" (${type}) needs ${key}`)
    }
    if (type === 'telegram') { need('bot_token'); need('chat_id') } else need('url')
    const channel: Channel = { name: c.name, type }
    if (c.url !== undefined) channel.url = c.url
    if (c.secret !== undefined && c.secret !== '') channel.secret = c.secret
    if (c.bot_token !== undefined) channel.bot_token = c.bot_token
    if (c.chat_id !== undefined) channel.chat_id = String(c.chat_id)
    channel.api_url = (c.api_url ?? 'https://api.telegram.org').replace(/\/+$/, '')
    if (c.priority !== undefined) channel.priority = String(c.priority)
    if (c.tags !== undefined) channel.tags = c.tags
    return channel
  })
  const ruleNames = new Set<string>()
  const rules: Rule[] = file.rules.map((r, i) => {
    if (ruleNames.has(r.name)) throw new AlertsFileError(`rules[${i}]: the name "${r.name}" is used twice`)
    ruleNames.add(r.name)
    for (const ch of r.channels) {
      if (!names.has(ch)) throw new AlertsFileError(`rule "${r.name}" names the channel "${ch}", which does not exist`)
    }
    const rule: Rule = {
      name: r.name,
      when: r.when as RuleKind,
      forSeconds: duration(r.for_seconds, `rule "${r.name}" for_seconds`, 0),
      devices: (r.devices ?? ['*']).map(globToRegExp),
      channels: [...new Set(r.channels)]
    }
    if (rule.when === 'field') {
      if (r.field === undefined || r.above === undefined) throw new AlertsFileError(`rule "${r.name}" (field) needs field and above`)
      const clearBelow = r.clear_below ?? r.above
      if (clearBelow > r.above) throw new AlertsFileError(`rule "${r.name}": clear_below (${clearBelow}) must not be above above (${r.above})`)
      rule.field = r.field
      rule.above = r.above
      rule.clearBelow = clearBelow
    }
    return rule
  })
  const d = file.delivery ?? {}
  return {
    channels,
    rules,
    delivery: {
      retryForMs: duration(d.retry_for_seconds, 'delivery.retry_for_seconds', 3600) * 1000,
      timeoutMs: Math.max(100, duration(d.timeout_seconds, 'delivery.timeout_seconds', 10) * 1000),
      backoffMs: Math.max(10, duration(d.backoff_seconds, 'delivery.backoff_seconds', 1) * 1000)
    }
  }
}

/** Reads and checks ALERTS_FILE; every failure is an AlertsFileError whose message starts with `ALERTS_FILE`. */
export function loadAlertsFile (path: string, env: NodeJS.ProcessEnv = process.env): AlertsConfig {
  let text: string
  try {
    // bounded before it is read: the file is parsed whole
    if (statSync(path).size > MAX_FILE_BYTES) throw new AlertsFileError(`ALERTS_FILE ${path} is larger than ${MAX_FILE_BYTES / 1024} KB`)
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if (err instanceof AlertsFileError) throw err
    throw new AlertsFileError(`ALERTS_FILE ${path} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  try {
    return parseAlerts(text, env)
  } catch (err) {
    if (err instanceof AlertsFileError) throw new AlertsFileError(`ALERTS_FILE ${path}: ${err.message}`)
    throw err
  }
}

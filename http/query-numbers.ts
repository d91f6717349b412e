// Numbers in a URL (query string, path parameters, headers) must be written as plain decimal
// numbers. Ajv's type coercion alone takes `Infinity`, `1e309`, `0x10`, ` 5` or `+5` as numbers
// (and lets `Infinity` past `maximum`), so every route whose schema declares a numeric parameter
// gets this check before validation, driven by that schema: a new route is covered as it is declared.

import createError from 'http-errors'
import { quote } from './quote.js'

type Kind = 'integer' | 'number'
/** per request part (querystring, params, headers): the numeric properties and their kind */
export type NumericFields = Partial<Record<Part, Map<string, Kind>>>
type Part = 'querystring' | 'params' | 'headers'
const PARTS: Part[] = ['querystring', 'params', 'headers']

// No sign but '-', no leading zero (is 010 octal?), no exponent, at most 15 digits (safe integers).
const INTEGER = /^(?:0|-?[1-9]\d{0,14})$/
const NUMBER = /^-?(?:0|[1-9]\d{0,14})(?:\.\d{1,15})?$/

type Resolve = (ref: string) => unknown

function kindOf (schema: unknown, resolve: Resolve, depth = 0): Kind | undefined {
  if (schema === null || typeof schema !== 'object' || depth > 8) return undefined
  const s = schema as { $ref?: string, type?: unknown, anyOf?: unknown[], oneOf?: unknown[], allOf?: unknown[], items?: unknown }
  if (typeof s.$ref === 'string') return kindOf(resolve(s.$ref), resolve, depth + 1)
  const types = Array.isArray(s.type) ? s.type : [s.type]
  if (types.includes('integer')) return 'integer'
  if (types.includes('number')) return 'number'
  // an array of numbers (a repeated parameter), or a union with a numeric branch
  if (types.includes('array')) return kindOf(s.items, resolve, depth + 1)
  for (const branch of [...(s.anyOf ?? []), ...(s.oneOf ?? []), ...(s.allOf ?? [])]) {
    const kind = kindOf(branch, resolve, depth + 1)
    if (kind !== undefined) return kind
  }
  return undefined
}

/** The numeric parameters a route schema declares; undefined when it declares none. */
export function numericFields (schema: Record<string, unknown> | undefined, resolve: Resolve): NumericFields | undefined {
  if (schema === undefined) return undefined
  let found: NumericFields | undefined
  for (const part of PARTS) {
    let object = schema[part] as { $ref?: string, properties?: Record<string, unknown> } | undefined
    if (typeof object?.$ref === 'string') object = resolve(object.$ref) as typeof object
    for (const [name, property] of Object.entries(object?.properties ?? {})) {
      const kind = kindOf(property, resolve)
      if (kind === undefined) continue
      found ??= {}
      const fields = found[part] ??= new Map()
      fields.set(name, kind)
    }
  }
  return found
}

/** Throws a 400 naming the first numeric parameter not written as a plain decimal number. */
export function checkWritten (fields: NumericFields, request: { query?: unknown, params?: unknown, headers?: unknown }): void {
  for (const part of PARTS) {
    const wanted = fields[part]
    const values = (part === 'querystring' ? request.query : request[part]) as Record<string, unknown> | undefined
    if (wanted === undefined || values == null) continue
    for (const [name, kind] of wanted) {
      const value = values[name]
      if (value === undefined) continue
      for (const one of Array.isArray(value) ? value : [value]) {
        // Already a number: set by a default, not by the client.
        if (typeof one !== 'string') continue
        if (!(kind === 'integer' ? INTEGER : NUMBER).test(one)) {
          const as = kind === 'integer' ? 'an integer in plain decimal digits, e.g. 100' : 'a number in plain decimal notation, e.g. 2.5'
          throw new createError.BadRequest(`${part}/${name} must be ${as} (got ${quote(one)})`)
        }
      }
    }
  }
}

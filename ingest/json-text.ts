// Bounded looks at a JSON text before and beside JSON.parse: no recursion, one pass, so a hostile
// message (10,000 brackets deep, 100k keys) costs its length and nothing more.

const QUOTE = 34
const BACKSLASH = 92
const OPEN_OBJECT = 123
const CLOSE_OBJECT = 125
const OPEN_ARRAY = 91
const CLOSE_ARRAY = 93
const COLON = 58
const COMMA = 44

/** The index just past the string that starts at `start` (a quote). */
function skipString (text: string, start: number): number {
  let i = start + 1
  while (i < text.length) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) return i + 1
    i += c === BACKSLASH ? 2 : 1
  }
  return i
}

/** true when arrays and objects nest deeper than `limit` anywhere in the text (strings skipped). */
export function nestsDeeperThan (text: string, limit: number): boolean {
  let depth = 0
  for (let i = 0; i < text.length;) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) { i = skipString(text, i); continue }
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > limit) return true
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth--
    }
    i++
  }
  return false
}

/**
 * The text of a top-level member's value as it was sent (the last one, as JSON.parse keeps),
 * cut to `max` characters; undefined when the text is not an object or has no such member.
 * JSON.parse turns `1e400` into Infinity and `12345678901234567890` into another number: a
 * reason quotes this text instead.
 */
export function memberText (text: string, key: string, max = 40): string | undefined {
  let depth = 0
  let topObject = false
  let expectKey = false
  let matched = false
  let valueStart = -1
  let found: string | undefined
  const close = (end: number): void => {
    if (matched && valueStart >= 0) {
      const raw = text.slice(valueStart, end).trim()
      found = raw.length > max ? `${raw.slice(0, max)}…` : raw
    }
    matched = false
    valueStart = -1
  }
  for (let i = 0; i < text.length;) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) {
      const end = skipString(text, i)
      if (depth === 1 && topObject && expectKey) {
        try {
          matched = JSON.parse(text.slice(i, end)) === key
        } catch {
          return found
        }
        expectKey = false
      }
      i = end
      continue
    }
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (depth === 0) { topObject = c === OPEN_OBJECT; expectKey = topObject }
      depth++
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      if (depth === 1) close(i)
      depth--
    } else if (depth === 1 && topObject) {
      if (c === COLON && valueStart < 0) valueStart = i + 1
      else if (c === COMMA) { close(i); expectKey = true }
    }
    i++
  }
  return found
}

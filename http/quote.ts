// How client input is echoed in an error message (the errors themselves are http-errors').
/**
 * A short, escaped excerpt of client input for an error message: at most `max` characters, quoted,
 * everything outside printable ASCII written as \uXXXX (nothing a client sent reaches a log or a
 * terminal raw, and a 10 KB path is not echoed back).
 */
export function quote (text: string, max = 64): string {
  const cut = text.length > max ? `${text.slice(0, max)}...` : text
  return `"${cut.replace(/[^\x20-\x7e]|["\\]/g, c => c === '"' || c === '\\' ? `\\${c}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`
}

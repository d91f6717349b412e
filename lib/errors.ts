// Errors that cross the storage boundary. The repository maps SDK errors to these, so routes and
// the consumer never look at AWS error names.

export class StorageUnavailableError extends Error {
  readonly statusCode = 503
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StorageUnavailableError'
  }
}

export class InvalidCursorError extends Error {
  readonly statusCode = 400
  constructor (message = 'Invalid cursor: pass the cursor of a previous page unchanged') {
    super(message)
    this.name = 'InvalidCursorError'
  }
}

export class BadRequestError extends Error {
  readonly statusCode = 400
  constructor (message: string) {
    super(message)
    this.name = 'BadRequestError'
  }
}

export class NotFoundError extends Error {
  readonly statusCode = 404
  constructor (message: string) {
    super(message)
    this.name = 'NotFoundError'
  }
}

/**
 * A short, escaped excerpt of client input for an error message: at most `max` characters, quoted,
 * everything outside printable ASCII written as \uXXXX (nothing a client sent reaches a log or a
 * terminal raw, and a 10 KB path is not echoed back).
 */
export function quote (text: string, max = 64): string {
  const cut = text.length > max ? `${text.slice(0, max)}...` : text
  return `"${cut.replace(/[^\x20-\x7e]|["\\]/g, c => c === '"' || c === '\\' ? `\\${c}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`
}

// Errors that cross the storage boundary. The repository maps SDK errors to these, so routes and
// the consumer never look at AWS error names; `statusCode` is what an HTTP answer makes of them.

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

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

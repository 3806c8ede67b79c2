/**
 * Errors the client reports. Transport problems reach the agent through `onError` and the
 * counters in `client.stats`, and are thrown only in strict mode.
 */
export class LedgerClientError extends Error {
  constructor(
    message: string,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = 'LedgerClientError'
  }
}

/** The in-memory buffer is full: the event was not queued (counted in `stats.dropped`). */
export class LedgerBufferFullError extends LedgerClientError {
  constructor(readonly limit: number) {
    super(`the client buffer holds ${limit} unsent events; the new event was dropped`, 'LEDGER_CLIENT_BUFFER_FULL')
    this.name = 'LedgerBufferFullError'
  }
}

/** The gateway refused events for good (4xx other than 429): counted in `stats.rejected`. */
export class LedgerRejectedError extends LedgerClientError {
  constructor(
    message: string,
    readonly status: number,
    readonly serverCode: string | undefined,
    readonly eventIds: string[],
  ) {
    super(message, 'LEDGER_CLIENT_REJECTED')
    this.name = 'LedgerRejectedError'
  }
}

/** flush()/close() ran out of time with events still unsent (strict mode only). */
export class LedgerFlushTimeoutError extends LedgerClientError {
  constructor(readonly unsent: number) {
    super(`${unsent} events were still unsent when the flush timed out`, 'LEDGER_CLIENT_FLUSH_TIMEOUT')
    this.name = 'LedgerFlushTimeoutError'
  }
}

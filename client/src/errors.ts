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

/** What `guard()` was refused on: the decision, and the event that tripped it. */
export interface GuardRefusal {
  error: 'run_killed' | 'circuit_open' | 'budget_exceeded'
  scope: 'run' | 'agent_version' | 'tool' | 'tenant'
  scope_key: string
  trigger: string
  reason: string
  tripping_event_id: string | null
  decision_id: string | null
  decided_at: number | null
}

/** `guard()` refused the action. The subclass says why; `refusal` carries the decision. */
export class LedgerGuardError extends LedgerClientError {
  readonly scope: GuardRefusal['scope']
  readonly trigger: string
  /** The audit event that tripped the decision (null for a manual kill or a refused reservation). */
  readonly trippingEventId: string | null
  constructor(
    readonly runId: string,
    readonly refusal: GuardRefusal,
    code: string,
  ) {
    super(`run ${runId} refused (${refusal.scope} ${refusal.scope_key}, ${refusal.trigger}): ${refusal.reason}${refusal.tripping_event_id ? ` [tripped by event ${refusal.tripping_event_id}]` : ''}`, code)
    this.scope = refusal.scope
    this.trigger = refusal.trigger
    this.trippingEventId = refusal.tripping_event_id
  }
}

/** The run (or its agent version, or the tenant) was killed: a loop, an unapproved action, a denial streak, an operator. */
export class RunKilledError extends LedgerGuardError {
  constructor(runId: string, refusal: GuardRefusal) {
    super(runId, refusal, 'LEDGER_CLIENT_RUN_KILLED')
    this.name = 'RunKilledError'
  }
}

/** The tool's circuit breaker is open (too many errors), or an operator stopped the tool. */
export class CircuitOpenError extends LedgerGuardError {
  constructor(runId: string, refusal: GuardRefusal) {
    super(runId, refusal, 'LEDGER_CLIENT_CIRCUIT_OPEN')
    this.name = 'CircuitOpenError'
  }
}

/** A budget was breached, or the estimated cost would exceed what is left after reservations. */
export class BudgetExceededError extends LedgerGuardError {
  constructor(runId: string, refusal: GuardRefusal) {
    super(runId, refusal, 'LEDGER_CLIENT_BUDGET_EXCEEDED')
    this.name = 'BudgetExceededError'
  }
}

/** `guard()` could not get an answer from the gateway; by default guard fails closed. */
export class LedgerGuardUnavailableError extends LedgerClientError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'LEDGER_CLIENT_GUARD_UNAVAILABLE', options)
    this.name = 'LedgerGuardUnavailableError'
  }
}

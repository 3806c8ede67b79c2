import type { LedgerEventView } from '../domain-event.ts'

/**
 * A stream processor's domain: which state an event belongs to, and the pure step. The runtime
 * (a kafkajs runner in production, the topology driver in tests) owns the store and the I/O.
 */
export interface Processor<S, O> {
  readonly name: string
  /** The state key for an event (a run id, `agent@version/day`, ...), or undefined to skip it. */
  keyOf(event: LedgerEventView): string | undefined
  initial(event: LedgerEventView): S
  step(state: S, event: LedgerEventView): { state: S; emits: O[] }
}

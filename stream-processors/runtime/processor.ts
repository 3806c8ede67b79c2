import type { LedgerEventView } from '../domain-event.ts'
import type { KeyValueStore } from './store.ts'

/**
 * A stream processor's domain: which states an event belongs to, and the pure step. The runtime
 * (a kafkajs runner in production, the topology driver in tests) owns the store and the I/O.
 */
export interface Processor<S, O> {
  readonly name: string
  /**
   * The state keys an event updates: one run id, or several aggregates (`agent@version/day`,
   * `principal/day`, ...). Empty to skip the event.
   */
  keysOf(event: LedgerEventView): readonly string[]
  initial(event: LedgerEventView, key: string): S
  step(state: S, event: LedgerEventView, key: string): { state: S; emits: O[] }
}

/** Folds one event into every state it belongs to; returns the emits in key order. */
export function applyEvent<S, O>(processor: Processor<S, O>, store: KeyValueStore<S>, event: LedgerEventView): O[] {
  const out: O[] = []
  const changed: [string, S][] = []
  // Every step runs before any state is written, so an event whose step throws (a poison record
  // headed for the dead-letter topic) leaves no key half-updated.
  for (const key of processor.keysOf(event)) {
    const current = store.get(key)
    const { state, emits } = processor.step(current ?? processor.initial(event, key), event, key)
    if (state !== current) changed.push([key, state])
    out.push(...emits)
  }
  for (const [key, state] of changed) store.put(key, state)
  return out
}

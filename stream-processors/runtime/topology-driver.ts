import type { LedgerEventView } from '../domain-event.ts'
import { applyEvent, type Processor } from './processor.ts'
import { ChangeloggingStore, InMemoryStore, type ChangelogRecord } from './store.ts'

/**
 * Runs a processor over events with an in-memory, changelogged store and no broker: what tests
 * use to check emits, state and changelog, and to prove that a store restored from the changelog
 * continues exactly as one that never stopped.
 */
export class TopologyDriver<S, O> {
  readonly store: ChangeloggingStore<S>
  readonly emitted: O[] = []
  readonly changelog: ChangelogRecord<S>[] = []

  constructor(
    private readonly processor: Processor<S, O>,
    restoreFrom: Iterable<ChangelogRecord<S>> = [],
  ) {
    this.store = new ChangeloggingStore(new InMemoryStore<S>())
    this.store.restore(restoreFrom)
  }

  pipe(events: Iterable<LedgerEventView>): O[] {
    // Loops, not push(...spread): a replay of a long log emits more records than a call has stack for arguments.
    const out: O[] = []
    for (const event of events) for (const emit of applyEvent(this.processor, this.store, event)) out.push(emit)
    for (const emit of out) this.emitted.push(emit)
    for (const record of this.store.drain()) this.changelog.push(record)
    this.store.commit()
    return out
  }

  state(key: string): S | undefined {
    return this.store.get(key)
  }
}

import type { LedgerEventView } from '../domain-event.ts'
import type { Processor } from './processor.ts'
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
    const out: O[] = []
    for (const event of events) {
      const key = this.processor.keyOf(event)
      if (key === undefined) continue
      const current = this.store.get(key) ?? this.processor.initial(event)
      const { state, emits } = this.processor.step(current, event)
      this.store.put(key, state)
      out.push(...emits)
    }
    this.emitted.push(...out)
    this.changelog.push(...this.store.drain())
    return out
  }

  state(key: string): S | undefined {
    return this.store.get(key)
  }
}

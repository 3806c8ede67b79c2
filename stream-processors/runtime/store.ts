/**
 * Processor state lives in a key-value store the runtime owns. Writing the changelog is a
 * decorator around the store, not the processor's job: every put or delete is recorded, and the
 * runner writes the records to a compacted topic in the same transaction as its output and
 * offsets, so state rebuilt from the changelog after a crash equals the state it had.
 */
export interface KeyValueStore<V> {
  get(key: string): V | undefined
  put(key: string, value: V): void
  delete(key: string): void
  entries(): IterableIterator<[string, V]>
  readonly size: number
}

export class InMemoryStore<V> implements KeyValueStore<V> {
  private readonly map = new Map<string, V>()
  get(key: string): V | undefined {
    return this.map.get(key)
  }
  put(key: string, value: V): void {
    this.map.set(key, value)
  }
  delete(key: string): void {
    this.map.delete(key)
  }
  entries(): IterableIterator<[string, V]> {
    return this.map.entries()
  }
  get size(): number {
    return this.map.size
  }
}

export interface ChangelogRecord<V> {
  key: string
  /** null is a tombstone. */
  value: V | null
}

export class ChangeloggingStore<V> implements KeyValueStore<V> {
  private pending: ChangelogRecord<V>[] = []
  /** Each key's value before its first change since the last commit, for rollback. */
  private before = new Map<string, V | undefined>()

  constructor(private readonly inner: KeyValueStore<V>) {}

  get(key: string): V | undefined {
    return this.inner.get(key)
  }
  put(key: string, value: V): void {
    this.remember(key)
    this.inner.put(key, value)
    this.pending.push({ key, value })
  }
  delete(key: string): void {
    this.remember(key)
    this.inner.delete(key)
    this.pending.push({ key, value: null })
  }
  private remember(key: string): void {
    if (!this.before.has(key)) this.before.set(key, this.inner.get(key))
  }
  /** The changes since the last commit are durable (their changelog was committed). */
  commit(): void {
    this.before.clear()
  }
  /** Undoes every change since the last commit (its transaction was aborted). */
  rollback(): void {
    for (const [key, value] of this.before) {
      if (value === undefined) this.inner.delete(key)
      else this.inner.put(key, value)
    }
    this.before.clear()
    this.pending = []
  }
  entries(): IterableIterator<[string, V]> {
    return this.inner.entries()
  }
  get size(): number {
    return this.inner.size
  }
  /** Hands over what changed since the last drain; only the last change per key matters. */
  drain(): ChangelogRecord<V>[] {
    const latest = new Map<string, ChangelogRecord<V>>()
    for (const r of this.pending) latest.set(r.key, r)
    this.pending = []
    return [...latest.values()]
  }
  /** Rebuild: apply changelog records without recording them again. */
  restore(records: Iterable<ChangelogRecord<V>>): void {
    for (const r of records) {
      if (r.value === null) this.inner.delete(r.key)
      else this.inner.put(r.key, r.value)
    }
  }
}

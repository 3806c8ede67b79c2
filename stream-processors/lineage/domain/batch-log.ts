/**
 * The lineage sink's bookkeeping, kept apart from Kafka and ClickHouse so it can be tested alone.
 *
 * A flush takes the records buffered for every partition: one offset range per partition. Before
 * inserting, it logs the ranges under a flush id (the batch log, `sink_log`, not yet done);
 * every table gets one insert carrying a deduplication token made from the flush id; then the
 * ranges are logged again as `done` and the offsets committed. One insert per table per flush,
 * whatever the partition count: each ClickHouse insert has a fixed cost (a part per table and
 * view), which per-partition inserts multiplied.
 *
 * After a crash or a rebalance, the first records of a partition are checked against the log.
 * A logged flush that is not done is redone whole — its ranges read again from Kafka, by whichever
 * member finds it, with the same token, so ClickHouse drops whatever part of it had landed and
 * two members redoing it at once insert it once. Records of the partition inside any logged range
 * are then skipped, since their flush is done. Records past the log start new ranges. That turns
 * Kafka's at-least-once delivery into exactly-once rows.
 */

export interface LoggedRange {
  flushId: string
  topic: string
  partition: number
  first: bigint
  last: bigint
  done: boolean
}

export interface RecoveryPlan {
  /** Flushes logged but not known done: redo each whole before going on. */
  redo: string[]
  /** The partition's records up to and including this offset belong to logged flushes: skip them. */
  skipThrough: bigint | undefined
}

/** What to do with a partition whose first record since joining is at `from`, given its logged ranges at or past `from`. */
export function planRecovery(logged: readonly LoggedRange[], from: bigint): RecoveryPlan {
  const relevant = logged.filter((r) => r.last >= from)
  const redo = [...new Set(relevant.filter((r) => !r.done).map((r) => r.flushId))].sort()
  const skipThrough = relevant.reduce<bigint | undefined>((max, r) => (max === undefined || r.last > max ? r.last : max), undefined)
  return { redo, skipThrough }
}

export function flushToken(group: string, flushId: string, table: string): string {
  return `${group}/${flushId}/${table}`
}

/** The records buffered for one partition since its last flush: one contiguous range. */
export class PartitionBuffer<T> {
  private items: T[] = []
  private first: bigint | undefined
  private last: bigint | undefined

  /** Offsets at or below this belong to logged flushes and are not buffered again. */
  constructor(private readonly skipThrough: bigint | undefined = undefined) {}

  /** True for a record a logged flush already stored. */
  skips(offset: bigint): boolean {
    return this.skipThrough !== undefined && offset <= this.skipThrough
  }

  /** Buffers the record at `offset` (offsets arrive in increasing order, none that `skips`). */
  add(offset: bigint, item: T): void {
    if (this.skips(offset)) throw new RangeError(`offset ${offset} belongs to a logged flush`)
    this.first ??= offset
    this.last = offset
    this.items.push(item)
  }

  /** Hands over the buffered range, if any, and starts a new one. */
  take(): { first: bigint; last: bigint; items: T[] } | undefined {
    if (this.first === undefined || this.last === undefined) return undefined
    const range = { first: this.first, last: this.last, items: this.items }
    this.items = []
    this.first = undefined
    this.last = undefined
    return range
  }

  get size(): number {
    return this.items.length
  }
}

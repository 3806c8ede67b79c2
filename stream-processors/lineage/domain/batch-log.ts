/**
 * The lineage sink's per-partition bookkeeping, kept apart from Kafka and ClickHouse so it can be
 * tested alone.
 *
 * A partition's records are cut into ranges. Before a range is inserted, its bounds are written
 * to the batch log (the `sink_batches` table); the insert carries a deduplication token made
 * from the bounds; the Kafka offset is committed after it. After a crash, every logged range at
 * or past the committed offset is rebuilt with exactly its old bounds, so its token is the same
 * and ClickHouse drops whatever part of it had landed. Records past the last logged range start
 * new ranges. That turns Kafka's at-least-once delivery into exactly-once rows.
 */

export interface LoggedRange {
  first: bigint
  last: bigint
}

export interface RangeBuffer<T> {
  first: bigint
  last: bigint
  items: T[]
  /** A range from the batch log being redone: its bounds are fixed and it is already logged. */
  redo: boolean
  /** No record can join it any more (a redo range reached its last offset, or a later record began another range). */
  closed: boolean
}

export function rangeToken(group: string, topic: string, partition: number, range: LoggedRange): string {
  return `${group}/${topic}/${partition}/${range.first}-${range.last}`
}

/** The open and closed ranges of one partition, in offset order. */
export class PartitionRanges<T> {
  private readonly ranges: RangeBuffer<T>[] = []
  private readonly pendingRedo: LoggedRange[]

  /** `redo`: logged ranges at or past the committed offset, in offset order. */
  constructor(redo: readonly LoggedRange[] = []) {
    this.pendingRedo = [...redo].sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0))
  }

  /** Adds one record at `offset` (offsets arrive in increasing order). */
  add(offset: bigint, item: T): void {
    const open = this.ranges.at(-1)
    // A logged range this record is past was delivered only in part (its tail was never seen
    // again, e.g. it was deleted by retention); it is closed as it is, still under its own bounds.
    while (this.pendingRedo.length > 0 && offset > this.pendingRedo[0]!.last) {
      const gone = this.pendingRedo.shift()!
      if (open?.redo === true && open.first === gone.first) open.closed = true
    }
    const redo = this.pendingRedo[0]
    if (redo !== undefined && offset >= redo.first) {
      let target = this.ranges.at(-1)
      if (target === undefined || !target.redo || target.first !== redo.first) {
        if (target !== undefined) target.closed = true
        target = { first: redo.first, last: redo.last, items: [], redo: true, closed: false }
        this.ranges.push(target)
      }
      target.items.push(item)
      if (offset === redo.last) {
        target.closed = true
        this.pendingRedo.shift()
      }
      return
    }
    // A new range never reaches into a logged one: it is closed before the logged range begins.
    const current = this.ranges.at(-1)
    if (current !== undefined && !current.redo && !current.closed) {
      current.items.push(item)
      current.last = offset
      if (redo !== undefined && offset + 1n >= redo.first) current.closed = true
      return
    }
    if (current !== undefined) current.closed = true
    this.ranges.push({ first: offset, last: offset, items: [item], redo: false, closed: redo !== undefined && offset + 1n >= redo.first })
  }

  /**
   * Hands over the ranges ready to flush: every closed range, and the open new range too when
   * `includeOpen`. An open redo range is kept until its last offset arrives, so its bounds stay
   * exactly as logged.
   */
  take(includeOpen: boolean): RangeBuffer<T>[] {
    const out: RangeBuffer<T>[] = []
    while (this.ranges.length > 0) {
      const r = this.ranges[0]!
      if (!r.closed && (r.redo || !includeOpen)) break
      out.push(this.ranges.shift()!)
    }
    return out
  }

  get bufferedItems(): number {
    let n = 0
    for (const r of this.ranges) n += r.items.length
    return n
  }

  /** True while a logged range is still waiting for its records. */
  get redoing(): boolean {
    return this.pendingRedo.length > 0 || this.ranges.some((r) => r.redo)
  }
}

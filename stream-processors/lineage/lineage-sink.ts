import type { EachBatchPayload, Kafka, KafkaMessage, Message, Producer } from 'kafkajs'
import type { LedgerClickHouse } from '../../services/shared/clickhouse.ts'
import { isLedgerError } from '../../services/shared/errors.ts'
import { createStoppableConsumer, type StoppableConsumer } from '../../services/shared/kafka.ts'
import type { Logger } from '../../services/shared/log.ts'
import { PartitionRanges, rangeToken, type LoggedRange, type RangeBuffer } from './domain/batch-log.ts'
import type { KafkaPosition } from './domain/event-rows.ts'

/** What a source topic's record becomes: rows for one or more tables. */
export interface SinkRows {
  table: string
  row: Record<string, unknown>
}

export interface SinkSource {
  topic: string
  /** Maps a record to its rows (none to skip it); throws for a poison record. */
  toRows(message: KafkaMessage, position: KafkaPosition): Promise<SinkRows[]>
}

export interface LineageSinkOptions {
  kafka: Kafka
  clickhouse: LedgerClickHouse
  sources: SinkSource[]
  deadLetterTopic: string
  groupId: string
  /** Flush once this many records are buffered. */
  maxBatchRecords: number
  /** Flush what is buffered at least this often. */
  lingerMs: number
  sessionTimeoutMs?: number
  logger: Logger
}

export interface LineageSinkStats {
  records: number
  rows: number
  flushes: number
  redoneRanges: number
  deadLettered: number
  insertFailures: number
  /** When the write being retried first failed; undefined while writes succeed. */
  failingSince: number | undefined
  lastFlushMs: number
  lastFlushAt: number | undefined
  /** Per `topic/partition`: the broker's high watermark minus the next offset to read, as of the last fetch. */
  lag: Record<string, number>
}

export interface LineageSink {
  start(): Promise<void>
  /** Stops consuming, flushes and commits what was read, then disconnects. */
  stop(): Promise<void>
  /** Flushes everything buffered now (tests and shutdown). */
  flush(): Promise<void>
  readonly stats: LineageSinkStats
}

interface Item {
  rows: SinkRows[]
  deadLetter?: Message
}

/** ClickHouse insert settings of every sink insert. */
const INSERT_SETTINGS = {
  // chDB turns asynchronous inserts on by default; a deduplication token needs a synchronous insert.
  async_insert: 0,
  insert_deduplicate: 1,
  deduplicate_blocks_in_dependent_materialized_views: 1,
} as const

/**
 * The lineage sink: every audit and control record into ClickHouse, in batches flushed by size
 * and by time, exactly once (see domain/batch-log.ts), never dropping one: a failed insert is
 * retried until it succeeds, a record that cannot be mapped goes to the dead-letter topic with
 * its reason. Offsets are committed only after their rows are in ClickHouse.
 */
export function createLineageSink(options: LineageSinkOptions): LineageSink {
  const { kafka, clickhouse, logger } = options
  const log = logger.child({ component: 'lineage-sink' })
  const sources = new Map(options.sources.map((s) => [s.topic, s]))
  const stats: LineageSinkStats = { records: 0, rows: 0, flushes: 0, redoneRanges: 0, deadLettered: 0, insertFailures: 0, failingSince: undefined, lastFlushMs: 0, lastFlushAt: undefined, lag: {} }
  const partitions = new Map<string, { topic: string; partition: number; ranges: PartitionRanges<Item> }>()
  let consumer: StoppableConsumer | undefined
  let producer: Producer | undefined
  let timer: NodeJS.Timeout | undefined
  let stopping = false
  // Flushes and partition recovery run one at a time: a recovery must see the batch log of a
  // flush that was in flight when the group rebalanced.
  let chain: Promise<unknown> = Promise.resolve()
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = chain.then(fn, fn)
    chain = next.catch(() => undefined)
    return next
  }

  const buffered = () => {
    let n = 0
    for (const p of partitions.values()) n += p.ranges.bufferedItems
    return n
  }

  async function loggedRanges(topic: string, partition: number, from: string): Promise<LoggedRange[]> {
    const rows = await clickhouse.query<{ first_offset: string; last_offset: string }>(
      `SELECT first_offset, last_offset FROM ${clickhouse.database}.sink_batches FINAL
       WHERE consumer_group = {group:String} AND topic = {topic:String} AND partition = {partition:UInt32} AND last_offset >= {from:UInt64}
       ORDER BY first_offset`,
      { group: options.groupId, topic, partition, from },
    )
    return rows.map((r) => ({ first: BigInt(r.first_offset), last: BigInt(r.last_offset) }))
  }

  /** Retries `fn` until it succeeds or the sink stops; audit data is never given up on. */
  async function persist(what: string, fn: () => Promise<void>, heartbeat?: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await fn()
        stats.failingSince = undefined
        return
      } catch (err) {
        stats.insertFailures += 1
        stats.failingSince ??= Date.now()
        if (stopping && attempt >= 3) throw err
        const wait = Math.min(5_000, 100 * 2 ** Math.min(attempt, 6))
        log.warn('lineage sink write failed; retrying', { what, attempt, retriable: isLedgerError(err) ? err.retriable : undefined, error: (err as Error).message, retryInMs: wait })
        await new Promise((r) => setTimeout(r, wait))
        await heartbeat?.().catch(() => undefined)
      }
    }
  }

  async function flushNow(includeOpen: boolean, heartbeat?: () => Promise<void>): Promise<void> {
    const work: { topic: string; partition: number; range: RangeBuffer<Item> }[] = []
    for (const p of partitions.values()) for (const range of p.ranges.take(includeOpen)) work.push({ topic: p.topic, partition: p.partition, range })
    if (work.length === 0) return
    const started = performance.now()
    log.debug('flush started', { ranges: work.length, records: work.reduce((n, w) => n + w.range.items.length, 0) })
    // 1. The batch log first: the bounds of every new range.
    const fresh = work.filter((w) => !w.range.redo)
    if (fresh.length > 0) {
      await persist('batch log', () =>
        clickhouse.insert(
          'sink_batches',
          fresh.map((w) => ({ consumer_group: options.groupId, topic: w.topic, partition: w.partition, first_offset: w.range.first.toString(), last_offset: w.range.last.toString(), rows: w.range.items.length })),
          { async_insert: 0 },
        ),
      heartbeat)
    }
    // 2. Poison records, with their reason, before their offsets can be committed.
    const deadLetters = work.flatMap((w) => w.range.items.flatMap((i) => (i.deadLetter ? [i.deadLetter] : [])))
    if (deadLetters.length > 0) {
      await persist('dead letters', async () => {
        await producer!.send({ topic: options.deadLetterTopic, acks: -1, messages: deadLetters })
      }, heartbeat)
      stats.deadLettered += deadLetters.length
    }
    // 3. The rows, one insert per range and table, each with its range's token.
    let rows = 0
    for (const w of work) {
      const byTable = new Map<string, Record<string, unknown>[]>()
      for (const item of w.range.items) {
        for (const r of item.rows) {
          let list = byTable.get(r.table)
          if (list === undefined) byTable.set(r.table, (list = []))
          list.push(r.row)
        }
      }
      const token = rangeToken(options.groupId, w.topic, w.partition, w.range)
      for (const [table, tableRows] of byTable) {
        await persist(`insert into ${table}`, () => clickhouse.insert(table, tableRows, { ...INSERT_SETTINGS, insert_deduplication_token: `${token}/${table}` }), heartbeat)
        rows += tableRows.length
      }
      if (w.range.redo) stats.redoneRanges += 1
    }
    // 4. Offsets. A commit that fails (a rebalance took the partition) is left to the next owner,
    // which redoes the logged range under the same token.
    const commits = new Map<string, { topic: string; partition: number; offset: string }>()
    for (const w of work) commits.set(`${w.topic}/${w.partition}`, { topic: w.topic, partition: w.partition, offset: (w.range.last + 1n).toString() })
    try {
      await consumer?.consumer.commitOffsets([...commits.values()])
    } catch (err) {
      log.warn('offset commit failed; the logged ranges will be redone by whoever owns the partitions next', { error: (err as Error).message })
    }
    stats.rows += rows
    stats.flushes += 1
    stats.lastFlushMs = Math.round(performance.now() - started)
    stats.lastFlushAt = Date.now()
  }

  let activeBatch: Promise<void> = Promise.resolve()
  function eachBatch(payload: EachBatchPayload): Promise<void> {
    const run = handleBatch(payload)
    activeBatch = run.catch(() => undefined)
    return run
  }

  async function handleBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    // Once stopping, records are left unread: they stay uncommitted and are read again next start.
    if (batch.messages.length === 0 || stopping) return
    const key = `${batch.topic}/${batch.partition}`
    const source = sources.get(batch.topic)
    if (source === undefined) return
    let state = partitions.get(key)
    if (state === undefined) {
      // First records of this partition since we joined: redo whatever the batch log holds past them.
      const from = batch.messages[0]!.offset
      const redo = await exclusive(() => loggedRanges(batch.topic, batch.partition, from))
      if (redo.length > 0) log.info('redoing logged ranges after a restart or rebalance', { topic: batch.topic, partition: batch.partition, ranges: redo.map((r) => `${r.first}-${r.last}`) })
      state = { topic: batch.topic, partition: batch.partition, ranges: new PartitionRanges<Item>(redo) }
      partitions.set(key, state)
    }
    for (const message of batch.messages) {
      if (!isRunning() || isStale() || stopping) break
      const position: KafkaPosition = { topic: batch.topic, partition: batch.partition, offset: message.offset }
      let item: Item
      try {
        item = { rows: await source.toRows(message, position) }
      } catch (err) {
        item = {
          rows: [],
          deadLetter: {
            key: message.key,
            value: message.value,
            headers: { ...message.headers, 'ledger-dlq-reason': (err as Error).message.slice(0, 1_000), 'ledger-dlq-source': `${batch.topic}/${batch.partition}/${message.offset}`, 'ledger-dlq-processor': 'lineage-sink' },
          },
        }
      }
      state.ranges.add(BigInt(message.offset), item)
      stats.records += 1
      resolveOffset(message.offset)
    }
    stats.lag[key] = Math.max(0, Number(BigInt(batch.highWatermark) - BigInt(batch.lastOffset()) - 1n))
    if (buffered() >= options.maxBatchRecords) await exclusive(() => flushNow(true, heartbeat))
    await heartbeat()
  }

  return {
    stats,
    async start() {
      producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
      await producer.connect()
      const sessionTimeout = options.sessionTimeoutMs ?? 30_000
      consumer = createStoppableConsumer(kafka, {
        groupId: options.groupId,
        readUncommitted: false,
        maxWaitTimeInMs: 100,
        maxBytesPerPartition: 4 * 1024 * 1024,
        sessionTimeout,
        heartbeatInterval: Math.floor(sessionTimeout / 5),
      })
      // A rejoin restarts every partition from its committed offset: what is buffered but not yet
      // flushed would arrive again, so it is dropped, and each partition checks the batch log anew.
      consumer.consumer.on(consumer.consumer.events.GROUP_JOIN, () => partitions.clear())
      await consumer.consumer.connect()
      for (const topic of sources.keys()) await consumer.consumer.subscribe({ topic, fromBeginning: true })
      await consumer.consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch })
      timer = setInterval(() => {
        if (buffered() > 0) void exclusive(() => flushNow(true)).catch((err: unknown) => log.error('timed flush failed', { error: (err as Error).message }))
      }, options.lingerMs)
    },
    flush: () => exclusive(() => flushNow(true)),
    async stop() {
      stopping = true
      if (timer) clearInterval(timer)
      // Stop fetching first and let the open batch finish, then flush and commit what was read
      // while still a member of the group, then leave.
      consumer?.consumer.pause([...sources.keys()].map((topic) => ({ topic })))
      await activeBatch
      await exclusive(() => flushNow(true)).catch((err: unknown) => log.error('final flush failed; the unflushed ranges will be read again', { error: (err as Error).message }))
      await consumer?.stop()
      await producer?.disconnect()
    },
  }
}

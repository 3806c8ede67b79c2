import type { EachBatchPayload, Kafka, KafkaMessage, Message, Producer } from 'kafkajs'
import type { LedgerClickHouse } from '../../services/shared/clickhouse.ts'
import { isLedgerError } from '../../services/shared/errors.ts'
import { createStoppableConsumer, type StoppableConsumer } from '../../services/shared/kafka.ts'
import type { Logger } from '../../services/shared/log.ts'
import { randomUUID } from 'node:crypto'
import { flushToken, PartitionBuffer, planRecovery, type LoggedRange } from './domain/batch-log.ts'
import { readRanges } from './range-reader.ts'
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
  /** Logged flushes found unfinished after a restart or rebalance and redone whole. */
  redoneFlushes: number
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
  const stats: LineageSinkStats = { records: 0, rows: 0, flushes: 0, redoneFlushes: 0, deadLettered: 0, insertFailures: 0, failingSince: undefined, lastFlushMs: 0, lastFlushAt: undefined, lag: {} }
  const partitions = new Map<string, { topic: string; partition: number; buffer: PartitionBuffer<Item> }>()
  const db = clickhouse.database
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
    for (const p of partitions.values()) n += p.buffer.size
    return n
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

  interface FlushRange {
    topic: string
    partition: number
    first: bigint
    last: bigint
    items: Item[]
  }

  const logRows = (flushId: string, ranges: readonly FlushRange[], done: 0 | 1) =>
    ranges.map((r) => ({ consumer_group: options.groupId, topic: r.topic, partition: r.partition, first_offset: r.first.toString(), last_offset: r.last.toString(), flush_id: flushId, rows: r.items.length, done }))

  /**
   * Writes one flush: its ranges logged, dead letters produced, one insert per table under the
   * flush's token, its ranges logged done. A redo passes the logged flush id and ranges rebuilt
   * from Kafka, so the token, and so ClickHouse's deduplication, is the same as the first time.
   */
  async function writeFlush(flushId: string, ranges: readonly FlushRange[], heartbeat?: () => Promise<void>): Promise<number> {
    const byTable = new Map<string, Record<string, unknown>[]>()
    const deadLetters: Message[] = []
    for (const r of ranges) {
      for (const item of r.items) {
        if (item.deadLetter) deadLetters.push(item.deadLetter)
        for (const row of item.rows) {
          let list = byTable.get(row.table)
          if (list === undefined) byTable.set(row.table, (list = []))
          list.push(row.row)
        }
      }
    }
    if (deadLetters.length > 0) {
      await persist('dead letters', async () => {
        await producer!.send({ topic: options.deadLetterTopic, acks: -1, messages: deadLetters })
      }, heartbeat)
      stats.deadLettered += deadLetters.length
    }
    let rows = 0
    for (const [table, tableRows] of byTable) {
      await persist(`insert into ${table}`, () => clickhouse.insert(table, tableRows, { ...INSERT_SETTINGS, insert_deduplication_token: flushToken(options.groupId, flushId, table) }), heartbeat)
      rows += tableRows.length
      stats.rows += tableRows.length
    }
    await persist('batch log (done)', () => clickhouse.insert('sink_log', logRows(flushId, ranges, 1), { async_insert: 0 }), heartbeat)
    return rows
  }

  async function flushNow(heartbeat?: () => Promise<void>): Promise<void> {
    const ranges: FlushRange[] = []
    for (const p of partitions.values()) {
      const r = p.buffer.take()
      if (r) ranges.push({ topic: p.topic, partition: p.partition, ...r })
    }
    if (ranges.length === 0) return
    const started = performance.now()
    const flushId = randomUUID()
    log.debug('flush started', { flushId, ranges: ranges.length, records: ranges.reduce((n, r) => n + r.items.length, 0) })
    // The batch log first: the bounds of every range under this flush's id.
    await persist('batch log', () => clickhouse.insert('sink_log', logRows(flushId, ranges, 0), { async_insert: 0 }), heartbeat)
    await writeFlush(flushId, ranges, heartbeat)
    // A commit that fails (a rebalance took a partition) is left to the next owner, which finds
    // the flush done in the log and skips its ranges.
    try {
      await consumer?.consumer.commitOffsets(ranges.map((r) => ({ topic: r.topic, partition: r.partition, offset: (r.last + 1n).toString() })))
    } catch (err) {
      log.warn('offset commit failed; the next owner of these partitions skips what the log says is done', { error: (err as Error).message })
    }
    stats.flushes += 1
    stats.lastFlushMs = Math.round(performance.now() - started)
    stats.lastFlushAt = Date.now()
  }

  async function loggedFrom(topic: string, partition: number, from: string): Promise<LoggedRange[]> {
    const rows = await clickhouse.query<{ flush_id: string; first_offset: string; last_offset: string; done: number }>(
      `SELECT flush_id, first_offset, last_offset, done FROM ${db}.sink_log FINAL
       WHERE consumer_group = {group:String} AND topic = {topic:String} AND partition = {partition:UInt32} AND last_offset >= {from:UInt64}
       ORDER BY first_offset`,
      { group: options.groupId, topic, partition, from },
    )
    return rows.map((r) => ({ flushId: r.flush_id, topic, partition, first: BigInt(r.first_offset), last: BigInt(r.last_offset), done: Number(r.done) === 1 }))
  }

  /** Rebuilds a logged flush from Kafka, every range of it, and writes it again under its token. */
  async function redo(flushId: string, heartbeat: () => Promise<void>): Promise<void> {
    const logged = await clickhouse.query<{ topic: string; partition: number; first_offset: string; last_offset: string }>(
      `SELECT topic, partition, first_offset, last_offset FROM ${db}.sink_log FINAL WHERE consumer_group = {group:String} AND flush_id = {flush:String} ORDER BY topic, partition`,
      { group: options.groupId, flush: flushId },
    )
    const wanted = logged.map((r) => ({ topic: r.topic, partition: Number(r.partition), first: BigInt(r.first_offset), last: BigInt(r.last_offset) }))
    const messages = await readRanges(kafka, wanted, { groupId: `${options.groupId}.redo.${randomUUID()}`, heartbeat })
    const ranges: FlushRange[] = []
    for (const w of wanted) {
      const items: Item[] = []
      for (const message of messages.get(`${w.topic}/${w.partition}`) ?? []) items.push(await toItem(w.topic, w.partition, message))
      ranges.push({ ...w, items })
    }
    await writeFlush(flushId, ranges, heartbeat)
    stats.redoneFlushes += 1
    log.info('redid a logged flush after a restart or rebalance', { flushId, ranges: wanted.map((w) => `${w.topic}/${w.partition}:${w.first}-${w.last}`) })
  }

  async function toItem(topic: string, partition: number, message: KafkaMessage): Promise<Item> {
    const source = sources.get(topic)!
    try {
      return { rows: await source.toRows(message, { topic, partition, offset: message.offset }) }
    } catch (err) {
      // Poison: never dropped, never blocking. It goes to the dead-letter topic with its reason.
      return {
        rows: [],
        deadLetter: {
          key: message.key,
          value: message.value,
          headers: { ...message.headers, 'ledger-dlq-reason': (err as Error).message.slice(0, 1_000), 'ledger-dlq-source': `${topic}/${partition}/${message.offset}`, 'ledger-dlq-processor': 'lineage-sink' },
        },
      }
    }
  }

  let inFlight: Promise<void> | undefined
  function startFlush(heartbeat?: () => Promise<void>): Promise<void> {
    if (inFlight !== undefined) return inFlight
    const run = exclusive(() => flushNow(heartbeat))
      .catch((err: unknown) => log.error('flush failed; its ranges stay uncommitted and are read again', { error: (err as Error).message }))
      .finally(() => {
        if (inFlight === run) inFlight = undefined
      })
    inFlight = run
    return run
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
    if (!sources.has(batch.topic)) return
    let state = partitions.get(key)
    if (state === undefined) {
      // First records of this partition since we joined: finish whatever the batch log holds past them.
      const from = batch.messages[0]!.offset
      const skipThrough = await exclusive(async () => {
        const plan = planRecovery(await loggedFrom(batch.topic, batch.partition, from), BigInt(from))
        for (const flushId of plan.redo) await redo(flushId, heartbeat)
        return plan.skipThrough
      })
      if (skipThrough !== undefined) {
        log.info('skipping records the batch log has stored', { topic: batch.topic, partition: batch.partition, from, through: skipThrough.toString() })
        await consumer?.consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: (skipThrough + 1n).toString() }]).catch(() => undefined)
      }
      state = { topic: batch.topic, partition: batch.partition, buffer: new PartitionBuffer<Item>(skipThrough) }
      partitions.set(key, state)
    }
    for (const message of batch.messages) {
      if (!isRunning() || isStale() || stopping) break
      const offset = BigInt(message.offset)
      if (!state.buffer.skips(offset)) {
        state.buffer.add(offset, await toItem(batch.topic, batch.partition, message))
        stats.records += 1
      }
      resolveOffset(message.offset)
    }
    stats.lag[key] = Math.max(0, Number(BigInt(batch.highWatermark) - BigInt(batch.lastOffset()) - 1n))
    if (buffered() >= options.maxBatchRecords) {
      // Reading goes on while a flush runs (decoding here, inserting in ClickHouse's threads);
      // a second full buffer waits for the flush before it, so at most two are held.
      if (inFlight !== undefined) await inFlight
      void startFlush(heartbeat)
    }
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
        if (buffered() > 0 && inFlight === undefined) void startFlush()
      }, options.lingerMs)
    },
    flush: () => exclusive(() => flushNow()),
    async stop() {
      stopping = true
      if (timer) clearInterval(timer)
      // Stop fetching first and let the open batch finish, then flush and commit what was read
      // while still a member of the group, then leave.
      consumer?.consumer.pause([...sources.keys()].map((topic) => ({ topic })))
      await activeBatch
      await exclusive(() => flushNow()).catch((err: unknown) => log.error('final flush failed; the unflushed ranges will be read again', { error: (err as Error).message }))
      await consumer?.stop()
      await producer?.disconnect()
    },
  }
}

import type { EachBatchPayload, Kafka, Message, Producer } from 'kafkajs'
import { createStoppableConsumer, readToEnd, type StoppableConsumer } from '../../services/shared/kafka.ts'
import type { EventCodec } from '../../services/shared/event-codec.ts'
import type { Logger } from '../../services/shared/log.ts'
import type { LedgerEventView } from '../domain-event.ts'
import { applyEvent, type Processor } from './processor.ts'
import { ChangeloggingStore, InMemoryStore, type ChangelogRecord } from './store.ts'

/** One processor of a runner, with the compacted topic holding its latest state per key. */
export interface ProcessorStage<S, O> {
  processor: Processor<S, O>
  changelogTopic: string
}

export interface ProcessorGroupRunnerOptions<O> {
  kafka: Kafka
  /** Processors fed by the same input: each event is decoded once and applied to each in turn. (Their states differ, hence `any`.) */
  stages: ProcessorStage<any, O>[]
  codec: Pick<EventCodec, 'decode'>
  inputTopic: string
  /** Where a record that cannot be decoded or processed goes, with its reason. */
  deadLetterTopic: string
  groupId: string
  transactionalId: string
  /** Where an emit goes, encoded. Called once per emit that survives coalescing. */
  route(emit: O): ProcessorOutput
  /**
   * Emits with the same coalescing key within a batch (state snapshots bound for a compacted
   * topic) are written once, the last of them, in the place of the last: the earlier ones are
   * never encoded. Undefined: every emit is written.
   */
  coalesceKey?(emit: O): string | undefined
  /** Awaited before an event is applied: e.g. wait until a contract the event names is readable. */
  beforeApply?(event: LedgerEventView): Promise<void>
  /** Consumer session timeout: how long a killed instance holds its partitions. Default 10 s. */
  sessionTimeoutMs?: number
  /** How long reading the changelog at start may take before start fails. Default 120 s. */
  restoreTimeoutMs?: number
  logger: Logger
}

export interface ProcessorOutput {
  topic: string
  message: Message
}

export interface ProcessorStats {
  /** Input records handled, dead-lettered ones included. */
  processed: number
  emitted: number
  deadLettered: number
  restored: number
}

export interface ProcessorRunner<S> {
  start(): Promise<void>
  stop(): Promise<void>
  readonly store: ChangeloggingStore<S>
  readonly stats: ProcessorStats
}

export interface ProcessorGroupRunner {
  start(): Promise<void>
  stop(): Promise<void>
  /** Each processor's store and counters, by processor name. */
  readonly processors: Record<string, { readonly store: ChangeloggingStore<unknown>; readonly stats: ProcessorStats }>
}

export type ProcessorRunnerOptions<S, O> = Omit<ProcessorGroupRunnerOptions<O>, 'stages'> & { processor: Processor<S, O>; changelogTopic: string }

/** A runner of one processor (see createProcessorGroupRunner). */
export function createProcessorRunner<S, O>(options: ProcessorRunnerOptions<S, O>): ProcessorRunner<S> {
  const { processor, changelogTopic, ...rest } = options
  const group = createProcessorGroupRunner<O>({ ...rest, stages: [{ processor, changelogTopic }] })
  const only = group.processors[processor.name]!
  return { start: () => group.start(), stop: () => group.stop(), store: only.store as ChangeloggingStore<S>, stats: only.stats }
}

/**
 * The thin runner around pure processors that read the same input. Start: rebuild each store
 * from its changelog topic (read_committed, to its end). Then per batch: decode each event once,
 * step every processor, and write the outputs, every changelog and the consumed offsets in one
 * Kafka transaction. A crash anywhere aborts the open transaction, so after a restart the stores
 * and the offsets agree, and the state equals a replay. Several processors in one runner share one
 * consumer, one decode and one transaction per batch (three runners of their own caught up at a
 * third of the rate on the 2-core machine).
 */
export function createProcessorGroupRunner<O>(options: ProcessorGroupRunnerOptions<O>): ProcessorGroupRunner {
  const { kafka, logger } = options
  const names = options.stages.map((s) => s.processor.name)
  const log = logger.child({ component: 'processor-runner', processors: names.join(',') })
  const stages = options.stages.map((stage) => ({
    ...stage,
    store: new ChangeloggingStore<unknown>(new InMemoryStore<unknown>()),
    stats: { processed: 0, emitted: 0, deadLettered: 0, restored: 0 } as ProcessorStats,
  }))
  let consumer: StoppableConsumer | undefined
  let producer: Producer | undefined

  /**
   * Rebuilds a store from its changelog (read_committed, to the end it has now). Called after
   * this instance's transactional producer fenced any earlier one, so no transaction of ours is
   * open or half-committed on the changelog: its committed end is final.
   */
  async function restore(stage: (typeof stages)[number]): Promise<void> {
    const records: ChangelogRecord<unknown>[] = []
    await readToEnd(kafka, {
      topic: stage.changelogTopic,
      groupId: `${options.groupId}.restore.${stage.processor.name}.${Date.now()}`,
      readCommitted: true,
      timeoutMs: options.restoreTimeoutMs ?? 120_000,
      onMessage: (message) => {
        if (message.key === null) return
        records.push({ key: message.key.toString('utf8'), value: message.value === null ? null : (JSON.parse(message.value.toString('utf8')) as unknown) })
      },
    })
    stage.store.restore(records)
    stage.stats.restored = records.length
    log.info('state restored from the changelog', { processor: stage.processor.name, records: records.length, keys: stage.store.size })
  }

  const deadLetter = (message: { key: Buffer | null; value: Buffer | null; headers?: Message['headers'] }, source: string, processor: string, err: unknown): Message => ({
    key: message.key,
    value: message.value,
    headers: { ...message.headers, 'ledger-dlq-reason': (err as Error).message.slice(0, 1_000), 'ledger-dlq-source': source, 'ledger-dlq-processor': processor },
  })

  async function handleBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (producer === undefined || batch.messages.length === 0) return
    // Emits in order; a coalesced one is moved to the end under its key, replacing the earlier.
    const emitted = new Map<string | number, { emit: O; message: (typeof batch.messages)[number]; source: string; stage: number }>()
    let emitCount = 0
    const deadLetters: Message[] = []
    const counts = stages.map(() => ({ processed: 0, emitted: 0, deadLettered: 0 }))
    let last: (typeof batch.messages)[number] | undefined
    for (const message of batch.messages) {
      if (!isRunning() || isStale()) break
      last = message
      const source = `${batch.topic}/${batch.partition}/${message.offset}`
      let event: LedgerEventView
      try {
        const decoded = await options.codec.decode(message.value ?? Buffer.alloc(0))
        event = decoded.json as LedgerEventView
        await options.beforeApply?.(event)
      } catch (err) {
        // Poison: never dropped, never blocking. It goes to the dead-letter topic with its reason,
        // once per processor it could not reach.
        for (const [i, stage] of stages.entries()) {
          deadLetters.push(deadLetter(message, source, stage.processor.name, err))
          counts[i]!.processed += 1
          counts[i]!.deadLettered += 1
        }
        continue
      }
      for (const [i, stage] of stages.entries()) {
        counts[i]!.processed += 1
        try {
          const emits = applyEvent(stage.processor, stage.store, event)
          for (const e of emits) {
            const key = options.coalesceKey?.(e) ?? emitCount
            emitCount += 1
            emitted.delete(key)
            emitted.set(key, { emit: e, message, source, stage: i })
          }
          counts[i]!.emitted += emits.length
        } catch (err) {
          deadLetters.push(deadLetter(message, source, stage.processor.name, err))
          counts[i]!.deadLettered += 1
        }
      }
    }
    if (last === undefined) return
    const routed: ProcessorOutput[] = []
    for (const { emit, message, source, stage } of emitted.values()) {
      try {
        routed.push(options.route(emit))
      } catch (err) {
        // An emit that cannot be encoded is a bug, but it must not stop the partition: the event
        // that caused it goes to the dead-letter topic with the reason.
        deadLetters.push(deadLetter(message, source, stages[stage]!.processor.name, err))
        counts[stage]!.deadLettered += 1
      }
    }
    const outputs = byTopic(routed)
    const changelogs = stages.map((stage) => ({ topic: stage.changelogTopic, records: stage.store.drain() }))
    // A transaction that does not finish is logged every 10 s with the step it is on: a stuck
    // processor is otherwise silent (its consumer just stops committing).
    let step = 'begin'
    const txnStarted = Date.now()
    const watchdog = setInterval(() => log.warn('a batch transaction is taking long', { step, ms: Date.now() - txnStarted, topic: batch.topic, partition: batch.partition, events: batch.messages.length }), 10_000)
    const txn = await producer.transaction()
    try {
      for (const [topic, messages] of outputs) {
        step = `send ${topic}`
        await txn.send({ topic, messages })
      }
      if (deadLetters.length > 0) {
        step = 'send dead letters'
        await txn.send({ topic: options.deadLetterTopic, messages: deadLetters })
      }
      for (const c of changelogs) {
        if (c.records.length === 0) continue
        step = `send changelog ${c.topic}`
        await txn.send({ topic: c.topic, messages: c.records.map((r) => ({ key: r.key, value: r.value === null ? null : JSON.stringify(r.value) })) })
      }
      const offsets = { consumerGroupId: options.groupId, topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() }] }] }
      // kafkajs retries CONCURRENT_TRANSACTIONS on sends but not on AddOffsetsToTxn, which is the
      // first request of a transaction when a batch wrote nothing else.
      step = 'send offsets'
      await retryConcurrentTransactions(() => txn.sendOffsets(offsets))
      step = 'commit'
      await txn.commit()
    } catch (err) {
      // The batch is redelivered from the last committed offset, so the stores must forget what
      // this batch did to them, or the redelivery would be counted twice.
      for (const stage of stages) stage.store.rollback()
      await txn.abort().catch(() => undefined)
      log.warn('a batch was rolled back; it is processed again', { topic: batch.topic, partition: batch.partition, offset: batch.messages[0]!.offset, step, error: err })
      throw err
    } finally {
      clearInterval(watchdog)
    }
    for (const [i, stage] of stages.entries()) {
      stage.store.commit()
      stage.stats.processed += counts[i]!.processed
      stage.stats.emitted += counts[i]!.emitted
      stage.stats.deadLettered += counts[i]!.deadLettered
    }
    resolveOffset(last.offset)
    await heartbeat()
  }

  return {
    processors: Object.fromEntries(stages.map((s) => [s.processor.name, { store: s.store, stats: s.stats }])),
    async start() {
      // Fence first. InitProducerId bumps the epoch of our transactional id, which fences an
      // earlier instance (a zombie's writes are refused from now on) and makes the coordinator
      // finish that instance's last transaction: abort it if it was open, complete it if its
      // commit was already decided. kafkajs retries CONCURRENT_TRANSACTIONS until that is done.
      // Restoring before this could miss a commit whose markers were still being written, while
      // the offsets the consumer resumes from would include it. (kafkajs sends InitProducerId on
      // the first transaction, not on connect; a transaction with nothing in it ends locally.)
      producer = kafka.producer({ transactionalId: options.transactionalId, idempotent: true, maxInFlightRequests: 1, retry: TRANSACTIONAL_RETRY })
      await producer.connect()
      await (await producer.transaction()).abort()
      for (const stage of stages) await restore(stage)
      const sessionTimeout = options.sessionTimeoutMs ?? 10_000
      consumer = createStoppableConsumer(kafka, { groupId: options.groupId, readUncommitted: false, maxWaitTimeInMs: 50, sessionTimeout, heartbeatInterval: Math.floor(sessionTimeout / 5) })
      await consumer.consumer.connect()
      await consumer.consumer.subscribe({ topic: options.inputTopic, fromBeginning: true })
      await consumer.consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: handleBatch })
    },
    async stop() {
      // Stop consuming first (the open batch finishes its transaction), then close the producer.
      await consumer?.stop()
      await producer?.disconnect()
    },
  }
}

/**
 * Retries of the transactional producer. Back-to-back transactions meet CONCURRENT_TRANSACTIONS
 * while the coordinator writes the previous commit's markers (a few ms on a healthy broker); the
 * Java producer retries that after 20 ms (KAFKA-5477), and so do we, instead of the client's
 * default 100 ms, which adds that much to every transaction that meets it.
 */
const TRANSACTIONAL_RETRY = { initialRetryTime: 20, maxRetryTime: 2_000, retries: 12 }

async function retryConcurrentTransactions<T>(fn: () => Promise<T>, attempts = 12): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn()
    } catch (err) {
      if ((err as { type?: string }).type !== 'CONCURRENT_TRANSACTIONS' || i >= attempts - 1) throw err
      await new Promise((r) => setTimeout(r, Math.min(20 * 2 ** i, 2_000)))
    }
  }
}

/** Groups outputs by topic, in emit order within each. */
function byTopic(outputs: ProcessorOutput[]): Map<string, Message[]> {
  const topics = new Map<string, Message[]>()
  for (const o of outputs) {
    const messages = topics.get(o.topic)
    if (messages === undefined) topics.set(o.topic, [o.message])
    else messages.push(o.message)
  }
  return topics
}

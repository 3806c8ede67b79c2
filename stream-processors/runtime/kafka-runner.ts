import type { EachBatchPayload, Kafka, Message, Producer } from 'kafkajs'
import { createStoppableConsumer, readToEnd, type StoppableConsumer } from '../../services/shared/kafka.ts'
import type { EventCodec } from '../../services/shared/event-codec.ts'
import type { Logger } from '../../services/shared/log.ts'
import type { LedgerEventView } from '../domain-event.ts'
import { applyEvent, type Processor } from './processor.ts'
import { ChangeloggingStore, InMemoryStore, type ChangelogRecord } from './store.ts'

export interface ProcessorRunnerOptions<S, O> {
  kafka: Kafka
  processor: Processor<S, O>
  codec: Pick<EventCodec, 'decode'>
  inputTopic: string
  /** Compacted topic holding the latest state per key. */
  changelogTopic: string
  /** Where a record that cannot be decoded or processed goes, with its reason. */
  deadLetterTopic: string
  groupId: string
  transactionalId: string
  /**
   * Where an emit goes. `latestOnly` outputs (state snapshots on a compacted topic) are coalesced
   * per topic and key within a batch: only the last one is written.
   */
  route(emit: O): ProcessorOutput
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
  latestOnly?: boolean
}

export interface ProcessorRunner<S> {
  start(): Promise<void>
  stop(): Promise<void>
  readonly store: ChangeloggingStore<S>
  readonly stats: { processed: number; emitted: number; deadLettered: number; restored: number }
}

/**
 * The thin runner around a pure processor. Start: rebuild the store from the changelog topic
 * (read_committed, to its end). Then per batch: decode, step, and write the outputs, the
 * changelog and the consumed offsets in one Kafka transaction. A crash anywhere aborts the open
 * transaction, so after a restart the store and the offsets agree, and the state equals a replay.
 */
export function createProcessorRunner<S, O>(options: ProcessorRunnerOptions<S, O>): ProcessorRunner<S> {
  const { kafka, processor, logger } = options
  const log = logger.child({ component: 'processor-runner', processor: processor.name })
  const store = new ChangeloggingStore<S>(new InMemoryStore<S>())
  const stats = { processed: 0, emitted: 0, deadLettered: 0, restored: 0 }
  let consumer: StoppableConsumer | undefined
  let producer: Producer | undefined

  /**
   * Rebuilds the store from the changelog (read_committed, to the end it has now). Called after
   * this instance's transactional producer fenced any earlier one, so no transaction of ours is
   * open or half-committed on the changelog: its committed end is final.
   */
  async function restore(): Promise<void> {
    const records: ChangelogRecord<S>[] = []
    await readToEnd(kafka, {
      topic: options.changelogTopic,
      groupId: `${options.groupId}.restore.${Date.now()}`,
      readCommitted: true,
      timeoutMs: options.restoreTimeoutMs ?? 120_000,
      onMessage: (message) => {
        if (message.key === null) return
        records.push({ key: message.key.toString('utf8'), value: message.value === null ? null : (JSON.parse(message.value.toString('utf8')) as S) })
      },
    })
    store.restore(records)
    stats.restored = records.length
    log.info('state restored from the changelog', { records: records.length, keys: store.size })
  }

  async function handleBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (producer === undefined || batch.messages.length === 0) return
    const outputs: ProcessorOutput[] = []
    const deadLetters: Message[] = []
    let last: (typeof batch.messages)[number] | undefined
    for (const message of batch.messages) {
      if (!isRunning() || isStale()) break
      last = message
      try {
        const decoded = await options.codec.decode(message.value ?? Buffer.alloc(0))
        const event = decoded.json as LedgerEventView
        await options.beforeApply?.(event)
        for (const e of applyEvent(processor, store, event)) outputs.push(options.route(e))
      } catch (err) {
        // Poison: never dropped, never blocking. It goes to the dead-letter topic with its reason.
        deadLetters.push({
          key: message.key,
          value: message.value,
          headers: { ...message.headers, 'ledger-dlq-reason': (err as Error).message.slice(0, 1_000), 'ledger-dlq-source': `${batch.topic}/${batch.partition}/${message.offset}`, 'ledger-dlq-processor': processor.name },
        })
      }
    }
    if (last === undefined) return
    const changelog = store.drain()
    // A transaction that does not finish is logged every 10 s with the step it is on: a stuck
    // processor is otherwise silent (its consumer just stops committing).
    let step = 'begin'
    const txnStarted = Date.now()
    const watchdog = setInterval(() => log.warn('a batch transaction is taking long', { step, ms: Date.now() - txnStarted, topic: batch.topic, partition: batch.partition, events: batch.messages.length }), 10_000)
    const txn = await producer.transaction()
    try {
      for (const [topic, messages] of byTopic(outputs)) {
        step = `send ${topic}`
        await txn.send({ topic, messages })
      }
      if (deadLetters.length > 0) {
        step = 'send dead letters'
        await txn.send({ topic: options.deadLetterTopic, messages: deadLetters })
      }
      if (changelog.length > 0) {
        step = 'send changelog'
        await txn.send({ topic: options.changelogTopic, messages: changelog.map((r) => ({ key: r.key, value: r.value === null ? null : JSON.stringify(r.value) })) })
      }
      const offsets = { consumerGroupId: options.groupId, topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() }] }] }
      // kafkajs retries CONCURRENT_TRANSACTIONS on sends but not on AddOffsetsToTxn, which is the
      // first request of a transaction when a batch wrote nothing else.
      step = 'send offsets'
      await retryConcurrentTransactions(() => txn.sendOffsets(offsets))
      step = 'commit'
      await txn.commit()
    } catch (err) {
      // The batch is redelivered from the last committed offset, so the store must forget what
      // this batch did to it, or the redelivery would be counted twice.
      store.rollback()
      await txn.abort().catch(() => undefined)
      log.warn('a batch was rolled back; it is processed again', { topic: batch.topic, partition: batch.partition, offset: batch.messages[0]!.offset, step, error: err })
      throw err
    } finally {
      clearInterval(watchdog)
    }
    store.commit()
    stats.processed += Number(BigInt(last.offset) - BigInt(batch.messages[0]!.offset)) + 1
    stats.emitted += outputs.length
    stats.deadLettered += deadLetters.length
    resolveOffset(last.offset)
    await heartbeat()
  }

  return {
    store,
    stats,
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
      await restore()
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

/** Groups outputs by topic in emit order; a `latestOnly` output replaces an earlier one with its key. */
function byTopic(outputs: ProcessorOutput[]): Map<string, Message[]> {
  const topics = new Map<string, Map<string, Message>>()
  let n = 0
  for (const o of outputs) {
    let messages = topics.get(o.topic)
    if (messages === undefined) topics.set(o.topic, (messages = new Map()))
    const key = o.latestOnly === true && o.message.key !== null && o.message.key !== undefined ? `latest:${o.message.key.toString()}` : `#${n++}`
    messages.delete(key)
    messages.set(key, o.message)
  }
  return new Map([...topics].map(([topic, messages]) => [topic, [...messages.values()]]))
}

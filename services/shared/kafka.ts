import { Kafka, logLevel, type Consumer, type ConsumerConfig, type KafkaConfig as KafkaJsConfig, type KafkaMessage, type LogEntry } from 'kafkajs'
import { LedgerError } from './errors.ts'
import { installReadCommittedFix } from './kafkajs-read-committed.ts'
import type { Logger } from './log.ts'

// Every Kafka client of ours is made here, so every read_committed consumer gets the fix.
installReadCommittedFix()

const LEVELS: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
}

export interface CreateKafkaOptions {
  brokers: string[]
  clientId: string
  logger: Logger
  /** kafkajs' own log level; WARN by default because INFO logs every group join. */
  level?: logLevel
  retry?: KafkaJsConfig['retry']
}

/** kafkajs' text for CONCURRENT_TRANSACTIONS (protocol error 51). */
export const CONCURRENT_TRANSACTIONS_MESSAGE = 'The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing'

/**
 * CONCURRENT_TRANSACTIONS is the transaction coordinator saying "not yet": EndTxn answers once the
 * commit is decided, and the coordinator writes the commit markers afterwards, so the first
 * AddPartitionsToTxn of a back-to-back transaction (or an InitProducerId while an earlier
 * instance's transaction is being aborted) is refused until the markers are written, and the
 * client is expected to retry (the Java producer retries it after 20 ms: KAFKA-5477). kafkajs
 * retries it too, but logs each attempt twice at error level. Those two lines are demoted to
 * debug; if the retries run out, the send fails and that failure is still logged as an error.
 */
function isConcurrentTransactionsRetry(message: string, fields: Record<string, unknown>): boolean {
  return (
    message === `Failed to send messages: ${CONCURRENT_TRANSACTIONS_MESSAGE}` ||
    (/^Response (AddPartitionsToTxn|AddOffsetsToTxn|InitProducerId)\(/.test(message) && fields.error === CONCURRENT_TRANSACTIONS_MESSAGE)
  )
}

/** One kafkajs client per process, logging through our logger. */
export function createKafka(options: CreateKafkaOptions): Kafka {
  const log = options.logger.child({ component: 'kafkajs' })
  return new Kafka({
    clientId: options.clientId,
    brokers: options.brokers,
    logLevel: options.level ?? logLevel.WARN,
    retry: options.retry ?? { retries: 8, initialRetryTime: 100, maxRetryTime: 5000 },
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, ...rest } = entry
        const lvl = isConcurrentTransactionsRetry(message, rest) ? 'debug' : (LEVELS[level] ?? 'info')
        log[lvl](message, rest)
      },
  })
}

/**
 * Classifies a kafkajs failure at the adapter edge: callers see a LedgerError whose `retriable`
 * says whether trying again can help. Anything from the network or a broker is retriable.
 */
export function classifyKafkaError(err: unknown, context: { topic?: string } = {}): LedgerError {
  if (err instanceof LedgerError) return err
  const e = err as { name?: string; message?: string; retriable?: boolean }
  return new LedgerError('LEDGER_ERR_KAFKA_UNAVAILABLE', `Kafka: ${e.message ?? String(err)}`, { cause: err, context, retriable: true })
}

/** A kafkajs consumer whose `stop()` really ends it, crashed or not. */
export interface StoppableConsumer {
  readonly consumer: Consumer
  /** Disconnects; a restart kafkajs scheduled after a crash is refused, and a late rejoin is disconnected again. */
  stop(): Promise<void>
}

/**
 * kafkajs restarts a crashed consumer from a timer that `disconnect()` does not always cancel: a
 * crash handler still running when we disconnect arms the timer afterwards, and the restarted
 * consumer retries its broker forever, keeping the process alive
 * (https://github.com/tulios/kafkajs/issues/1721). Every consumer of ours is made here, so a
 * stopped consumer refuses to restart, and one that rejoined anyway is disconnected again.
 */
export function createStoppableConsumer(kafka: Kafka, config: ConsumerConfig): StoppableConsumer {
  let stopped = false
  const restartOnFailure = config.retry?.restartOnFailure
  const consumer = kafka.consumer({
    ...config,
    retry: { ...config.retry, restartOnFailure: async (err: Error) => !stopped && (restartOnFailure === undefined || (await restartOnFailure(err))) },
  })
  consumer.on(consumer.events.GROUP_JOIN, () => {
    if (stopped) void consumer.disconnect().catch(() => undefined)
  })
  return {
    consumer,
    async stop() {
      stopped = true
      await consumer.disconnect()
    },
  }
}

/**
 * The end offset (high watermark) of every partition of a topic that holds anything, taken now.
 * A reader has caught up with "now" once it consumed every such partition up to its end.
 */
export async function endOffsets(kafka: Kafka, topic: string): Promise<Map<number, bigint>> {
  const admin = kafka.admin()
  await admin.connect()
  try {
    const offsets = await admin.fetchTopicOffsets(topic)
    return new Map(offsets.filter((o) => BigInt(o.high) > BigInt(o.low)).map((o) => [o.partition, BigInt(o.high)]))
  } finally {
    await admin.disconnect()
  }
}

/**
 * Resolves once `consumer` has handled every partition of `topic` up to `ends`. Register it
 * before `consumer.run()`. The offsets of consumed messages cannot tell: a read_committed consumer
 * never sees transaction markers or aborted records, which take offsets too (the last offset of a
 * transactional topic is a commit marker). kafkajs reports, after each batch, the last offset the
 * batch covered, markers and aborted records included; that is what is compared. (kafkajs' FETCH
 * event cannot tell either: its `numberOfBatches` is always 0 since kafkajs 1.12.)
 */
export function caughtUp(consumer: Consumer, topic: string, ends: Map<number, bigint>): Promise<void> {
  const pending = new Map(ends)
  if (pending.size === 0) return Promise.resolve()
  return new Promise<void>((resolve) => {
    const off = consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      if (payload.topic !== topic) return
      const end = pending.get(payload.partition)
      if (end !== undefined && BigInt(payload.lastOffset) + 1n >= end) pending.delete(payload.partition)
      if (pending.size === 0) {
        off()
        resolve()
      }
    })
  })
}

export interface ReadToEndOptions {
  topic: string
  groupId: string
  /** Only committed transactional records (for topics written in transactions). */
  readCommitted: boolean
  /** Called for every record in partition order; may be async. */
  onMessage(message: KafkaMessage, partition: number): void | Promise<void>
  /** Fails with LEDGER_ERR_KAFKA_UNAVAILABLE if the end is not reached by then. Default 60 s. */
  timeoutMs?: number
}

/**
 * Reads a topic from its beginning to the end it had when called, then stops. Never ends early:
 * if the end is not reached in time (a read_committed reader stays behind a transaction that is
 * still open), it fails instead of returning part of the topic.
 */
export async function readToEnd(kafka: Kafka, options: ReadToEndOptions): Promise<void> {
  const ends = await endOffsets(kafka, options.topic)
  if (ends.size === 0) return
  // A crashed reader must not restart: it would read the topic again from its beginning.
  const { consumer, stop } = createStoppableConsumer(kafka, { groupId: options.groupId, readUncommitted: !options.readCommitted, maxWaitTimeInMs: 100, retry: { restartOnFailure: async () => false } })
  await consumer.connect()
  const timeoutMs = options.timeoutMs ?? 60_000
  let timer: NodeJS.Timeout | undefined
  try {
    await consumer.subscribe({ topic: options.topic, fromBeginning: true })
    const done = caughtUp(consumer, options.topic, ends)
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(
        () => reject(new LedgerError('LEDGER_ERR_KAFKA_UNAVAILABLE', `Kafka: ${options.topic} was not read to its end within ${timeoutMs} ms`, { context: { topic: options.topic }, retriable: true })),
        timeoutMs,
      )
      consumer.on(consumer.events.CRASH, ({ payload }) => reject(classifyKafkaError(payload.error, { topic: options.topic })))
      done.then(resolve, reject)
      consumer.run({ autoCommit: false, eachMessage: async ({ message, partition }) => options.onMessage(message, partition) }).catch(reject)
    })
  } finally {
    clearTimeout(timer)
    await stop()
  }
}

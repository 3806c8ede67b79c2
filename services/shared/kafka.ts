import { Kafka, logLevel, type Consumer, type ConsumerConfig, type KafkaConfig as KafkaJsConfig, type LogEntry } from 'kafkajs'
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

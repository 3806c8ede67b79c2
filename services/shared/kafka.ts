import { Kafka, logLevel, type KafkaConfig as KafkaJsConfig, type LogEntry } from 'kafkajs'
import { LedgerError } from './errors.ts'
import type { Logger } from './log.ts'

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
        log[LEVELS[level] ?? 'info'](message, rest)
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

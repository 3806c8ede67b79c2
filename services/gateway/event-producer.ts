import type { Kafka, Message, Producer } from 'kafkajs'
import { LedgerError } from '../shared/errors.ts'
import { classifyKafkaError } from '../shared/kafka.ts'
import type { Logger } from '../shared/log.ts'

export interface EventProducerOptions {
  kafka: Kafka
  topic: string
  logger: Logger
  /** How long the first request of a batch waits for others to join it. */
  lingerMs: number
  /** Most messages in one produce request (requests are never split across two). */
  maxBatchMessages: number
  /** A request not acknowledged within this is answered 503; it may still be stored (retry is safe). */
  ackTimeoutMs: number
}

export interface EventProducer {
  start(): Promise<void>
  /** Resolves once Kafka acknowledged every message (acks=all); rejects with a retriable LedgerError. */
  send(messages: Message[]): Promise<void>
  /** Flushes what is pending, then disconnects. */
  stop(): Promise<void>
  readonly stats: { sends: number; messages: number; failures: number }
}

interface Pending {
  messages: Message[]
  resolve: () => void
  reject: (err: Error) => void
}

/**
 * Coalesces concurrent requests into one idempotent, acks=all produce. One produce is in flight
 * at a time: with the idempotent producer that keeps sequence numbers simple, and requests that
 * arrive meanwhile form the next, larger batch, so batching grows with load by itself.
 */
export function createEventProducer(options: EventProducerOptions): EventProducer {
  const { kafka, topic, logger } = options
  const log = logger.child({ component: 'event-producer', topic })
  let producer: Producer | undefined
  let queue: Pending[] = []
  let inFlight: Promise<void> | undefined
  let lingerTimer: NodeJS.Timeout | undefined
  let stopping = false
  const stats = { sends: 0, messages: 0, failures: 0 }

  function schedule(): void {
    if (inFlight !== undefined || queue.length === 0) return
    const queued = queue.reduce((n, p) => n + p.messages.length, 0)
    if (queued >= options.maxBatchMessages || options.lingerMs <= 0 || stopping) {
      flush()
    } else if (lingerTimer === undefined) {
      lingerTimer = setTimeout(() => {
        lingerTimer = undefined
        if (inFlight === undefined) flush()
      }, options.lingerMs)
    }
  }

  function flush(): void {
    if (lingerTimer !== undefined) {
      clearTimeout(lingerTimer)
      lingerTimer = undefined
    }
    const batch: Pending[] = []
    let count = 0
    while (queue.length > 0 && (batch.length === 0 || count + queue[0]!.messages.length <= options.maxBatchMessages)) {
      const p = queue.shift()!
      batch.push(p)
      count += p.messages.length
    }
    if (batch.length === 0 || producer === undefined) return
    const messages = batch.flatMap((p) => p.messages)
    inFlight = producer
      .send({ topic, acks: -1, messages })
      .then(
        () => {
          stats.sends += 1
          stats.messages += messages.length
          for (const p of batch) p.resolve()
        },
        (err: unknown) => {
          stats.failures += 1
          log.warn('produce failed', { messages: messages.length, error: (err as Error).message })
          const failure = classifyKafkaError(err, { topic })
          for (const p of batch) p.reject(failure)
        },
      )
      .finally(() => {
        inFlight = undefined
        schedule()
      })
  }

  return {
    stats,
    async start() {
      producer = kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        // Bounded retries: a produce must fail in bounded time so requests get their 503.
        retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1_000 },
      })
      await producer.connect()
    },
    send(messages) {
      if (stopping) return Promise.reject(new LedgerError('LEDGER_ERR_KAFKA_UNAVAILABLE', 'the gateway is shutting down'))
      if (producer === undefined) return Promise.reject(new LedgerError('LEDGER_ERR_KAFKA_UNAVAILABLE', 'the producer is not connected'))
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new LedgerError('LEDGER_ERR_KAFKA_UNAVAILABLE', `Kafka did not acknowledge within ${options.ackTimeoutMs} ms`, { context: { topic } })),
          options.ackTimeoutMs,
        )
        queue.push({
          messages,
          resolve: () => (clearTimeout(timer), resolve()),
          reject: (err) => (clearTimeout(timer), reject(err)),
        })
        schedule()
      })
    },
    async stop() {
      stopping = true
      while (queue.length > 0 || inFlight !== undefined) {
        if (inFlight === undefined) flush()
        await inFlight
      }
      await producer?.disconnect()
      producer = undefined
    },
  }
}

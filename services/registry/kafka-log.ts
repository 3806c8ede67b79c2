import { randomUUID } from 'node:crypto'
import type { Admin, Kafka, Producer } from 'kafkajs'
import { waitForTopicsReady } from '../../infra/kafka/topics.ts'
import { createStoppableConsumer, type StoppableConsumer } from '../shared/kafka.ts'
import type { Logger } from '../shared/log.ts'
import { registryErrors } from './registry-errors.ts'
import type { RegistryLog } from './registry-service.ts'
import { encodeKey, type ConfigRecord, type RegistryKey, type RegistryState, type SchemaRecord } from './registry-state.ts'

export interface KafkaRegistryLogOptions {
  kafka: Kafka
  topic: string
  state: RegistryState
  logger: Logger
  /** How long a write or catch-up may wait for the log before answering 50002. */
  timeoutMs?: number
}

export interface KafkaRegistryLog extends RegistryLog {
  start(): Promise<void>
  stop(): Promise<void>
}

/**
 * The registry's store: a single-partition compacted topic read from the beginning by every
 * instance. The consumer uses a group of its own per instance and never commits, so each start
 * replays the whole (compacted) topic; that is the state rebuild.
 */
export function createKafkaRegistryLog(options: KafkaRegistryLogOptions): KafkaRegistryLog {
  const { kafka, topic, state } = options
  const timeoutMs = options.timeoutMs ?? 15_000
  const log = options.logger.child({ component: 'registry-log', topic })
  let producer: Producer | undefined
  let consumer: StoppableConsumer | undefined
  let admin: Admin | undefined
  /** Offset of the next record this instance will apply. */
  let nextOffset = 0n
  const waiters: { offset: bigint; resolve: () => void; reject: (err: Error) => void }[] = []

  function applied(offset: bigint): void {
    nextOffset = offset + 1n
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i]!
      if (nextOffset > w.offset) {
        waiters.splice(i, 1)
        w.resolve()
      }
    }
  }

  function waitApplied(offset: bigint): Promise<void> {
    if (nextOffset > offset) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const waiter = {
        offset,
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (err: Error) => (clearTimeout(timer), reject(err)),
      }
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1)
        reject(registryErrors.timeout(`the registry log did not reach offset ${offset} within ${timeoutMs} ms`))
      }, timeoutMs)
      waiters.push(waiter)
    })
  }

  async function highWatermark(): Promise<bigint> {
    if (admin === undefined) throw registryErrors.store('the registry log is not started')
    try {
      const offsets = await admin.fetchTopicOffsets(topic)
      return BigInt(offsets.find((o) => o.partition === 0)?.high ?? '0')
    } catch (err) {
      throw registryErrors.store(`Kafka: ${(err as Error).message}`)
    }
  }

  return {
    async start() {
      admin = kafka.admin()
      await admin.connect()
      const existing = await admin.listTopics()
      if (!existing.includes(topic)) {
        await admin
          .createTopics({
            waitForLeaders: true,
            topics: [{ topic, numPartitions: 1, replicationFactor: -1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }],
          })
          .catch((err: unknown) => {
            // Another instance may have created it between our list and create.
            if (!/already exists/i.test((err as Error).message)) throw err
          })
      }
      await waitForTopicsReady(admin, [topic])
      producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
      await producer.connect()
      consumer = createStoppableConsumer(kafka, { groupId: `schema-registry-${randomUUID()}`, maxWaitTimeInMs: 100, sessionTimeout: 10_000, heartbeatInterval: 1_000 })
      await consumer.consumer.connect()
      await consumer.consumer.subscribe({ topic, fromBeginning: true })
      await consumer.consumer.run({
        autoCommit: false,
        eachMessage: async ({ message }) => {
          const offset = BigInt(message.offset)
          try {
            if (message.key !== null) {
              const key = JSON.parse(message.key.toString('utf8')) as RegistryKey
              const value = message.value === null ? null : (JSON.parse(message.value.toString('utf8')) as SchemaRecord | ConfigRecord)
              if (!state.apply(key, value)) log.info('ignored a record that lost a race to an earlier one', { offset: String(offset), key: encodeKey(key) })
            }
          } catch (err) {
            // A record we cannot read must not stop the registry; it is logged with its offset.
            log.error('unreadable registry record skipped', { offset: String(offset), error: (err as Error).message })
          }
          applied(offset)
        },
      })
      const high = await highWatermark()
      if (high > 0n) await waitApplied(high - 1n)
      log.info('registry state loaded', { records: String(high) })
    },
    async append(key, value) {
      if (producer === undefined) throw registryErrors.store('the registry log is not started')
      let offset: bigint
      try {
        const [meta] = await producer.send({
          topic,
          acks: -1,
          messages: [{ key: encodeKey(key), value: value === null ? null : JSON.stringify(value), partition: 0 }],
        })
        offset = BigInt(meta?.baseOffset ?? meta?.offset ?? '-1')
      } catch (err) {
        throw registryErrors.store(`Kafka: ${(err as Error).message}`)
      }
      await waitApplied(offset)
    },
    async catchUp() {
      const high = await highWatermark()
      if (high > 0n) await waitApplied(high - 1n)
    },
    async stop() {
      for (const w of waiters.splice(0)) w.reject(registryErrors.store('the registry is shutting down'))
      await consumer?.stop().catch(() => undefined)
      await producer?.disconnect().catch(() => undefined)
      await admin?.disconnect().catch(() => undefined)
    },
  }
}

import { randomBytes } from 'node:crypto'
import { logLevel } from 'kafkajs'
import { createKafka } from '../../services/shared/kafka.ts'
import { createLogger } from '../../services/shared/log.ts'
import { benchBrokers, printTable } from './bench-stack.ts'

/**
 * The ingest baseline: raw kafkajs producer throughput against the local broker, acks=all and
 * the idempotent producer, 200-byte records. Every later ingest figure is compared with this one.
 * `npm run bench:kafka` (BENCH_SECONDS per case, default 8).
 */
const seconds = Number(process.env.BENCH_SECONDS ?? 8)
const { brokers, stop } = await benchBrokers()
const kafka = createKafka({ brokers, clientId: 'bench', logger: createLogger('error'), level: logLevel.NOTHING })
const admin = kafka.admin()
await admin.connect()
const topic = `bench-producer-${Date.now()}`
await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 6 }] })
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 5 })
await producer.connect()
const value = randomBytes(100).toString('hex') // 200 bytes
const runKeys = Array.from({ length: 64 }, (_, i) => `run-${i}`)

async function measure(name: string, batch: number, concurrency: number): Promise<Record<string, string | number>> {
  let sent = 0
  const deadline = performance.now() + seconds * 1000
  const started = performance.now()
  const worker = async (w: number) => {
    let i = 0
    while (performance.now() < deadline) {
      const messages = Array.from({ length: batch }, (_, j) => ({ key: runKeys[(w + i + j) % runKeys.length]!, value }))
      await producer.send({ topic, acks: -1, messages })
      sent += batch
      i++
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)))
  const elapsed = (performance.now() - started) / 1000
  return { case: name, 'records/s': Math.round(sent / elapsed), records: sent, seconds: elapsed.toFixed(1) }
}

const rows = [
  await measure('batch 1000, 1 send in flight', 1000, 1),
  await measure('batch 1000, 4 sends in flight', 1000, 4),
  await measure('batch 100, 8 sends in flight', 100, 8),
  await measure('batch 100, 1 send in flight', 100, 1),
  await measure('batch 1, 64 sends in flight', 1, 64),
  await measure('batch 1, 1 send in flight', 1, 1),
]
printTable(`raw kafkajs producer, acks=all, idempotent, 200-byte records, topic with 6 partitions (${seconds} s per case)`, rows)
await producer.disconnect()
await admin.disconnect()
await stop()

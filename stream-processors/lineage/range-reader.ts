import { randomUUID } from 'node:crypto'
import type { Kafka, KafkaMessage } from 'kafkajs'
import { LedgerError } from '../../services/shared/errors.ts'
import { createStoppableConsumer } from '../../services/shared/kafka.ts'

export interface OffsetRange {
  topic: string
  partition: number
  first: bigint
  last: bigint
}

/**
 * Reads exactly the records of some offset ranges again (read_committed, as the sink reads), by
 * `topic/partition`. A throw-away consumer group of one member owns every partition of the
 * topics; the partitions no range names are paused, the others sought to their first offset.
 * Offsets a read_committed consumer never sees (transaction markers, aborted records) are simply
 * absent, as they were the first time. Throws LEDGER_ERR_KAFKA_UNAVAILABLE if the ranges are not
 * read within `timeoutMs`.
 */
export async function readRanges(
  kafka: Kafka,
  ranges: readonly OffsetRange[],
  options: { groupId?: string; timeoutMs?: number; heartbeat?: () => Promise<void> } = {},
): Promise<Map<string, KafkaMessage[]>> {
  const out = new Map<string, KafkaMessage[]>(ranges.map((r) => [`${r.topic}/${r.partition}`, []]))
  const open = new Map(ranges.map((r) => [`${r.topic}/${r.partition}`, r]))
  if (open.size === 0) return out
  const topics = [...new Set(ranges.map((r) => r.topic))]
  const admin = kafka.admin()
  await admin.connect()
  const partitionsOf = new Map<string, number[]>()
  try {
    for (const topic of topics) partitionsOf.set(topic, (await admin.fetchTopicOffsets(topic)).map((o) => o.partition))
  } finally {
    await admin.disconnect()
  }

  const { consumer, stop } = createStoppableConsumer(kafka, { groupId: options.groupId ?? `ledger.range-reader.${randomUUID()}`, readUncommitted: false, maxWaitTimeInMs: 100 })
  await consumer.connect()
  try {
    for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: true })
    let finish: () => void = () => undefined
    let fail: (err: Error) => void = () => undefined
    const finished = new Promise<void>((resolve, reject) => {
      finish = resolve
      fail = reject
    })
    const timer = setTimeout(
      () => fail(new LedgerError('LEDGER_ERR_KAFKA_UNAVAILABLE', `could not read back ${[...open.keys()].join(', ')} within ${options.timeoutMs ?? 120_000} ms`)),
      options.timeoutMs ?? 120_000,
    )
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, heartbeat }) => {
        const key = `${batch.topic}/${batch.partition}`
        const range = open.get(key)
        if (range === undefined) return
        for (const m of batch.messages) {
          const offset = BigInt(m.offset)
          if (offset < range.first) continue
          if (offset <= range.last) out.get(key)!.push(m)
          if (offset >= range.last) {
            open.delete(key)
            consumer.pause([{ topic: batch.topic, partitions: [batch.partition] }])
            break
          }
        }
        // A range whose last record is gone (retention) ends at the partition's end.
        if (open.has(key) && BigInt(batch.highWatermark) - 1n < range.last && BigInt(batch.lastOffset()) >= BigInt(batch.highWatermark) - 1n) open.delete(key)
        await heartbeat()
        await options.heartbeat?.().catch(() => undefined)
        if (open.size === 0) finish()
      },
    })
    for (const topic of topics) {
      const idle = partitionsOf.get(topic)!.filter((p) => !open.has(`${topic}/${p}`))
      if (idle.length > 0) consumer.pause([{ topic, partitions: idle }])
    }
    for (const r of ranges) consumer.seek({ topic: r.topic, partition: r.partition, offset: r.first.toString() })
    await finished.finally(() => clearTimeout(timer))
  } finally {
    await stop()
  }
  return out
}

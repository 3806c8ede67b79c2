import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { logLevel } from 'kafkajs'
import { migrate } from '../../infra/clickhouse/migrate.ts'
import { ensureTopics, TOPICS, topicName } from '../../infra/kafka/topics.ts'
import { createRegistryRuntime } from '../../services/registry/runtime.ts'
import { createLedgerClickHouse } from '../../services/shared/clickhouse.ts'
import { clickhouseEnv, commonEnv, parseConfig } from '../../services/shared/config.ts'
import { createEventCodec } from '../../services/shared/event-codec.ts'
import { createKafka } from '../../services/shared/kafka.ts'
import { createLogger } from '../../services/shared/log.ts'
import { eventRow } from '../../stream-processors/lineage/domain/event-rows.ts'
import { startLineageSink } from '../../stream-processors/lineage/host.ts'
import { bulkEvents } from '../helpers/bulk-events.ts'
import { benchBrokers, percentile, printTable } from './bench-stack.ts'

/**
 * The lineage sink, Kafka → ClickHouse (embedded chDB), beside two baselines measured in the same
 * run on the same topic: a kafkajs consumer that only counts records, and one that also decodes
 * them through the registry and maps them to rows (everything but ClickHouse). Then event →
 * queryable: with the sink running, BENCH_RATE events/s (default 5,000) are produced for
 * BENCH_SECONDS; one event of every send is watched until a query finds it in ClickHouse; the
 * latency runs from Kafka's acknowledgement (acks=all) to the query that first sees it.
 * Everything runs in this one process on loopback. `npm run bench:sink`.
 */
const EVENTS = Number(process.env.BENCH_SINK_EVENTS ?? 1_000_000)
const RATE = Number(process.env.BENCH_RATE ?? 5_000)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20)
const MAX_BATCH = Number(process.env.LEDGER_SINK_MAX_BATCH ?? 20_000)
const LINGER = Number(process.env.LEDGER_SINK_LINGER_MS ?? 250)

const logger = createLogger('warn')
const { brokers, stop: stopBrokers } = await benchBrokers()
const kafka = createKafka({ brokers, clientId: 'bench-sink', logger, level: logLevel.NOTHING })
const prefix = `bench-${Date.now()}.`
const admin = kafka.admin()
await admin.connect()
await ensureTopics(admin, Object.values(TOPICS), prefix)
const registry = await createRegistryRuntime({ kafka, topic: `${prefix}_schemas`, logger })
const registryUrl = await registry.listen('127.0.0.1', 0)
const topic = topicName(TOPICS.events, prefix)
const codec = await createEventCodec({ registryUrl, topic })

console.log(`producing ${EVENTS.toLocaleString()} events to ${topic} ...`)
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
await producer.connect()
let batch: { key: string; value: Buffer }[] = []
for (const e of bulkEvents(EVENTS, 3, Date.now() - 3_600_000)) {
  batch.push({ key: e.runId, value: codec.encode(e.eventType, e.record) })
  if (batch.length === 10_000) {
    await producer.send({ topic, acks: -1, messages: batch })
    batch = []
  }
}
if (batch.length > 0) await producer.send({ topic, acks: -1, messages: batch })

/** Reads the whole topic with a fresh group; `work` runs per batch. Returns records/s. */
async function drain(name: string, work: (messages: { value: Buffer | null; offset: string }[], partition: number) => Promise<void>): Promise<number> {
  const consumer = kafka.consumer({ groupId: `${prefix}${name}`, maxWaitTimeInMs: 100, maxBytesPerPartition: 4 * 1024 * 1024 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  let seen = 0
  let started = 0
  let done: () => void
  const finished = new Promise<void>((r) => (done = r))
  await consumer.run({
    eachBatch: async ({ batch: b }) => {
      if (started === 0) started = performance.now()
      await work(b.messages, b.partition)
      seen += b.messages.length
      if (seen >= EVENTS) done()
    },
  })
  await finished
  const rate = EVENTS / ((performance.now() - started) / 1000)
  await consumer.disconnect()
  return rate
}
const consumeOnly = await drain('consume-only', async () => undefined)
const consumeDecode = await drain('consume-decode-map', async (messages, partition) => {
  const lines: string[] = []
  for (const m of messages) {
    const d = await codec.decode(m.value!)
    lines.push(JSON.stringify(eventRow(d.json, { topic, partition, offset: m.offset }, d.schemaId)))
  }
})

// The sink itself, into a fresh embedded ClickHouse.
const dir = mkdtempSync(path.join(os.tmpdir(), 'ledger-bench-sink-'))
const ch = await createLedgerClickHouse(parseConfig(commonEnv.extend(clickhouseEnv.shape), { LEDGER_DATA_DIR: dir }))
await migrate(ch, logger)
const sinkStarted = performance.now()
const sink = await startLineageSink({ kafka, clickhouse: ch, registryUrl, topicPrefix: prefix, maxBatchRecords: MAX_BATCH, lingerMs: LINGER, logger })
while (sink.stats.rows < EVENTS) await new Promise((r) => setTimeout(r, 50))
const sinkSeconds = (performance.now() - sinkStarted) / 1000
const stored = Number((await ch.query<{ n: string }>(`SELECT count() AS n FROM ${ch.database}.events`))[0]!.n)

// Event → queryable under a steady load.
console.log(`event → queryable: ${RATE} events/s for ${SECONDS} s ...`)
const latencies: number[] = []
const pending = new Map<string, { tenant: string; ackedAt: number }>()
let producing = true
const poller = (async () => {
  while (producing || pending.size > 0) {
    if (pending.size > 0) {
      const ids = [...pending.keys()]
      const found = await ch.query<{ event_id: string }>(`SELECT event_id FROM ${ch.database}.event_locator WHERE event_id IN {ids:Array(String)}`, { ids })
      const now = performance.now()
      for (const f of found) {
        const p = pending.get(f.event_id)
        if (p) latencies.push(now - p.ackedAt)
        pending.delete(f.event_id)
      }
    }
    await new Promise((r) => setTimeout(r, 20))
  }
})()
const perSend = Math.max(1, Math.round(RATE / 50))
const live = bulkEvents(RATE * SECONDS, 11, Date.now())
const loadStarted = performance.now()
for (let sent = 0; sent < RATE * SECONDS; ) {
  const messages: { key: string; value: Buffer }[] = []
  let watched: string | undefined
  for (let i = 0; i < perSend; i++) {
    const next = live.next()
    if (next.done) break
    messages.push({ key: next.value.runId, value: codec.encode(next.value.eventType, next.value.record) })
    watched ??= next.value.eventId
  }
  if (messages.length === 0) break
  await producer.send({ topic, acks: -1, messages })
  if (watched) pending.set(watched, { tenant: '', ackedAt: performance.now() })
  sent += messages.length
  // Pace to the rate: the next send is due when `sent` events' worth of time has passed.
  const due = loadStarted + (sent / RATE) * 1000
  const wait = due - performance.now()
  if (wait > 0) await new Promise((r) => setTimeout(r, wait))
}
const achieved = (RATE * SECONDS) / ((performance.now() - loadStarted) / 1000)
producing = false
await poller
latencies.sort((a, b) => a - b)

console.log(`\nLineage sink benchmark (${os.cpus().length} cores; the broker, the sink, chDB and the load in one machine), ${EVENTS.toLocaleString()} events, batches of ${MAX_BATCH}, linger ${LINGER} ms`)
printTable('Throughput (records/s, same topic, same run)', [
  { what: 'baseline: kafkajs consume only', 'records/s': Math.round(consumeOnly) },
  { what: 'baseline: consume + Avro decode + row mapping', 'records/s': Math.round(consumeDecode) },
  { what: 'lineage sink → ClickHouse (events + 8 views), exactly once', 'records/s': Math.round(EVENTS / sinkSeconds), 'vs consume only': `${((EVENTS / sinkSeconds / consumeOnly) * 100).toFixed(0)} %` },
])
printTable('Event → queryable (Kafka ack → first query that finds it)', [
  { load: `${Math.round(achieved)} events/s`, samples: latencies.length, 'p50 ms': percentile(latencies, 50).toFixed(0), 'p99 ms': percentile(latencies, 99).toFixed(0), 'max ms': latencies.at(-1)?.toFixed(0) ?? '-' },
])
if (stored !== EVENTS) console.log(`!! ClickHouse holds ${stored} rows for ${EVENTS} events`)
printTable('Sink', [{ flushes: sink.stats.flushes, rows: sink.stats.rows, 'last flush ms': sink.stats.lastFlushMs, 'insert failures': sink.stats.insertFailures }])

await sink.stop()
await producer.disconnect()
await ch.close()
await registry.stop()
await admin.disconnect()
await stopBrokers()
rmSync(dir, { recursive: true, force: true })

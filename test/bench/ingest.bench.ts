import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { logLevel } from 'kafkajs'
import { createLedgerClient } from '../../client/src/index.ts'
import { ulid } from '../../client/src/ulid.ts'
import { REPO_ROOT } from '../../infra/paths.ts'
import { addKey } from '../../services/gateway/api-keys.ts'
import { createKafka } from '../../services/shared/kafka.ts'
import { createLogger } from '../../services/shared/log.ts'
import { benchBrokers, freePort, printTable } from './bench-stack.ts'

/**
 * Ingest throughput, client → gateway → Kafka (acks=all), beside the raw kafkajs producer
 * baseline measured against the same broker in the same run. The backbone runs as its own
 * process (as `npm start` does); this process only generates load. `npm run bench:ingest`.
 * BENCH_CONSUMERS=on also runs the processors, lineage sink and notary inside the backbone, as
 * `npm start` does; by default they are off, so the figures are the gateway's.
 */
const consumers = process.env.BENCH_CONSUMERS === 'on'
const seconds = Number(process.env.BENCH_SECONDS ?? 8)
const { brokers, stop } = await benchBrokers()
const dir = mkdtempSync(path.join(os.tmpdir(), 'ledger-bench-ingest-'))
const keysFile = path.join(dir, 'api-keys.json')
const apiKey = addKey(keysFile, 'bench', 'emit').key
const httpPort = await freePort()
const registryPort = await freePort()
const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'services', 'main.ts')], {
  env: {
    ...process.env,
    LEDGER_KAFKA_BROKERS: brokers.join(','),
    LEDGER_DATA_DIR: dir,
    LEDGER_API_KEYS_FILE: keysFile,
    LEDGER_HTTP_PORT: String(httpPort),
    LEDGER_REGISTRY_PORT: String(registryPort),
    LEDGER_RATE_LIMIT_RPS: '1000000000',
    LEDGER_LOG_LEVEL: 'warn',
    LEDGER_REDACTION_DEFAULT: process.env.BENCH_REDACTION ?? 'strict',
    LEDGER_PROCESSORS_ENABLED: String(consumers),
    LEDGER_SINK_ENABLED: String(consumers),
    LEDGER_NOTARY_ENABLED: String(consumers),
  },
  stdio: ['ignore', 'inherit', 'inherit'],
})
const endpoint = `http://127.0.0.1:${httpPort}`
for (let i = 0; ; i++) {
  const ok = await fetch(`${endpoint}/healthz`).then((r) => r.ok, () => false)
  if (ok) break
  if (i > 600) throw new Error('the backbone did not become healthy')
  await new Promise((r) => setTimeout(r, 100))
}

const runs = Array.from({ length: 256 }, () => `run-${ulid()}`)
let step = 0
const event = (i: number) => ({
  type: 'model.call',
  event_id: ulid(),
  run_id: runs[i % runs.length]!,
  step: step++,
  occurred_at: Date.now(),
  agent_name: 'refund-assistant',
  agent_version: '1.4.2',
  principal: { type: 'user', id: 'u-1042' },
  trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
  span_id: '00f067aa0ba902b7',
  provider: 'openai',
  model: 'gpt-4.1',
  input_tokens: 1420,
  output_tokens: 310,
  cost_usd: 0.0121,
  latency_ms: 820,
  finish_reason: 'tool_calls',
})
const sampleJson = Buffer.byteLength(JSON.stringify(event(0)))

async function loop(name: string, concurrency: number, work: () => Promise<number>): Promise<Record<string, string | number>> {
  let events = 0
  let errors = 0
  const deadline = performance.now() + seconds * 1000
  const started = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        try {
          // Not `events += await work()`: that reads `events` before the await and loses the
          // other workers' updates.
          const n = await work()
          events += n
        } catch {
          errors += 1
        }
      }
    }),
  )
  const elapsed = (performance.now() - started) / 1000
  return { case: name, 'events/s': Math.round(events / elapsed), events, errors, seconds: elapsed.toFixed(1) }
}

const post = async (batch: unknown[]): Promise<number> => {
  const res = await fetch(`${endpoint}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` }, body: JSON.stringify(batch) })
  await res.arrayBuffer()
  if (res.status !== 202) throw new Error(`HTTP ${res.status}`)
  return batch.length
}

// Baseline: raw kafkajs, same broker, same run.
const kafka = createKafka({ brokers, clientId: 'bench-baseline', logger: createLogger('error'), level: logLevel.NOTHING })
const admin = kafka.admin()
await admin.connect()
const baselineTopic = `bench-baseline-${Date.now()}`
await admin.createTopics({ waitForLeaders: true, topics: [{ topic: baselineTopic, numPartitions: 6 }] })
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
await producer.connect()
const value = randomBytes(100).toString('hex')
// Warm-up (not reported): the broker's JVM and both processes' JITs need a few seconds.
const warmSeconds = Number(process.env.BENCH_WARMUP_SECONDS ?? 4)
const warmDeadline = performance.now() + warmSeconds * 1000
while (performance.now() < warmDeadline) {
  await producer.send({ topic: baselineTopic, acks: -1, messages: Array.from({ length: 200 }, (_, i) => ({ key: runs[i % runs.length]!, value })) })
  await post(Array.from({ length: 200 }, (_, i) => event(i)))
}
const rows: Record<string, string | number>[] = []

rows.push(await loop('gateway: batches of 1000, 2 clients', 2, () => post(Array.from({ length: 1000 }, (_, i) => event(i)))))
rows.push(await loop('gateway: batches of 100, 8 clients', 8, () => post(Array.from({ length: 100 }, (_, i) => event(i)))))
rows.push(await loop('gateway: 1 event per request, 64 clients', 64, () => post([event(step)])))

// Baseline after the gateway cases, against the same broker (see README: run order).
rows.push(await loop('baseline: raw kafkajs, batch 1000', 1, async () => {
  await producer.send({ topic: baselineTopic, acks: -1, messages: Array.from({ length: 1000 }, (_, i) => ({ key: runs[i % runs.length]!, value })) })
  return 1000
}))
rows.push(await loop('baseline: raw kafkajs, 1 record per send', 1, async () => {
  await producer.send({ topic: baselineTopic, acks: -1, messages: [{ key: runs[0]!, value }] })
  return 1
}))
await producer.disconnect()

// Through the thin client: emit as fast as the agent can; the client batches.
const ledger = createLedgerClient({ endpoint, apiKey, agent: { name: 'bench', version: '1' }, batchSize: 1000, maxBufferedEvents: 50_000, onError: () => undefined })
const run = ledger.startRun({ principal: { type: 'user', id: 'u-1' }, owner: 'bench' })
const clientStarted = performance.now()
const clientDeadline = clientStarted + seconds * 1000
while (performance.now() < clientDeadline) {
  if (ledger.stats.buffered < 40_000) for (let i = 0; i < 1000; i++) run.modelCall({ provider: 'openai', model: 'gpt-4.1', input_tokens: 1420, output_tokens: 310, cost_usd: 0.0121, latency_ms: 820 })
  await new Promise((r) => setImmediate(r))
}
const acked = ledger.stats.acknowledged
rows.push({ case: 'thin client (one run, batchSize 1000)', 'events/s': Math.round(acked / seconds), events: acked, errors: ledger.stats.rejected + ledger.stats.dropped, seconds: seconds.toFixed(1) })
await ledger.close(60_000)

printTable(`ingest, acks=all, redaction ${process.env.BENCH_REDACTION ?? 'strict'}; processors, sink and notary ${consumers ? 'running in the backbone' : 'off'}; JSON event ${sampleJson} bytes (${seconds} s per case)`, rows)
const byCase = (name: string) => Number(rows.find((r) => String(r.case).startsWith(name))!['events/s'])
const base = byCase('baseline: raw kafkajs, batch 1000')
console.log(`\ngateway batched / raw kafkajs batch 1000: ${(byCase('gateway: batches of 1000') / base).toFixed(2)}x`)
console.log(`gateway 1 event per request / raw kafkajs 1 record per send: ${(byCase('gateway: 1 event') / byCase('baseline: raw kafkajs, 1 record')).toFixed(2)}x`)

await admin.disconnect()
child.kill('SIGTERM')
await new Promise((r) => child.once('exit', r))
rmSync(dir, { recursive: true, force: true })
await stop()

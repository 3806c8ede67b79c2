import { createPublicKey } from 'node:crypto'
import { logLevel } from 'kafkajs'
import { TOPICS, topicName } from '../../infra/kafka/topics.ts'
import { eventSchemas } from '../../schemas/event-schemas.ts'
import { toAvroRecord } from '../../schemas/json-form.ts'
import { validateEvent } from '../../services/gateway/event-validation.ts'
import { renderReportHtml } from '../../services/report/report-html.ts'
import { verifyRunReport } from '../../services/report/report-verifier.ts'
import { assembleRunReport, type RunReport } from '../../services/report/run-report.ts'
import { canonicalJson } from '../../services/shared/canonical-json.ts'
import { createKafka, createStoppableConsumer } from '../../services/shared/kafka.ts'
import { createLogger } from '../../services/shared/log.ts'
import { benchBrokers, percentile, printTable } from './bench-stack.ts'

/**
 * `npm run bench:report`: the audit report of a 10k-event run through the API (JSON, HTML, CSV) beside the raw
 * ClickHouse read of the same chain, the offline verifier on that report, and the notary's events/s beside a
 * consume-only baseline (and consume + Avro decode) over the same log, all in one run against a broker the script
 * starts (or LEDGER_KAFKA_BROKERS). BENCH_EVENTS sets the notary's log (default 60,000), BENCH_RUN_EVENTS the run's
 * size (default 10,000), BENCH_REPEAT the report requests per form (default 5).
 */
const EVENTS = Number(process.env.BENCH_EVENTS ?? 60_000)
const RUN_EVENTS = Number(process.env.BENCH_RUN_EVENTS ?? 10_000)
const REPEAT = Number(process.env.BENCH_REPEAT ?? 5)

const { brokers, stop } = await benchBrokers()
process.env.LEDGER_KAFKA_BROKERS = brokers.join(',')
// The test helpers start a registry, gateway, ClickHouse and the notary on their own prefix.
const { startTestGateway } = await import('../helpers/gateway.ts')
const { closeTestClickHouse, testClickHouse } = await import('../helpers/lineage.ts')
const { ensureNotaryTopics, startTestNotary, startTestSinkWithNotary, testNotaryKey } = await import('../helpers/notary.ts')
const { interleave, syntheticRuns } = await import('../helpers/synthetic-runs.ts')
const { unique, waitFor } = await import('../helpers/stack.ts')

const ms = (t0: number) => performance.now() - t0
const ch = await testClickHouse()
const gw = await startTestGateway({ query: ch, report: { digestIntervalMs: 1_000 } })
await ensureNotaryTopics(gw)
const kafka = createKafka({ brokers, clientId: 'bench-report', logger: createLogger('error'), level: logLevel.NOTHING })
const schemas = eventSchemas()
const encoder = gw.runtime.deps.codec
const encode = (events: Record<string, unknown>[], tenant: string) =>
  events.map((e, i) => {
    const v = validateEvent(e, i)
    if (!v.ok) throw new Error(`event ${i} is invalid: ${JSON.stringify(v.problems)}`)
    return { key: String(e.run_id), value: encoder.encode(v.eventType, toAvroRecord(schemas.get(v.eventType)!, v.value, tenant, Date.parse(String(e.occurred_at)) + 1)) }
  })
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
await producer.connect()
const produce = async (messages: { key: string; value: Buffer }[]) => {
  for (let i = 0; i < messages.length; i += 2_000) await producer.send({ topic: gw.topic, acks: -1, messages: messages.slice(i, i + 2_000) })
}

// 1. The notary's log: many short runs, interleaved.
const background: Record<string, unknown>[][] = []
let total = 0
for (let seed = 1; total < EVENTS; seed++) {
  for (const run of syntheticRuns({ seed, runs: 200, minSteps: 10, maxSteps: 40 })) {
    if (total >= EVENTS) break
    background.push(run)
    total += run.length
  }
}
await produce(encode(interleave(background, 3), 'acme'))
const high = async (topic: string) => {
  const admin = kafka.admin()
  await admin.connect()
  const offsets = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect())
  return new Map(offsets.map((o) => [o.partition, BigInt(o.high)]))
}
const ends = await high(gw.topic)

/**
 * Rates are taken from the end of the first batch to the end of the log, so a group join is not counted in any
 * of them; `decode` also Avro-decodes each record.
 */
interface Rate {
  rate: number
  seconds: number
}
async function consumeAll(decode: boolean): Promise<Rate> {
  const pending = new Map([...ends].filter(([, h]) => h > 0n))
  const { consumer, stop: stopConsumer } = createStoppableConsumer(kafka, { groupId: unique('bench-consume'), readUncommitted: false, maxWaitTimeInMs: 50 })
  await consumer.connect()
  await consumer.subscribe({ topic: gw.topic, fromBeginning: true })
  let first: { at: number; n: number } | undefined
  let n = 0
  await new Promise<void>((resolve, reject) => {
    consumer
      .run({
        eachBatch: async ({ batch }) => {
          if (decode) for (const m of batch.messages) await gw.codec.decode(m.value!)
          n += batch.messages.length
          first ??= { at: performance.now(), n }
          const end = pending.get(batch.partition)
          if (end !== undefined && BigInt(batch.lastOffset()) + 1n >= end) pending.delete(batch.partition)
          if (pending.size === 0) resolve()
        },
      })
      .catch(reject)
  })
  const seconds = ms(first!.at) / 1000
  await stopConsumer()
  return { rate: (n - first!.n) / seconds, seconds }
}
const consumeRate = await consumeAll(false)
const decodeRate = await consumeAll(true)

const key = testNotaryKey()
const admin = kafka.admin()
await admin.connect()
const notaryStarted = performance.now()
const notary = await startTestNotary(gw, key, { digestIntervalMs: 1_000 })
let firstCommit: { at: number; n: number } | undefined
const watch = setInterval(() => {
  if (firstCommit === undefined && notary.stats.events > 0) firstCommit = { at: performance.now(), n: notary.stats.events }
}, 5)
await waitFor(() => notary.stats.events >= total, 600_000, 'the notary to chain the whole log')
const notaryDone = performance.now()
clearInterval(watch)
const notaryRate: Rate = { rate: (total - firstCommit!.n) / ((notaryDone - firstCommit!.at) / 1000), seconds: (notaryDone - firstCommit!.at) / 1000 }
const notaryWithStart = (notaryDone - notaryStarted) / 1000
const r = (x: Rate) => ({ 'events/s': Math.round(x.rate).toLocaleString('en-US'), seconds: x.seconds.toFixed(1) })
printTable(`Notary over a ${total.toLocaleString('en-US')}-event log (${background.length} runs), read_committed, from the first batch to the end`, [
  { case: 'baseline: consume only (kafkajs group, no decode)', ...r(consumeRate) },
  { case: 'baseline: consume + Avro decode', ...r(decodeRate) },
  { case: 'notary: decode, JCS, 2×SHA-256, links + changelog + offsets in one transaction per batch, digests', ...r(notaryRate) },
])
console.log(`notary: ${notary.stats.transactions} transactions, ${notary.stats.digests} digests; ${notaryWithStart.toFixed(1)} s with start-up, changelog restore and group join`)

// 2. One 10k-event run, chained, signed and sunk to ClickHouse.
const sink = await startTestSinkWithNotary(gw, ch)
const [big] = syntheticRuns({ seed: 4242, runs: 1, minSteps: RUN_EVENTS - 2, maxSteps: RUN_EVENTS - 1 })
const runId = String(big![0]!.run_id)
await produce(encode(big!, 'acme'))
const get = async (path: string) => {
  const res = await fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${gw.keys['acme:audit']}` } })
  return { status: res.status, body: await res.text() }
}
let reportText = ''
await waitFor(
  async () => {
    const r = await get(`/v1/runs/${runId}/report`)
    if (r.status !== 200) return false
    reportText = r.body
    const rep = JSON.parse(r.body) as RunReport
    return rep.integrity.chain.length === big!.length && rep.integrity.pending_events === 0
  },
  600_000,
  `the ${big!.length}-event run to be chained, signed and in ClickHouse`,
)

const time = async (fn: () => Promise<unknown> | unknown, n = REPEAT) => {
  await fn() // warm
  const t: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await fn()
    t.push(ms(t0))
  }
  t.sort((a, b) => a - b)
  return { p50: percentile(t, 50), max: t.at(-1)! }
}
const row = (name: string, r: { p50: number; max: number }, bytes?: number) => ({ case: name, 'p50 ms': r.p50.toFixed(0), 'max ms': r.max.toFixed(0), bytes: bytes === undefined ? '' : bytes.toLocaleString('en-US') })
const sizes: Record<string, number> = {}
const viaApi = (format: string) => async () => {
  const r = await get(`/v1/runs/${runId}/report?format=${format}`)
  if (r.status !== 200) throw new Error(`${format}: HTTP ${r.status}`)
  sizes[format] = Buffer.byteLength(r.body)
}
const rawChain = async () =>
  ch.query(`SELECT seq, event_hash, chain_hash, payload FROM ${ch.database}.notary_chain FINAL WHERE tenant = {t:String} AND run_id = {r:String} ORDER BY seq`, { t: 'acme', r: runId })
const report = JSON.parse(reportText) as RunReport
const pure = () => canonicalJson(assembleRunReport({ tenant: 'acme', runId, chain: report.integrity.chain, digests: report.integrity.digests, pendingEvents: 0, control: report.control, generatedAt: Date.now() }))
const publicKey = createPublicKey(key.publicKeyPem)
let verified = false
const verify = () => {
  verified = verifyRunReport(JSON.parse(reportText), publicKey).ok
}
const rows = [
  row('baseline: raw ClickHouse read of the run\'s chain (payloads)', await time(rawChain)),
  row('GET report, format=json (canonical, signed digests)', await time(viaApi('json')), sizes.json),
  row('GET report, format=html', await time(viaApi('html')), sizes.html),
  row('GET report, format=csv', await time(viaApi('csv')), sizes.csv),
  row('assembly + JCS only, no I/O (pure)', await time(pure)),
  row('HTML rendering only, no I/O (pure)', await time(() => renderReportHtml(report))),
  row('offline verifier: parse + verify the JSON report', await time(verify)),
]
if (!verified) throw new Error('the benchmark report did not verify')
printTable(`Report of a ${big!.length.toLocaleString('en-US')}-event run (${report.actions.length} actions, ${report.integrity.digests.length} digests), ${REPEAT} requests per form after a warm-up`, rows)
console.log('goals: JSON ≤ 1000 ms, HTML ≤ 2000 ms')

await sink.stop()
await notary.stop()
await admin.disconnect()
await producer.disconnect()
await gw.stop()
await closeTestClickHouse()
await stop()
process.exit(0)

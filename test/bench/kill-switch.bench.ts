import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { logLevel, type Kafka } from 'kafkajs'
import { createLedgerClient, LedgerGuardError, RunKilledError, type LedgerClient, type RunHandle } from '../../client/src/index.ts'
import { actionDigest } from '../../client/src/digest.ts'
import { ulid } from '../../client/src/ulid.ts'
import { TOPICS, topicName } from '../../infra/kafka/topics.ts'
import { REPO_ROOT } from '../../infra/paths.ts'
import { eventSchemas } from '../../schemas/event-schemas.ts'
import { toAvroRecord } from '../../schemas/json-form.ts'
import { addKey } from '../../services/gateway/api-keys.ts'
import { validateEvent } from '../../services/gateway/event-validation.ts'
import { createEventCodec } from '../../services/shared/event-codec.ts'
import { createKafka, CONCURRENT_TRANSACTIONS_MESSAGE } from '../../services/shared/kafka.ts'
import { createLogger } from '../../services/shared/log.ts'
import { interleave, syntheticRuns } from '../helpers/synthetic-runs.ts'
import { benchBrokers, freePort, percentile, printTable } from './bench-stack.ts'

/**
 * Kill switches and budgets, end to end, on a broker this script starts (or LEDGER_KAFKA_BROKERS). The backbone runs
 * as its own process with the processors, lineage sink and notary off, and the processors as another
 * (`npm run processors`), as a deployment that runs them apart would; this process generates load and measures.
 * `npm run bench:kill-switch`.
 *
 * 1. Processor throughput: synthetic agent runs produced straight to the events topic, then the processor process
 *    starts and reads them (three processors in one consumer group: each event is read and decoded once and
 *    applied to all three), beside a consume-only kafkajs consumer group reading the same events in this process
 *    first (the baseline).
 * 2. Trip latency: a run calls the same tool with the same arguments three times (the contract allows two); from the
 *    moment the agent emits the third call to guard() refusing it. BENCH_IDLE_TRIPS one at a time with no other load
 *    (the baseline); then BENCH_TRIPS, BENCH_TRIP_CONCURRENCY at a time, under BENCH_BACKGROUND_EPS events/s of
 *    background load through the gateway (for at most BENCH_LOADED_SECONDS: if the processors cannot keep up, each
 *    trip waits longer than the last, and the run guard's growing lag is the figure that matters), and again under
 *    BENCH_SUSTAINED_EPS.
 * 3. Budget overshoot: 32 workers share one run with a $1.00 limit; each calls guard(), "calls the model" for
 *    5–50 ms, then emits the call's cost; until guard() refuses. With reservations (guard() reserves the estimate)
 *    and without (the baseline: guard() only checks the run is not killed), BENCH_OVERSHOOT_RUNS runs per case.
 */
const TRIPS = Number(process.env.BENCH_TRIPS ?? 1_000)
const IDLE_TRIPS = Number(process.env.BENCH_IDLE_TRIPS ?? 200)
const TRIP_CONCURRENCY = Number(process.env.BENCH_TRIP_CONCURRENCY ?? 8)
const LOADED_SECONDS = Number(process.env.BENCH_LOADED_SECONDS ?? 120)
const SUSTAINED_EPS = Number(process.env.BENCH_SUSTAINED_EPS ?? 2_000)
const BACKGROUND_EPS = Number(process.env.BENCH_BACKGROUND_EPS ?? 5_000)
const THROUGHPUT_EVENTS = Number(process.env.BENCH_THROUGHPUT_EVENTS ?? 100_000)
const OVERSHOOT_RUNS = Number(process.env.BENCH_OVERSHOOT_RUNS ?? 20)
const WORKERS = 32
/** The processors share one consumer group (one read, one decode, one transaction per batch for all three). */
const GROUPS = ['control-processors'] as const
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const loadAtStart = os.loadavg()[0]!
const { brokers, stop: stopBrokers } = await benchBrokers()
const dir = mkdtempSync(path.join(os.tmpdir(), 'ledger-bench-kill-switch-'))
const keysFile = path.join(dir, 'api-keys.json')
const emitKey = addKey(keysFile, 'bench', 'emit').key
const adminKey = addKey(keysFile, 'bench', 'admin').key
const prefix = `bks${Date.now()}.`
const httpPort = await freePort()
const registryPort = await freePort()
const env = {
  ...process.env,
  LEDGER_KAFKA_BROKERS: brokers.join(','),
  LEDGER_TOPIC_PREFIX: prefix,
  LEDGER_DATA_DIR: dir,
  LEDGER_LOG_LEVEL: 'warn',
}
const children: ChildProcess[] = []
// If this script dies, its children must not outlive it.
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
})
const backbone = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'services', 'main.ts')], {
  env: {
    ...env,
    LEDGER_API_KEYS_FILE: keysFile,
    LEDGER_HTTP_PORT: String(httpPort),
    LEDGER_REGISTRY_PORT: String(registryPort),
    LEDGER_RATE_LIMIT_RPS: '1000000000',
    LEDGER_PROCESSORS_ENABLED: 'false',
    LEDGER_SINK_ENABLED: 'false',
    LEDGER_NOTARY_ENABLED: 'false',
  },
  stdio: ['ignore', 'ignore', 'inherit'],
})
children.push(backbone)
const endpoint = `http://127.0.0.1:${httpPort}`
const registryUrl = `http://127.0.0.1:${registryPort}`
for (let i = 0; ; i++) {
  if (await fetch(`${endpoint}/healthz`).then((r) => r.ok, () => false)) break
  if (i > 600) throw new Error('the backbone did not become healthy')
  await sleep(100)
}
const CONTRACT = `agent:
  name: bench-agent
  version: "1.0.0"
  owner: bench
  tools:
    allowlist:
      - name: crm.lookup
  loop_detection:
    max_repeats: 3
    window_seconds: 300
`
const published = await fetch(`${endpoint}/v1/contracts`, { method: 'POST', headers: { 'content-type': 'application/yaml', authorization: `Bearer ${adminKey}` }, body: CONTRACT })
if (published.status !== 201) throw new Error(`publishing the contract: HTTP ${published.status} ${await published.text()}`)

const kafka = createKafka({ brokers, clientId: 'bench-kill-switch', logger: createLogger('error'), level: logLevel.NOTHING })
const eventsTopic = topicName(TOPICS.events, prefix)
const admin = kafka.admin()
await admin.connect()

// 1. Processor throughput beside a consume-only baseline, on the same events.
const runs: Record<string, unknown>[][] = []
for (let seed = 1, total = 0; total < THROUGHPUT_EVENTS; seed++) {
  for (const run of syntheticRuns({ seed, runs: 200 })) {
    if (total >= THROUGHPUT_EVENTS) break
    runs.push(run)
    total += run.length
  }
}
const codec = await createEventCodec({ registryUrl, topic: eventsTopic, register: true })
const schemas = eventSchemas()
const messages = interleave(runs, 7).map((e, i) => {
  const v = validateEvent(e, i)
  if (!v.ok) throw new Error(`synthetic event ${i}: ${JSON.stringify(v.problems)}`)
  return { key: String(e.run_id), value: codec.encode(v.eventType, toAvroRecord(schemas.get(v.eventType)!, v.value, 'bench', Date.parse(String(e.occurred_at)))) }
})
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
await producer.connect()
for (let i = 0; i < messages.length; i += 2_000) await producer.send({ topic: eventsTopic, acks: -1, messages: messages.slice(i, i + 2_000) })
await producer.disconnect()
const eventCount = messages.length
const avgBytes = Math.round(messages.reduce((n, m) => n + m.value.length, 0) / eventCount)

/** events/s between the moment the slowest reader passed 10 % and the moment it reached 100 %. */
function rate(progress: () => Promise<number>) {
  return new Promise<{ eps: number; seconds: number }>((resolve, reject) => {
    let t10: number | undefined
    const started = performance.now()
    const tick = async () => {
      try {
        const done = await progress()
        const now = performance.now()
        if (t10 === undefined && done >= eventCount * 0.1) t10 = now
        if (done >= eventCount) return resolve({ eps: Math.round((eventCount * 0.9) / ((now - t10!) / 1000)), seconds: (now - started) / 1000 })
        if (now - started > 600_000) return reject(new Error(`stuck at ${done} of ${eventCount}`))
        setTimeout(tick, 50)
      } catch (err) {
        reject(err)
      }
    }
    void tick()
  })
}

async function consumeOnly(kafka: Kafka): Promise<{ eps: number; seconds: number }> {
  const counts = GROUPS.map(() => 0)
  const consumers = GROUPS.map((g, i) => {
    const c = kafka.consumer({ groupId: `bench-baseline-${g}-${Date.now()}`, readUncommitted: false, maxWaitTimeInMs: 50 })
    return { c, run: async () => {
      await c.connect()
      await c.subscribe({ topic: eventsTopic, fromBeginning: true })
      await c.run({ eachBatch: async ({ batch }) => void (counts[i]! += batch.messages.length) })
    } }
  })
  const measured = rate(async () => Math.min(...counts))
  await Promise.all(consumers.map((c) => c.run()))
  const result = await measured
  await Promise.all(consumers.map(({ c }) => c.disconnect()))
  return result
}
const baseline = await consumeOnly(kafka)

// The processors log to files, at debug, to count the CONCURRENT_TRANSACTIONS retries kafkajs makes (demoted to
// debug) and the batches rolled back (warn). Files, not pipes: a pipe this busy process drains late would block them.
const processorOut = path.join(dir, 'processors.out.log')
const processorErr = path.join(dir, 'processors.err.log')
const processors = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'stream-processors', 'main.ts')], {
  env: { ...env, LEDGER_REGISTRY_URL: registryUrl, LEDGER_LOG_LEVEL: 'debug' },
  stdio: ['ignore', openSync(processorOut, 'w'), openSync(processorErr, 'w')],
})
children.push(processors)
function processorLog() {
  const lines = `${readFileSync(processorOut, 'utf8')}\n${readFileSync(processorErr, 'utf8')}`.split('\n')
  return {
    concurrentRetries: lines.filter((l) => l.includes('"level":"debug"') && l.includes(`Failed to send messages: ${CONCURRENT_TRANSACTIONS_MESSAGE}`)).length,
    rolledBack: lines.filter((l) => l.includes('a batch was rolled back')).length,
    errors: lines.filter((l) => l.includes('"level":"error"')).length,
  }
}
const committed = async (group: string) => {
  const [t] = await admin.fetchOffsets({ groupId: `${prefix}ledger.${group}`, topics: [eventsTopic] })
  return t!.partitions.reduce((n, p) => n + Math.max(0, Number(p.offset)), 0)
}
const perGroup = await Promise.all(GROUPS.map((g) => rate(() => committed(g))))
const processorSeconds = Math.max(...perGroup.map((r) => r.seconds))
printTable(`processor throughput: ${eventCount.toLocaleString('en-US')} synthetic events (${avgBytes} bytes of Avro each), 6 partitions`, [
  { case: 'baseline: a consume-only kafkajs group', 'events/s (each reader)': baseline.eps, seconds: baseline.seconds.toFixed(1) },
  ...GROUPS.map((g, i) => ({ case: `processors: run-guard, tool-breaker, budget-aggregates in one group (${g})`, 'events/s (each reader)': perGroup[i]!.eps, seconds: perGroup[i]!.seconds.toFixed(1) })),
])
console.log(`\nslowest processor / consume-only baseline: ${(Math.min(...perGroup.map((r) => r.eps)) / baseline.eps).toFixed(2)}x`)
const catchUpLog = processorLog()
console.log(`CONCURRENT_TRANSACTIONS retries during the catch-up: ${catchUpLog.concurrentRetries}; batches rolled back: ${catchUpLog.rolledBack}`)

// 2. Trip latency: first without other load (the baseline), then under background load through the gateway.
function client(): LedgerClient {
  return createLedgerClient({ endpoint, apiKey: emitKey, agent: { name: 'bench-agent', version: '1.0.0' }, flushIntervalMs: 5, onError: () => undefined })
}
const ledger = client()

// Every decision about bench-agent's runs arrives on one server-sent event stream; a trip waits for its run's.
const killedRuns = new Map<string, () => void>()
let missedPushes = 0
const sseAbort = new AbortController()
const sse = await fetch(`${endpoint}/v1/agents/bench-agent/status/stream`, { headers: { authorization: `Bearer ${emitKey}` }, signal: sseAbort.signal })
const sseReading = (async () => {
  const reader = sse.body!.getReader()
  const utf8 = new TextDecoder()
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true as const }))
    if (done) return
    buffer += utf8.decode(value, { stream: true })
    for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
      for (const line of buffer.slice(0, end).split('\n')) {
        if (!line.startsWith('data:')) continue
        const d = (JSON.parse(line.slice(5)) as { decision?: { scope: string; scope_key: string; state: string } }).decision
        if (d?.scope === 'run' && d.state === 'killed') killedRuns.get(d.scope_key)?.()
      }
      buffer = buffer.slice(end + 2)
    }
  }
})()

/**
 * One trip: ms from the agent emitting the offending call to guard() refusing it. The gateway's push says when its
 * view has the decision, and guard() is called from then until it refuses (the first call does): what an agent
 * calling guard() at that moment sees, without hundreds of guard() calls per trip loading the gateway.
 */
async function trip(): Promise<number> {
  const run = ledger.startRun({ principal: { type: 'user', id: 'u-1' }, owner: 'bench' })
  const args = { ticket: ulid() }
  run.toolCall({ tool: 'crm.lookup', action_class: 'read', arguments: args, status: 'ok', latency_ms: 10 })
  run.toolCall({ tool: 'crm.lookup', action_class: 'read', arguments: args, status: 'ok', latency_ms: 10 })
  await run.guard({ tool: 'crm.lookup' })
  const pushed = new Promise<void>((resolve) => killedRuns.set(run.runId, resolve))
  const started = performance.now()
  const offending = run.toolCall({ tool: 'crm.lookup', action_class: 'read', arguments: args, status: 'ok', latency_ms: 10 }).eventId
  void ledger.flush()
  // Also ask every 100 ms, in case the push is missed (counted: a missed push costs up to 100 ms here).
  let polling = true
  const polled = (async () => {
    while (polling) {
      await sleep(100)
      if (!polling) return
      try {
        ;(await run.guard({ tool: 'crm.lookup' })).release()
      } catch (err) {
        if (err instanceof RunKilledError) return 'polled' as const
        throw err
      }
      if (performance.now() - started > 120_000) {
        const end = (await admin.fetchTopicOffsets(eventsTopic)).reduce((n, o) => n + Number(o.high), 0)
        throw new Error(`run ${run.runId} was not killed within 120 s; the run guard is ${end - (await committed('control-processors'))} events behind`)
      }
    }
    return 'stopped' as const
  })()
  const how = await Promise.race([pushed.then(() => 'pushed' as const), polled])
  polling = false
  polled.catch(() => undefined) // a poll still in flight may end after the push; its outcome no longer matters
  killedRuns.delete(run.runId)
  if (how === 'polled') missedPushes += 1
  for (;;) {
    try {
      ;(await run.guard({ tool: 'crm.lookup' })).release()
    } catch (err) {
      if (!(err instanceof RunKilledError) || err.trippingEventId !== offending) throw new Error(`unexpected refusal: ${(err as Error).message}`)
      return performance.now() - started
    }
  }
}
/** `count` trips, `concurrency` at a time; sorted ms. */
/** `count` trips, `concurrency` at a time, none started after `deadline`; sorted ms. */
async function trips(count: number, concurrency: number, deadline = Infinity): Promise<number[]> {
  const ms: number[] = []
  let started = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (started < count && performance.now() < deadline) {
        started += 1
        ms.push(await trip())
      }
    }),
  )
  return ms.sort((a, b) => a - b)
}
const tripRow = (name: string, ms: number[]) => ({ case: name, trips: ms.length, p50: `${percentile(ms, 50).toFixed(1)} ms`, p90: `${percentile(ms, 90).toFixed(1)} ms`, p99: `${percentile(ms, 99).toFixed(1)} ms`, max: `${(ms.at(-1) ?? NaN).toFixed(1)} ms` })

await trips(20, 1) // warm-up, not reported
const idleMs = await trips(IDLE_TRIPS, 1)

// Background load through the gateway: model and tool calls of many runs, none of which trips anything. A token
// bucket at `backgroundEps`; each case sets the rate.
let backgroundEps = 0
let backgroundSent = 0
let backgroundErrors = 0
let backgroundOn = true
const background = (async () => {
  const batch = 100
  let bgRun = `bg-${ulid()}`
  let bgStep = 0
  let tokens = 0
  let last = performance.now()
  while (backgroundOn) {
    const now = performance.now()
    tokens = Math.min(tokens + ((now - last) / 1000) * backgroundEps, backgroundEps) // at most 1 s of burst
    last = now
    if (tokens < batch) {
      await sleep(backgroundEps > 0 ? Math.max(1, ((batch - tokens) / backgroundEps) * 1000) : 50)
      continue
    }
    tokens -= batch
    if (bgStep >= 30) (bgRun = `bg-${ulid()}`), (bgStep = 0)
    const events = Array.from({ length: batch }, (_, i) => {
      const base = { event_id: ulid(), run_id: `${bgRun}-${i % 20}`, step: bgStep, occurred_at: Date.now(), agent_name: 'background-agent', agent_version: '1', principal: { type: 'user', id: `u-${i % 50}` } }
      if (i % 2 === 0) return { type: 'model.call', ...base, provider: 'openai', model: 'gpt-4.1', input_tokens: 800, output_tokens: 120, cost_usd: 0.0001, latency_ms: 400 }
      const args = { id: ulid() }
      return { type: 'tool.call', ...base, tool: 'crm.lookup', action_class: 'read', arguments: JSON.stringify(args), argument_digest: actionDigest('crm.lookup', args), status: 'ok', latency_ms: 20 }
    })
    bgStep += 1
    const res = await fetch(`${endpoint}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${emitKey}` }, body: JSON.stringify(events) }).catch(() => undefined)
    await res?.arrayBuffer()
    if (res?.status === 202) backgroundSent += batch
    else backgroundErrors += 1
  }
})()
const runGuardLag = async () => (await admin.fetchTopicOffsets(eventsTopic)).reduce((n, o) => n + Number(o.high), 0) - (await committed('control-processors'))

/**
 * Trips under `eps` events/s of background load, `TRIP_CONCURRENCY` at a time, until TRIPS trips or `seconds` passed:
 * a load the processors cannot keep up with makes every trip slower than the last, so it is measured for a while,
 * with the run guard's lag, rather than for ever.
 */
async function loadedTrips(eps: number, seconds: number) {
  backgroundEps = eps
  await sleep(5_000) // let the load settle
  await trips(20, TRIP_CONCURRENCY) // warm-up, not reported
  const lags: number[] = [await runGuardLag()]
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      await sleep(1_000)
      lags.push(await runGuardLag())
    }
  })()
  const sentBefore = backgroundSent
  const started = performance.now()
  const ms = await trips(TRIPS, TRIP_CONCURRENCY, started + seconds * 1000)
  const elapsed = (performance.now() - started) / 1000
  sampling = false
  await sampler
  lags.push(await runGuardLag())
  backgroundEps = 0
  // Let the processors catch up before the next case.
  for (const deadline = performance.now() + 600_000; (await runGuardLag()) > 0 && performance.now() < deadline; ) await sleep(500)
  return { eps, ms, achievedEps: Math.round((backgroundSent - sentBefore) / elapsed), lagStart: lags[0]!, lagEnd: lags.at(-1)!, lagMax: Math.max(...lags), seconds: elapsed }
}
const atGoal = await loadedTrips(BACKGROUND_EPS, LOADED_SECONDS)
const sustained = await loadedTrips(SUSTAINED_EPS, 900)

// 3. Overshoot: 32 concurrent calls of one run.
async function overshoot(reserve: boolean, estimate: number, actual: () => number): Promise<number> {
  const c = client()
  const run: RunHandle = c.startRun({ principal: { type: 'user', id: 'u-2' }, owner: 'bench', budget: { max_cost_usd: 1.0 } })
  await Promise.all(
    Array.from({ length: WORKERS }, async () => {
      for (;;) {
        let permit
        try {
          permit = await run.guard(reserve ? { estimatedCostUsd: estimate } : {})
        } catch (err) {
          if (err instanceof LedgerGuardError) return
          throw err
        }
        await sleep(5 + Math.random() * 45)
        run.modelCall({ provider: 'openai', model: 'gpt-4.1', input_tokens: 1000, output_tokens: 200, cost_usd: Math.round(actual() * 1e6) / 1e6, latency_ms: 30, permit })
      }
    }),
  )
  await c.close()
  const status = (await (await fetch(`${endpoint}/v1/runs/${run.runId}/status`, { headers: { authorization: `Bearer ${emitKey}` } })).json()) as { budget: { cost_usd_emitted: number } }
  return status.budget.cost_usd_emitted - 1.0
}
const overshootCases: [string, boolean, number, () => number][] = [
  ['reservations; cost = estimate ($0.05)', true, 0.05, () => 0.05],
  ['reservations; cost up to 1.4x the estimate', true, 0.05, () => 0.05 * (0.6 + Math.random() * 0.8)],
  ['baseline: no reservations; $0.05 a call', false, 0.05, () => 0.05],
]
const overshootRows: Record<string, string | number>[] = []
for (const [name, reserve, estimate, actual] of overshootCases) {
  const over: number[] = []
  for (let i = 0; i < OVERSHOOT_RUNS; i++) over.push(await overshoot(reserve, estimate, actual))
  over.sort((a, b) => a - b)
  overshootRows.push({ case: name, runs: over.length, 'worst overshoot $': Math.max(0, over.at(-1)!).toFixed(2), 'median $': Math.max(0, percentile(over, 50)).toFixed(2), 'worst / $1.00 limit': `${Math.round(Math.max(0, over.at(-1)!) * 100)} %` })
}
backgroundOn = false
await background

const allLog = processorLog()
console.log(`\nprocessors: ${allLog.concurrentRetries} CONCURRENT_TRANSACTIONS retries, ${allLog.rolledBack} batches rolled back, ${allLog.errors} error lines`)
const loadedRow = (r: Awaited<ReturnType<typeof loadedTrips>>) => ({
  ...tripRow(`${r.eps} events/s asked, ${r.achievedEps} sent; ${TRIP_CONCURRENCY} trips at a time`, r.ms),
  'run-guard lag, start → end (max)': `${r.lagStart} → ${r.lagEnd} (${r.lagMax}) events`,
  seconds: r.seconds.toFixed(0),
})
printTable(`trip latency: offending event emitted → guard() refuses; background load through the gateway`, [{ ...tripRow('baseline: no other load, one trip at a time', idleMs), 'run-guard lag, start → end (max)': '', seconds: '' }, loadedRow(atGoal), loadedRow(sustained)])
console.log(`${backgroundErrors} background requests failed; ${missedPushes} trips were seen by polling guard() every 100 ms, not by the push`)
printTable(`budget overshoot: ${WORKERS} concurrent calls of one run, $1.00 limit, calls of 5–50 ms`, overshootRows)

console.log(`\nmachine load average (1 min): ${loadAtStart.toFixed(1)} at the start, ${os.loadavg()[0]!.toFixed(1)} at the end, ${os.cpus().length} cores`)

await ledger.close()
sseAbort.abort()
await sseReading
await admin.disconnect()
for (const c of children.reverse()) {
  c.kill('SIGTERM')
  await new Promise((r) => (c.exitCode !== null ? r(undefined) : c.once('exit', r)))
}
rmSync(dir, { recursive: true, force: true })
await stopBrokers()

import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { test } from 'node:test'
import type { Kafka } from 'kafkajs'
import { TOPICS, topicName, type TopicDefinition } from '../../infra/kafka/topics.ts'
import { REPO_ROOT } from '../../infra/paths.ts'
import { eventSchemas } from '../../schemas/event-schemas.ts'
import { toAvroRecord } from '../../schemas/json-form.ts'
import { validateEvent } from '../../services/gateway/event-validation.ts'
import type { BudgetAlert, KillSwitchDecision } from '../../schemas/control-schemas.ts'
import { createControlCodec } from '../../services/shared/control-codec.ts'
import { readToEnd } from '../../services/shared/kafka.ts'
import { createBudgetAggregatesProcessor } from '../../stream-processors/budget/domain/budget-aggregates.ts'
import { parseAgentContract } from '../../stream-processors/contracts/agent-contract.ts'
import type { LedgerEventView } from '../../stream-processors/domain-event.ts'
import type { ControlEmit } from '../../stream-processors/kill-switch/domain/control-records.ts'
import { createRunGuardProcessor } from '../../stream-processors/kill-switch/domain/run-guard.ts'
import { createToolBreakerProcessor } from '../../stream-processors/kill-switch/domain/tool-breaker.ts'
import { TopologyDriver } from '../../stream-processors/runtime/topology-driver.ts'
import { startTestGateway } from '../helpers/gateway.ts'
import { testLogger, unique, waitFor } from '../helpers/stack.ts'
import { interleave, mulberry32, syntheticRuns } from '../helpers/synthetic-runs.ts'

/**
 * Crash test: the budget and kill-switch processors run as their own process (`stream-processors/main.ts`, the
 * `npm run processors` deployable) and are killed with SIGKILL at random points, at least 10 times, while a
 * 100k-event stream is produced. Each kill lands while that instance is processing: after it committed at least one
 * transaction, and while the stream is not consumed yet. After a last instance caught up:
 *
 * - run-guard and budget-aggregates changelogs equal a full replay of the log, key for key;
 * - no decision and no budget alert appears twice on the control topic;
 * - the run kills are exactly the replay's (same decision ids); each agent-version and tenant budget breach trips
 *   once, for the same scopes as in the replay;
 * - every tool circuit moves through its phases without repeating one (a restart never re-trips a breaker).
 *
 * Cross-run processors see runs of different partitions in the order they consumed them, so which event crossed
 * an aggregate's limit, and the tool breakers' windows, may differ from a partition-by-partition replay; the
 * aggregates' totals and flags, and everything per run, may not.
 */
const EVENTS = Number(process.env.LEDGER_CRASH_EVENTS ?? 100_000)
const KILLS = Number(process.env.LEDGER_CRASH_KILLS ?? 10)
/** The three processors share one consumer group. */
const GROUPS = ['control-processors'] as const

const contractYaml = (version: string) => `agent:
  name: refund-assistant
  version: "${version}"
  owner: finance-ops
  budgets:
    max_steps: 40
    max_cost_usd_per_run: 0.5
    max_cost_usd_per_day: 40
  tools:
    allowlist:
      - name: zendesk.read_ticket
      - name: stripe.lookup_charge
      - name: stripe.create_refund
        requires_approval: true
  circuit_breaker:
    error_rate_threshold: 0.4
    min_calls: 5
    window_calls: 5
    open_seconds: 30
`
const VERSIONS = ['1.0.0', '1.1.0', '1.2.0']
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

test(`processors killed with SIGKILL ${KILLS}+ times during a ${EVENTS}-event stream end with the state of a full replay and no duplicate decisions`, { timeout: 600_000 }, async () => {
  const started = Date.now()
  const gw = await startTestGateway()
  const admin = gw.kafka.admin()
  await admin.connect()
  let child: ChildProcess | undefined
  const stderr: string[] = []
  try {
    for (const v of VERSIONS) {
      const res = await fetch(`${gw.url}/v1/contracts`, { method: 'POST', headers: { 'content-type': 'application/yaml', authorization: `Bearer ${gw.keys['acme:admin']}` }, body: contractYaml(v) })
      assert.equal(res.status, 201)
    }
    // The stream: whole runs, interleaved, encoded as the gateway would, keyed by run id.
    const runs: Record<string, unknown>[][] = []
    let total = 0
    for (let seed = 1; total < EVENTS; seed++) {
      for (const run of syntheticRuns({ seed, runs: 200 })) {
        if (total >= EVENTS) break
        runs.push(run)
        total += run.length
      }
    }
    const events = interleave(runs, 99)
    const schemas = eventSchemas()
    // The gateway runtime's codec registered the schemas; the test gateway's own one is read-only.
    const encoder = gw.runtime.deps.codec
    // Through the gateway's own validation (defaults, times in epoch ms), then encoded as it would.
    const messages = events.map((e, i) => {
      const v = validateEvent(e, i)
      if (!v.ok) throw new Error(`synthetic event ${i} is invalid: ${JSON.stringify(v.problems)}`)
      return { key: String(e.run_id), value: encoder.encode(v.eventType, toAvroRecord(schemas.get(v.eventType)!, v.value, 'acme', Date.parse(String(e.occurred_at)))) }
    })

    const env = {
      ...process.env,
      LEDGER_KAFKA_BROKERS: process.env.LEDGER_KAFKA_BROKERS!,
      LEDGER_REGISTRY_URL: gw.registryUrl,
      LEDGER_TOPIC_PREFIX: gw.prefix,
      LEDGER_PROCESSOR_SESSION_TIMEOUT_MS: '6000',
      LEDGER_TENANT_MAX_COST_USD_PER_DAY: '150',
      LEDGER_LOG_LEVEL: 'warn',
    }
    // node itself, not the tsx launcher: SIGKILL cannot be forwarded, so killing a launcher would leave its
    // child processing on as a zombie.
    const startChild = () => {
      const c = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'stream-processors', 'main.ts')], { cwd: REPO_ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] })
      c.stderr!.setEncoding('utf8').on('data', (d: string) => stderr.push(...d.split('\n').filter((l) => l !== '')))
      child = c
      return c
    }
    const exited = (c: ChildProcess) => new Promise<NodeJS.Signals | number | null>((r) => (c.exitCode !== null || c.signalCode !== null ? r(c.signalCode ?? c.exitCode) : c.once('exit', (code, signal) => r(signal ?? code))))
    /** Records each group committed, summed over partitions. */
    const committed = async () => {
      let sum = 0n
      for (const group of GROUPS) {
        const [t] = await admin.fetchOffsets({ groupId: `${gw.prefix}ledger.${group}`, topics: [gw.topic] })
        for (const p of t!.partitions) if (BigInt(p.offset) > 0n) sum += BigInt(p.offset)
      }
      return sum
    }

    // Produce in 100 chunks while killing the processors at random moments of their work. The stream is spread over
    // the kill cycles (the chunks of cycle k wait for kill k - 1), so it is still flowing when the last kill comes,
    // however fast this machine processes it.
    const producer = gw.kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    let produced = 0
    let kills = 0
    const producing = (async () => {
      const chunks = 100
      const chunk = Math.ceil(messages.length / chunks)
      for (let n = 0; n * chunk < messages.length; n++) {
        while (n >= ((kills + 1) * chunks) / KILLS) await sleep(100)
        await producer.send({ topic: gw.topic, acks: -1, messages: messages.slice(n * chunk, (n + 1) * chunk) })
        produced = Math.min(messages.length, (n + 1) * chunk)
        await sleep(400)
      }
    })()
    const rnd = mulberry32(2026)
    while (kills < KILLS) {
      const before = await committed()
      const c = startChild()
      // This instance restored, fenced its predecessor, joined (after the killed member's session expired) and
      // committed a transaction: it is processing. Kill it a random moment later.
      await Promise.race([
        waitFor(async () => (await committed()) > before, 60_000, `instance ${kills + 1} to commit a transaction`),
        exited(c).then((code) => Promise.reject(new Error(`instance ${kills + 1} exited (${code}) before it was killed`))),
      ])
      await sleep(rnd() * 1_500)
      const behind = (await committed()) < BigInt(produced) * BigInt(GROUPS.length) || produced < messages.length
      c.kill('SIGKILL')
      assert.equal(await exited(c), 'SIGKILL')
      assert.ok(behind, `kill ${kills + 1} came after the processors had consumed the whole stream; the stream is too short for ${KILLS} kills`)
      kills += 1
    }
    await producing
    await producer.disconnect()
    const killedAt = Date.now()

    // A last instance catches up; then it is stopped cleanly.
    const last = startChild()
    const high = new Map((await admin.fetchTopicOffsets(gw.topic)).map((o) => [o.partition, o.high]))
    for (const group of GROUPS) {
      await waitFor(
        async () => {
          const [t] = await admin.fetchOffsets({ groupId: `${gw.prefix}ledger.${group}`, topics: [gw.topic] })
          return t!.partitions.every((p) => p.offset === high.get(p.partition))
        },
        300_000,
        `${group} to consume the whole stream`,
      )
    }
    const caughtUpAt = Date.now()
    last.kill('SIGTERM')
    assert.equal(await exited(last), 0, 'SIGTERM stops the processors cleanly')

    // The replay: the same log, one partition after another (runs never span partitions).
    const contract = (v: string) => parseAgentContract(contractYaml(v))
    const contracts = new Map(VERSIONS.map((v) => [v, contract(v)]))
    const lookup = (_t: string, _n: string, cv: string | undefined, av: string) => contracts.get(cv ?? av) ?? contracts.get(av)
    const byPartition = await readAll(gw.kafka, gw.topic, false)
    const views: LedgerEventView[] = []
    for (const p of [...byPartition.keys()].sort((a, b) => a - b)) {
      for (const m of byPartition.get(p)!) views.push((await gw.codec.decode(m.value!)).json as LedgerEventView)
    }
    assert.equal(views.length, total, 'every produced event is in the log once')
    const guard = new TopologyDriver(createRunGuardProcessor(lookup))
    guard.pipe(views)
    const aggregates = new TopologyDriver(createBudgetAggregatesProcessor(lookup, { maxCostUsdPerDay: 150 }))
    aggregates.pipe(views)
    const breaker = new TopologyDriver(createToolBreakerProcessor(lookup))
    breaker.pipe(views)

    const changelogOf = async (def: TopicDefinition) => {
      const state = new Map<string, unknown>()
      for (const records of (await readAll(gw.kafka, topicName(def, gw.prefix), true)).values()) {
        for (const r of records) {
          if (r.value === null) state.delete(r.key!.toString())
          else state.set(r.key!.toString(), JSON.parse(r.value.toString()))
        }
      }
      return state
    }
    for (const [name, driver, def] of [['run-guard', guard, TOPICS.runGuardChangelog], ['budget-aggregates', aggregates, TOPICS.budgetAggregatesChangelog]] as const) {
      const changelog = await changelogOf(def)
      const replay = new Map([...driver.store.entries()].map(([k, v]) => [k, JSON.parse(JSON.stringify(v))]))
      assert.equal(changelog.size, replay.size, `${name}: keys`)
      for (const [k, v] of replay) assert.deepEqual(changelog.get(k), v, `${name}: state of ${k}`)
    }
    const breakerState = await changelogOf(TOPICS.toolBreakerChangelog)
    assert.deepEqual([...breakerState.keys()].sort(), [...breaker.store.entries()].map(([k]) => k).sort(), 'tool-breaker: keys')

    const codec = await createControlCodec({ registryUrl: gw.registryUrl, controlTopic: topicName(TOPICS.control, gw.prefix), budgetStateTopic: topicName(TOPICS.budgetState, gw.prefix), register: false })
    const decided: KillSwitchDecision[] = []
    const alerts: BudgetAlert[] = []
    const where = new Map<string, string[]>()
    for (const [partition, records] of await readAll(gw.kafka, topicName(TOPICS.control, gw.prefix), true)) {
      for (const r of records) {
        const d = await codec.decode(r.value!)
        if (d.kind === 'kill_switch.decision') decided.push(d.record)
        else if (d.kind === 'budget.alert') alerts.push(d.record)
        if (d.kind !== 'budget.state') {
          const id = d.kind === 'kill_switch.decision' ? d.record.decision_id : (d.record as BudgetAlert).alert_id
          where.set(id, [...(where.get(id) ?? []), `${partition}/${r.at}`])
        }
      }
    }
    const twice = [...where].filter(([, at]) => at.length > 1).map(([id, at]) => `${id} at ${at.join(', ')}: ${JSON.stringify(decided.find((d) => d.decision_id === id) ?? alerts.find((a) => a.alert_id === id))}`)
    const ids = decided.map((d) => d.decision_id)
    assert.equal(new Set(ids).size, ids.length, `no decision appears twice (${ids.length} decisions); twice:\n${twice.join('\n')}`)
    const alertIds = alerts.map((a) => a.alert_id)
    assert.equal(new Set(alertIds).size, alertIds.length, `no budget alert appears twice (${alertIds.length} alerts); twice:\n${twice.join('\n')}`)

    const replayed = <T>(driver: { emitted: ControlEmit[] }, kind: ControlEmit['kind']) => driver.emitted.filter((e) => e.kind === kind).map((e) => e.record as T)
    // Per run: exactly the replay's decisions and alerts.
    const replayKills = replayed<KillSwitchDecision>(guard, 'kill_switch.decision').map((d) => d.decision_id).sort()
    assert.ok(replayKills.length > 20, `the stream trips run kills (${replayKills.length})`)
    assert.deepEqual(decided.filter((d) => d.decided_by === 'run-guard').map((d) => d.decision_id).sort(), replayKills, 'the same run kills as the replay, each once')
    assert.deepEqual(alerts.filter((a) => a.scope === 'run').map((a) => a.alert_id).sort(), replayed<BudgetAlert>(guard, 'budget.alert').map((a) => a.alert_id).sort(), 'the same run budget alerts as the replay')
    // Across runs: the same scopes trip, once each.
    const scopeOf = (d: KillSwitchDecision) => `${d.scope}/${d.scope_key}/${d.state}/${d.trigger}`
    const aggregateKills = replayed<KillSwitchDecision>(aggregates, 'kill_switch.decision').map(scopeOf).sort()
    assert.ok(aggregateKills.length > 0, 'the stream breaches an aggregate budget')
    assert.deepEqual(decided.filter((d) => d.decided_by === 'budget-aggregates').map(scopeOf).sort(), aggregateKills, 'the same aggregate budgets are breached as in the replay, each once')
    const alertScope = (a: BudgetAlert) => `${a.scope}/${a.scope_key}/${a.window}/${a.dimension}/${a.level}`
    assert.deepEqual(alerts.filter((a) => a.scope !== 'run').map(alertScope).sort(), replayed<BudgetAlert>(aggregates, 'budget.alert').map(alertScope).sort(), 'the same aggregate alerts as the replay')
    // Tool circuits: control-topic order is per key, so each circuit's decisions are in the order they were made.
    const circuits = new Map<string, string[]>()
    for (const d of decided.filter((x) => x.decided_by === 'tool-breaker')) circuits.set(d.scope_key, [...(circuits.get(d.scope_key) ?? []), d.state])
    assert.ok(circuits.size > 0, 'the stream opens a tool circuit')
    for (const [tool, states] of circuits) {
      assert.equal(states[0], 'circuit_open', `${tool}: the first decision opens the circuit`)
      for (let i = 1; i < states.length; i++) assert.notEqual(states[i], states[i - 1], `${tool}: decision ${i} repeats ${states[i]}`)
    }

    const errors = stderr.filter((l) => l.includes('"level":"error"'))
    testLogger.info('crash test', { kills, events: views.length, decisions: ids.length })
    console.log(
      `# crash test: ${kills} SIGKILLs, ${views.length} events, ${replayKills.length} run kills, ${aggregateKills.length} aggregate kills, ${circuits.size} tool circuits; ` +
        `state equal to the replay; kills done after ${((killedAt - started) / 1000).toFixed(0)} s, caught up after ${((caughtUpAt - started) / 1000).toFixed(0)} s; ` +
        `error lines from the processors: ${JSON.stringify(Object.fromEntries([...new Set(errors.map((l) => /"msg":"([^"]{0,80})/.exec(l)?.[1] ?? l.slice(0, 80)))].map((m) => [m, errors.filter((l) => l.includes(m)).length])))}`,
    )
  } catch (err) {
    console.error(stderr.filter((l) => !/Limiting retries|switched default partitioner/.test(l)).slice(-60).join('\n'))
    throw err
  } finally {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await admin.disconnect()
    await gw.stop()
  }
})

/** Every record of a topic by partition, read to its end (read_committed for transactional topics). */
async function readAll(kafka: Kafka, topic: string, readCommitted: boolean) {
  const out = new Map<number, { key: Buffer | null; value: Buffer | null; at: string }[]>()
  await readToEnd(kafka, {
    topic,
    groupId: unique('read-all'),
    readCommitted,
    onMessage: (message, partition) => {
      let list = out.get(partition)
      if (list === undefined) out.set(partition, (list = []))
      // Where a record came from, for the failure messages: offset @ producer id . epoch (each instance has its own epoch).
      const ctx = (message as unknown as { batchContext?: { producerId: string; producerEpoch: number } }).batchContext
      list.push({ key: message.key, value: message.value, at: `${message.offset}@${ctx?.producerId}.${ctx?.producerEpoch}` })
    },
  })
  return out
}

import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { TOPICS, topicName } from '../../infra/kafka/topics.ts'
import type { LedgerClickHouse } from '../../services/shared/clickhouse.ts'
import { startTestGateway, readTopic, type TestGateway } from '../helpers/gateway.ts'
import { closeTestClickHouse, startTestSink, testClickHouse } from '../helpers/lineage.ts'
import { emitRefundRun, publishRefundContract } from '../helpers/refund-scenario.ts'
import { waitFor } from '../helpers/stack.ts'
import { ulid } from '../../client/src/ulid.ts'
import type { LineageSink } from '../../stream-processors/lineage/lineage-sink.ts'

let gw: TestGateway
let ch: LedgerClickHouse
let sink: LineageSink
before(async () => {
  gw = await startTestGateway({ processors: true })
  ch = await testClickHouse()
  sink = await startTestSink(gw, ch)
  await publishRefundContract(gw)
})
after(async () => {
  await sink?.stop()
  await gw?.stop()
  await closeTestClickHouse()
})

const count = async (sql: string, params: Record<string, unknown> = {}) => Number((await ch.query<{ n: string }>(sql, params))[0]?.n ?? 0)

test('the refund run lands in ClickHouse with typed lineage columns, its look-ups, rollups and canonical payloads', async () => {
  const run = await emitRefundRun(gw.url, gw.keys['acme:emit']!)
  const db = ch.database
  await waitFor(async () => (await count(`SELECT count() AS n FROM ${db}.events FINAL WHERE tenant = 'acme' AND run_id = {r:String}`, { r: run.runId })) === 10, 10_000, 'the run in ClickHouse')

  const [refund] = await ch.query<Record<string, unknown>>(`SELECT * FROM ${db}.events FINAL WHERE tenant = 'acme' AND event_id = {id:String}`, { id: run.ids.refund })
  assert.equal(refund!.event_type, 'tool.call')
  assert.equal(refund!.tool, 'stripe.create_refund')
  assert.equal(refund!.action_class, 'irreversible')
  assert.equal(refund!.action_digest, run.digest)
  assert.equal(refund!.amount_usd, 240)
  assert.equal(refund!.principal_id, 'u-1042')
  assert.equal(refund!.parent_event_id, run.ids.model)
  assert.equal(refund!.source_topic, gw.topic)
  // The payload is the event's canonical JSON: sorted keys, no whitespace.
  const payload = String(refund!.payload)
  const parsed = JSON.parse(payload) as Record<string, unknown>
  assert.equal(parsed.event_id, run.ids.refund)
  assert.deepEqual(Object.keys(parsed), Object.keys(parsed).sort())
  assert.doesNotMatch(payload, /\s"|":\s/)

  const [policy] = await ch.query<Record<string, unknown>>(`SELECT * FROM ${db}.policy_decisions FINAL WHERE tenant = 'acme' AND run_id = {r:String}`, { r: run.runId })
  assert.equal(policy!.decision, 'require_approval')
  assert.equal(policy!.action_digest, run.digest)
  assert.equal(await count(`SELECT count() AS n FROM ${db}.actions FINAL WHERE tenant = 'acme' AND run_id = {r:String}`, { r: run.runId }), 3)
  const [located] = await ch.query<{ run_id: string }>(`SELECT run_id FROM ${db}.event_locator FINAL WHERE tenant = 'acme' AND event_id = {id:String}`, { id: run.ids.evidence })
  assert.equal(located!.run_id, run.runId)
  const [started] = await ch.query<Record<string, unknown>>(`SELECT * FROM ${db}.runs FINAL WHERE tenant = 'acme' AND run_id = {r:String}`, { r: run.runId })
  assert.equal(started!.owner, 'finance-ops')
  assert.equal(started!.contract_version, '1.4.2')
  const [ending] = await ch.query<Record<string, unknown>>(`SELECT * FROM ${db}.run_endings FINAL WHERE tenant = 'acme' AND run_id = {r:String}`, { r: run.runId })
  assert.equal(ending!.outcome, 'succeeded')
  const [usage] = await ch.query<Record<string, unknown>>(
    `SELECT sum(events) AS events, sum(tool_calls) AS tool_calls, sum(cost_usd) AS cost, sum(amount_usd) AS amount FROM ${db}.run_usage WHERE tenant = 'acme' AND run_id = {r:String}`,
    { r: run.runId },
  )
  assert.deepEqual({ events: Number(usage!.events), tools: Number(usage!.tool_calls), cost: usage!.cost, amount: usage!.amount }, { events: 10, tools: 3, cost: 0.0121, amount: 240 })
  const [hourly] = await ch.query<Record<string, unknown>>(
    `SELECT sum(events) AS events, sum(amount_usd) AS amount, uniqMerge(runs) AS runs FROM ${db}.usage_hourly WHERE tenant = 'acme' AND agent_version = '1.4.2'`,
  )
  assert.deepEqual({ events: Number(hourly!.events), amount: hourly!.amount, runs: Number(hourly!.runs) }, { events: 10, amount: 240, runs: 1 })
})

test('kill-switch decisions from the control topic are stored with the run they name', async () => {
  const runId = `run-loop-${Date.now()}`
  const events = Array.from({ length: 4 }, (_, i) => ({
    type: 'tool.call',
    event_id: ulid(),
    run_id: runId,
    step: i,
    occurred_at: new Date(Date.UTC(2026, 10, 22, 10, 0, i)).toISOString(),
    agent_name: 'refund-assistant',
    agent_version: '1.4.2',
    principal: { type: 'user', id: 'u-1' },
    tool: 'stripe.create_refund',
    action_class: 'read',
    argument_digest: 'sha256:' + 'a'.repeat(64),
    arguments: '{"charge_id":"ch_1"}',
    status: 'ok',
  }))
  const res = await fetch(`${gw.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${gw.keys['acme:emit']}` }, body: JSON.stringify(events) })
  assert.equal(res.status, 202)
  const db = ch.database
  const rows = await waitFor(async () => {
    const r = await ch.query<Record<string, unknown>>(`SELECT * FROM ${db}.control_events FINAL WHERE tenant = 'acme' AND run_id = {r:String} AND kind = 'kill_switch.decision'`, { r: runId })
    return r.length > 0 ? r : undefined
  }, 15_000, async () => 'the loop kill in ClickHouse; stored: ' + JSON.stringify(await ch.query(`SELECT kind, run_id, trigger FROM ${db}.control_events`)) + ' sink ' + JSON.stringify(sink.stats))
  assert.equal(rows.length, 1)
  assert.equal(rows[0]!.trigger, 'tool_loop')
  assert.equal(rows[0]!.state, 'killed')
  assert.equal(rows[0]!.scope, 'run')
  assert.equal(rows[0]!.decided_by, 'run-guard')
})

test('a poison record goes to the dead-letter topic with its reason, and the records after it are stored', async () => {
  const producer = gw.kafka.producer()
  await producer.connect()
  await producer.send({ topic: gw.topic, messages: [{ key: 'run-poison', value: Buffer.from('not avro at all') }] })
  await producer.disconnect()
  const run = await emitRefundRun(gw.url, gw.keys['acme:emit']!)
  const db = ch.database
  await waitFor(async () => (await count(`SELECT count() AS n FROM ${db}.events FINAL WHERE tenant = 'acme' AND run_id = {r:String}`, { r: run.runId })) === 10, 10_000, 'the run after the poison record')
  // The budget and kill-switch processors dead-letter it too, each under its own name.
  const all = await readTopic(gw.kafka, topicName(TOPICS.deadLetter, gw.prefix), 4, 10_000, 'run-poison')
  const dead = all.filter((d) => d.headers['ledger-dlq-processor'] === 'lineage-sink')
  assert.equal(dead.length, 1)
  assert.equal(dead[0]!.headers['ledger-dlq-processor'], 'lineage-sink')
  assert.match(dead[0]!.headers['ledger-dlq-reason'] ?? '', /wire format/)
  assert.equal(dead[0]!.value.toString(), 'not avro at all')
  assert.ok(sink.stats.deadLettered >= 1)
})

test('a sink restarted from the same group stores nothing twice', async () => {
  const run = await emitRefundRun(gw.url, gw.keys['acme:emit']!)
  const db = ch.database
  await waitFor(async () => (await count(`SELECT count() AS n FROM ${db}.events WHERE tenant = 'acme' AND run_id = {r:String}`, { r: run.runId })) === 10, 10_000, 'the run')
  await sink.stop()
  // Forget the committed offsets: a new sink reads everything again; tokens drop every row.
  const resetter = gw.kafka.admin()
  await resetter.connect()
  await resetter.resetOffsets({ groupId: `${gw.prefix}ledger.lineage-sink`, topic: gw.topic, earliest: true })
  await resetter.disconnect()
  const before = await count(`SELECT count() AS n FROM ${db}.events`)
  sink = await startTestSink(gw, ch)
  // It reads the topic from the start, finds every record in a finished flush of the batch log,
  // skips them and commits past them.
  const admin = gw.kafka.admin()
  await admin.connect()
  const high = new Map((await admin.fetchTopicOffsets(gw.topic)).map((o) => [o.partition, o.high]))
  await waitFor(
    async () => {
      const [committed] = await admin.fetchOffsets({ groupId: `${gw.prefix}ledger.lineage-sink`, topics: [gw.topic] })
      // An empty partition has nothing to commit (a negative offset against a high watermark of 0).
      return committed!.partitions.every((p) => p.offset === high.get(p.partition) || (high.get(p.partition) === '0' && Number(p.offset) < 0))
    },
    15_000,
    async () => `the second sink to pass the whole topic: high ${JSON.stringify([...high])}, committed ${JSON.stringify((await admin.fetchOffsets({ groupId: `${gw.prefix}ledger.lineage-sink`, topics: [gw.topic] }))[0]!.partitions)}, stats ${JSON.stringify(sink.stats)}`,
  )
  await admin.disconnect()
  await sink.flush()
  assert.equal(sink.stats.records, 0, 'no record was buffered again')
  // Raw counts, without FINAL: nothing was inserted twice.
  assert.equal(await count(`SELECT count() AS n FROM ${db}.events`), before)
  assert.equal(await count(`SELECT count() AS n FROM ${db}.events`), await count(`SELECT uniqExact(event_id) AS n FROM ${db}.events`))
})

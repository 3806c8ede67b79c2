import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ulid } from '../../client/src/ulid.ts'
import { runBudgetProcessor, type RunBudgetEmit } from '../../stream-processors/budget/domain/run-budget-processor.ts'
import type { LedgerEventView } from '../../stream-processors/domain-event.ts'
import { createProcessorRunner } from '../../stream-processors/runtime/kafka-runner.ts'
import { TopologyDriver } from '../../stream-processors/runtime/topology-driver.ts'
import { readTopic, startTestGateway } from '../helpers/gateway.ts'
import { testLogger, unique, waitFor } from '../helpers/stack.ts'

/**
 * The budget processor on the real stack: events in through the gateway, the runner writes
 * outputs, changelog and offsets in one transaction; a second runner that starts from the
 * changelog after the first stopped ends with exactly the state of a full replay, and the breach
 * is emitted once.
 */
test('budget runner: restart from the changelog equals a full replay; the breach is emitted once; poison goes to the dead-letter topic', { timeout: 120_000 }, async () => {
  const gw = await startTestGateway()
  const admin = gw.kafka.admin()
  await admin.connect()
  const changelogTopic = unique('budget-changelog')
  const outputTopic = unique('budget-out')
  const deadLetterTopic = unique('budget-dlq')
  await admin.createTopics({
    waitForLeaders: true,
    topics: [
      { topic: changelogTopic, numPartitions: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] },
      { topic: outputTopic, numPartitions: 1 },
      { topic: deadLetterTopic, numPartitions: 1 },
    ],
  })
  const groupId = unique('budget')
  const runner = () =>
    createProcessorRunner({
      kafka: gw.kafka,
      processor: runBudgetProcessor,
      codec: gw.runtime.deps.codec,
      inputTopic: gw.topic,
      changelogTopic,
      deadLetterTopic,
      groupId,
      transactionalId: `${groupId}-tx`,
      route: (e: RunBudgetEmit) => ({ topic: outputTopic, message: { key: `${e.tenant}/${e.runId}`, value: JSON.stringify(e) } }),
      logger: testLogger,
    })

  const sent: Record<string, unknown>[] = []
  const post = async (events: Record<string, unknown>[]) => {
    const res = await fetch(`${gw.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${gw.keys['acme:emit']}` },
      body: JSON.stringify(events),
    })
    assert.equal(res.status, 202, await res.text())
    sent.push(...events)
  }
  const T0 = Date.parse('2026-11-22T10:00:00Z')
  const runIds = [unique('run'), unique('run')]
  const steps = new Map(runIds.map((r) => [r, 0]))
  const event = (runId: string, type: string, fields: Record<string, unknown>) => {
    const step = steps.get(runId)!
    steps.set(runId, step + 1)
    return { type, event_id: ulid(), run_id: runId, step, occurred_at: T0 + step * 1000, agent_name: 'refund-assistant', agent_version: '1.4.2', principal: { type: 'user', id: 'u-1' }, ...fields }
  }
  const model = (runId: string) => event(runId, 'model.call', { provider: 'openai', model: 'gpt-4.1', input_tokens: 100, output_tokens: 10, cost_usd: 0.05, latency_ms: 10 })

  await post(runIds.map((r) => event(r, 'run.started', { owner: 'finance-ops', autonomy_mode: 'execute', budget: { max_cost_usd: 1 } })))
  // 17 × $0.05 crosses the 80 % threshold before the restart; the breach comes after it.
  for (let i = 0; i < 17; i++) await post(runIds.map(model))

  // A poison record in the middle of the stream: not Avro at all.
  const poisonProducer = gw.kafka.producer()
  await poisonProducer.connect()
  await poisonProducer.send({ topic: gw.topic, messages: [{ key: runIds[0]!, value: Buffer.from('{"not":"avro"}') }] })
  await poisonProducer.disconnect()
  await post(runIds.map(model))

  const first = runner()
  await first.start()
  await waitFor(() => first.stats.processed >= sent.length + 1, 30_000, 'the first runner to process everything')
  assert.equal(first.stats.deadLettered, 1)
  await first.stop()

  // More events while no runner runs, including the ones that cross the budget.
  for (let i = 0; i < 7; i++) await post(runIds.map(model))
  const second = runner()
  await second.start()
  await waitFor(() => second.stats.processed >= sent.length + 1 - first.stats.processed, 30_000, 'the second runner to catch up')
  assert.ok(second.stats.restored >= runIds.length, 'state came from the changelog')

  const replay = new TopologyDriver(runBudgetProcessor)
  const views = sent.map((e) => ({ ...e, tenant: 'acme', occurred_at: e.occurred_at as number }) as LedgerEventView)
  replay.pipe(views)
  for (const r of runIds) {
    assert.deepEqual(second.store.get(`acme/${r}`), replay.state(`acme/${r}`), `state of ${r}`)
  }
  await second.stop()

  const outputs = (await readTopic(gw.kafka, outputTopic, replay.emitted.length, 15_000)).map((m) => JSON.parse(m.value.toString()) as RunBudgetEmit)
  assert.deepEqual(
    outputs.map((o) => `${o.runId}:${o.kind}:${o.dimension}`).sort(),
    replay.emitted.map((o) => `${o.runId}:${o.kind}:${o.dimension}`).sort(),
  )
  assert.equal(outputs.filter((o) => o.kind === 'budget.breach').length, runIds.length, 'one breach per run')
  assert.equal(outputs.filter((o) => o.kind === 'budget.threshold').length, runIds.length, 'the threshold is not announced again after the restart')
  assert.ok(first.stats.emitted >= runIds.length, 'the thresholds were emitted before the restart')
  const [dead] = await readTopic(gw.kafka, deadLetterTopic, 1, 10_000)
  assert.equal(dead?.value.toString(), '{"not":"avro"}', 'the poison record is kept as it was')
  assert.match(dead?.headers['ledger-dlq-reason'] ?? '', /wire format/)
  assert.match(dead?.headers['ledger-dlq-source'] ?? '', new RegExp(`^${gw.topic}/\\d+/\\d+$`))
  await admin.disconnect()
  await gw.stop()
})

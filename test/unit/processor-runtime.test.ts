import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ulid } from '../../client/src/ulid.ts'
import { runBudgetProcessor } from '../../stream-processors/budget/domain/run-budget-processor.ts'
import type { LedgerEventView } from '../../stream-processors/domain-event.ts'
import { TopologyDriver } from '../../stream-processors/runtime/topology-driver.ts'

const T0 = Date.parse('2026-11-22T10:00:00Z')
function runEvents(runId: string, n: number): LedgerEventView[] {
  const base = (type: string, step: number, fields: Record<string, unknown> = {}): LedgerEventView => ({
    type, event_id: ulid(), tenant: 'acme', run_id: runId, step, occurred_at: T0 + step * 1000, agent_name: 'a', agent_version: '1', principal: { type: 'user', id: 'u' }, ...fields,
  })
  return [
    base('run.started', 0, { budget: { max_cost_usd: 1, max_steps: 50 } }),
    ...Array.from({ length: n }, (_, i) => base('model.call', i + 1, { input_tokens: 100, output_tokens: 10, cost_usd: 0.05 })),
  ]
}

test('a store restored from the changelog at any point continues exactly like one that never stopped', () => {
  const events = [...runEvents('r1', 30), ...runEvents('r2', 10)].sort((a, b) => a.occurred_at - b.occurred_at)
  const straight = new TopologyDriver(runBudgetProcessor)
  straight.pipe(events)

  for (const cut of [1, 7, 16, 25, events.length - 1]) {
    const before = new TopologyDriver(runBudgetProcessor)
    before.pipe(events.slice(0, cut))
    // Crash: only the changelog survives. A new instance restores from it and goes on.
    const after = new TopologyDriver(runBudgetProcessor, before.changelog)
    after.pipe(events.slice(cut))
    assert.deepEqual(after.state('acme/r1'), straight.state('acme/r1'), `cut at ${cut}`)
    assert.deepEqual(after.state('acme/r2'), straight.state('acme/r2'), `cut at ${cut}`)
    assert.deepEqual([...before.emitted, ...after.emitted], straight.emitted, `emits, cut at ${cut}`)
  }
})

test('the run budget takes its limits from run.started and breaches once', () => {
  const driver = new TopologyDriver(runBudgetProcessor)
  const emits = driver.pipe(runEvents('r9', 25))
  assert.deepEqual(emits.map((e) => `${e.kind}:${e.dimension}`), ['budget.threshold:cost_usd', 'budget.breach:cost_usd'])
  assert.equal(emits[1]!.runId, 'r9')
  // The changelog holds one record per key: the latest state.
  assert.equal(driver.changelog.length, 1)
  assert.equal(driver.changelog[0]!.key, 'acme/r9')
})

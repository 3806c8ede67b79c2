import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { actionDigest } from '../../client/src/digest.ts'
import { createBudgetAggregatesProcessor } from '../../stream-processors/budget/domain/budget-aggregates.ts'
import { parseAgentContract, type AgentContract } from '../../stream-processors/contracts/agent-contract.ts'
import type { LedgerEventView } from '../../stream-processors/domain-event.ts'
import type { ControlEmit } from '../../stream-processors/kill-switch/domain/control-records.ts'
import { createRunGuardProcessor } from '../../stream-processors/kill-switch/domain/run-guard.ts'
import { createToolBreakerProcessor } from '../../stream-processors/kill-switch/domain/tool-breaker.ts'
import type { Processor } from '../../stream-processors/runtime/processor.ts'
import { TopologyDriver } from '../../stream-processors/runtime/topology-driver.ts'
import { interleave, syntheticRuns } from '../helpers/synthetic-runs.ts'

const CONTRACT = parseAgentContract(`agent:
  name: refund-assistant
  owner: finance-ops
  model_routing:
    default: small-fast
    escalate_on:
      - tool_error_rate_gt: 0.05
  budgets:
    max_steps: 40
    max_cost_usd_per_run: 0.5
    max_cost_usd_per_day: 3
  tools:
    allowlist:
      - name: zendesk.read_ticket
      - name: stripe.lookup_charge
      - name: stripe.create_refund
        requires_approval: true
`)
const lookup = (): AgentContract => CONTRACT

const view = (e: Record<string, unknown>): LedgerEventView => ({ tenant: 'acme', ...e, occurred_at: Date.parse(String(e.occurred_at)) }) as LedgerEventView
const decisions = (emits: ControlEmit[]) => emits.filter((e) => e.kind === 'kill_switch.decision').map((e) => e.record as Extract<ControlEmit, { kind: 'kill_switch.decision' }>['record'])

let n = 0
const T0 = Date.parse('2026-11-22T10:00:00Z')
function ev(type: string, fields: Record<string, unknown> = {}, run = 'run-1'): LedgerEventView {
  n += 1
  return { type, event_id: `01JDQ0ZK4N8W2Y3X5V6T${String(n).padStart(6, '0')}`, tenant: 'acme', run_id: run, step: n, occurred_at: T0 + n * 1000, agent_name: 'refund-assistant', agent_version: '1.4.2', principal: { type: 'user', id: 'u-1' }, ...fields }
}
const started = (run = 'run-1', budget: Record<string, unknown> = {}) => ev('run.started', { owner: 'finance-ops', autonomy_mode: 'execute', budget }, run)
const call = (tool: string, args: unknown, extra: Record<string, unknown> = {}, run = 'run-1') =>
  ev('tool.call', { tool, argument_digest: actionDigest(tool, args), action_class: 'read', status: 'ok', ...extra }, run)

describe('run guard', () => {
  test("the seeds' refund loop: one kill naming the third identical call, nothing more after it", () => {
    const driver = new TopologyDriver(createRunGuardProcessor(lookup))
    driver.pipe([started(), call('zendesk.read_ticket', { id: 1 }), call('zendesk.read_ticket', { id: 1 })])
    assert.deepEqual(decisions(driver.emitted), [])
    const third = call('zendesk.read_ticket', { id: 1 })
    const [kill, ...rest] = decisions(driver.pipe([third, call('zendesk.read_ticket', { id: 1 }), call('zendesk.read_ticket', { id: 2 })]))
    assert.deepEqual(rest, [])
    assert.equal(kill?.state, 'killed')
    assert.equal(kill?.trigger, 'tool_loop')
    assert.equal(kill?.tripping_event_id, third.event_id)
    assert.equal(kill?.scope, 'run')
  })

  test('a refund over the approval threshold with no approval kills the run; with a granted approval bound to its digest it does not', () => {
    const args = { charge_id: 'ch_1', amount_usd: 240 }
    const digest = actionDigest('stripe.create_refund', args)
    const approved = new TopologyDriver(createRunGuardProcessor(lookup))
    approved.pipe([started('ok'), ev('approval.decided', { action_digest: digest, decision: 'granted' }, 'ok'), call('stripe.create_refund', args, { action_class: 'irreversible', amount_usd: 240 }, 'ok')])
    assert.deepEqual(decisions(approved.emitted), [])
    const rogue = new TopologyDriver(createRunGuardProcessor(lookup))
    // Built in emit order: event ids (ULIDs) grow with it, and an older id is a redelivery.
    const before = [started('rogue'), ev('approval.decided', { action_digest: 'sha256:other', decision: 'granted' }, 'rogue')]
    const refund = call('stripe.create_refund', args, { action_class: 'irreversible', amount_usd: 240 }, 'rogue')
    const [kill] = decisions(rogue.pipe([...before, refund]))
    assert.equal(kill?.trigger, 'unapproved_action')
    assert.equal(kill?.tripping_event_id, refund.event_id)
  })

  test('a budget breach: one soft-threshold alert, one breach alert and one kill; the contract tightens the snapshot', () => {
    const driver = new TopologyDriver(createRunGuardProcessor(lookup))
    const model = (cost: number) => ev('model.call', { input_tokens: 10, output_tokens: 1, cost_usd: cost }, 'b')
    const emits = driver.pipe([started('b', { max_cost_usd: 5 }), model(0.3), model(0.15), model(0.1), model(0.1)])
    const alerts = emits.filter((e) => e.kind === 'budget.alert').map((e) => `${(e.record as { level: string }).level}:${(e.record as { limit: number }).limit}`)
    assert.deepEqual(alerts, ['soft_threshold:0.5', 'breach:0.5'], 'the contract caps the run at $0.50, below the snapshot\'s $5')
    const kills = decisions(emits)
    assert.equal(kills.length, 1)
    assert.equal(kills[0]?.trigger, 'budget_breach')
  })

  test('a redelivered event changes nothing and emits nothing', () => {
    const driver = new TopologyDriver(createRunGuardProcessor(lookup))
    const events = [started('d'), call('zendesk.read_ticket', { id: 1 }, {}, 'd'), call('zendesk.read_ticket', { id: 1 }, {}, 'd')]
    driver.pipe(events)
    const before = JSON.stringify(driver.state('acme/d'))
    assert.deepEqual(driver.pipe([events[1]!, events[2]!]), [])
    assert.equal(JSON.stringify(driver.state('acme/d')), before)
  })
})

describe('tool breaker', () => {
  test("a tool error storm opens the tool's circuit once; after open_seconds a probe's success closes it", () => {
    const driver = new TopologyDriver(createToolBreakerProcessor(lookup))
    const fail = (run: string) => call('stripe.lookup_charge', { run }, { status: 'error', error: 'timeout' }, run)
    const storm = [call('stripe.lookup_charge', { a: 1 }), fail('r2'), fail('r3'), fail('r4'), fail('r5'), fail('r6'), fail('r7')]
    const opened = decisions(driver.pipe(storm))
    assert.equal(opened.length, 1, 'open once, not once per failure')
    assert.equal(opened[0]?.state, 'circuit_open')
    assert.equal(opened[0]?.scope, 'tool')
    assert.equal(opened[0]?.scope_key, 'stripe.lookup_charge')
    assert.equal(opened[0]?.retry_at, opened[0]!.decided_at + 30_000)
    const later = { ...call('stripe.lookup_charge', { probe: 1 }), occurred_at: opened[0]!.decided_at + 31_000 }
    const [closed] = decisions(driver.pipe([later]))
    assert.equal(closed?.state, 'circuit_closed')
  })
})

describe('budget aggregates', () => {
  const events = (seed: number) => interleave(syntheticRuns({ seed: 7, runs: 300 }), seed).map(view)

  test('totals per agent version, principal and tenant do not depend on how runs interleave', () => {
    const a = new TopologyDriver(createBudgetAggregatesProcessor(lookup, { maxCostUsdPerDay: 5 }))
    const b = new TopologyDriver(createBudgetAggregatesProcessor(lookup, { maxCostUsdPerDay: 5 }))
    a.pipe(events(1))
    b.pipe(events(2))
    const totals = (d: TopologyDriver<unknown, ControlEmit>) => Object.fromEntries([...d.store.entries()].map(([k, v]) => [k, (v as { used: unknown; events: number }).used]).sort())
    assert.deepEqual(totals(a as TopologyDriver<unknown, ControlEmit>), totals(b as TopologyDriver<unknown, ControlEmit>))
    const trips = (d: TopologyDriver<unknown, ControlEmit>) => decisions(d.emitted).map((x) => `${x.scope}/${x.scope_key}`).sort()
    assert.deepEqual(trips(a as TopologyDriver<unknown, ControlEmit>), trips(b as TopologyDriver<unknown, ControlEmit>))
    assert.ok(trips(a as TopologyDriver<unknown, ControlEmit>).includes('tenant/acme'), 'the tenant spent over $5 in the day and was killed')
    assert.ok(trips(a as TopologyDriver<unknown, ControlEmit>).some((t) => t.startsWith('agent_version/refund-assistant@')), 'an agent version went over $3 a day')
  })
})

describe('replay', () => {
  /** Cuts the stream at several points, restores from the changelog, and compares with one uninterrupted pass. */
  function restoreEqualsReplay<S>(make: () => Processor<S, ControlEmit>, events: LedgerEventView[]): void {
    const whole = new TopologyDriver(make())
    whole.pipe(events)
    let driver = new TopologyDriver(make())
    let changelog: typeof driver.changelog = []
    const emitted: ControlEmit[] = []
    for (const cut of [0.13, 0.4, 0.77, 1]) {
      const from = Math.round(((cut === 0.13 ? 0 : cut === 0.4 ? 0.13 : cut === 0.77 ? 0.4 : 0.77)) * events.length)
      emitted.push(...driver.pipe(events.slice(from, Math.round(cut * events.length))))
      changelog = [...changelog, ...driver.changelog.splice(0)]
      driver = new TopologyDriver(make(), changelog)
    }
    assert.deepEqual(JSON.stringify([...driver.store.entries()].sort()), JSON.stringify([...whole.store.entries()].sort()))
    assert.deepEqual(emitted, whole.emitted)
  }
  const events = interleave(syntheticRuns({ seed: 11, runs: 400 }), 3).map(view)

  test('run guard: a store restored from its changelog at any cut continues exactly like an uninterrupted one', () => {
    restoreEqualsReplay(() => createRunGuardProcessor(lookup), events)
    const kills = decisions(new TopologyDriver(createRunGuardProcessor(lookup)).pipe(events))
    assert.ok(kills.length > 10, `the synthetic stream trips kills (${kills.length})`)
    assert.equal(new Set(kills.map((k) => k.scope_key)).size, kills.length, 'at most one kill per run')
  })
  test('tool breaker and budget aggregates too', () => {
    restoreEqualsReplay(() => createToolBreakerProcessor(lookup), events)
    restoreEqualsReplay(() => createBudgetAggregatesProcessor(lookup, { maxCostUsdPerDay: 5 }), events)
  })
})

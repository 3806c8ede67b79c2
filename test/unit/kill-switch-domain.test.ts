import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { actionDigest } from '../../client/src/digest.ts'
import { ulid } from '../../client/src/ulid.ts'
import { emptyBudget, limitsFromSnapshot, reduceBudget, type BudgetEmit, type BudgetState } from '../../stream-processors/budget/domain/budget-reducer.ts'
import { ContractError, parseAgentContract } from '../../stream-processors/contracts/agent-contract.ts'
import type { LedgerEventView } from '../../stream-processors/domain-event.ts'
import { reduceGate, emptyGate, type GateViolation } from '../../stream-processors/kill-switch/domain/approval-gate.ts'
import { closedBreaker, phaseAt, reduceBreaker, type BreakerTransition } from '../../stream-processors/kill-switch/domain/circuit-breaker.ts'
import { emptyLoopState, reduceLoop, type LoopTrip } from '../../stream-processors/kill-switch/domain/loop-detector.ts'

/** The seeds' refund-assistant contract. */
const SEED_CONTRACT = `agent:
  name: refund-assistant
  owner: finance-ops
  model_routing:
    default: small-fast
    escalate_on:
      - tool_error_rate_gt: 0.05
      - amount_usd_ge: 200
  budgets:
    max_steps: 12
    max_input_tokens: 12000
    max_output_tokens: 1500
    max_cost_usd_per_run: 0.75
  tools:
    allowlist:
      - name: zendesk.read_ticket
      - name: stripe.lookup_charge
      - name: stripe.create_refund
        requires_approval: true
  identity:
    mode: on_behalf_of
    token_ttl_seconds: 900
  logging:
    trace_level: full
    pii_redaction: strict
`

const T0 = Date.parse('2026-11-22T10:00:00Z')
let step = 0
function ev(type: string, fields: Record<string, unknown> = {}, at = T0 + step * 1000): LedgerEventView {
  return { type, event_id: ulid(), tenant: 'acme', run_id: 'run-1', step: step++, occurred_at: at, agent_name: 'refund-assistant', agent_version: '1.4.2', principal: { type: 'user', id: 'u-1' }, ...fields }
}
const model = (tokensIn: number, tokensOut: number, cost: number) => ev('model.call', { input_tokens: tokensIn, output_tokens: tokensOut, cost_usd: cost })
const tool = (name: string, args: unknown, extra: Record<string, unknown> = {}) =>
  ev('tool.call', { tool: name, argument_digest: actionDigest(name, args), action_class: 'read', status: 'ok', ...extra })

describe('agent contracts', () => {
  test("the seeds' contract parses with defaults filled in", () => {
    const c = parseAgentContract(SEED_CONTRACT)
    assert.equal(c.name, 'refund-assistant')
    assert.equal(c.budgets.max_cost_usd_per_run, 0.75)
    assert.equal(c.budgets.soft_threshold, 0.8)
    assert.equal(c.tools.allowlist.find((t) => t.name === 'stripe.create_refund')?.requires_approval, true)
    assert.equal(c.logging.pii_redaction, 'strict')
  })

  test('errors name the line and the field', () => {
    const bad = SEED_CONTRACT.replace('max_steps: 12', 'max_steps: twelve').replace('owner: finance-ops\n', 'owner: finance-ops\n  colour: blue\n')
    assert.throws(
      () => parseAgentContract(bad),
      (err: ContractError) => {
        const steps = err.problems.find((p) => p.path === 'agent.budgets.max_steps')
        assert.equal(steps?.line, 11)
        const extra = err.problems.find((p) => p.path.endsWith('colour'))
        assert.equal(extra?.line, 4)
        assert.match(err.message, /line 11: agent\.budgets\.max_steps/)
        return true
      },
    )
    assert.throws(() => parseAgentContract('agent: [unclosed'), ContractError)
  })
})

describe('budget reducer', () => {
  const limits = limitsFromSnapshot({ max_steps: 12, max_input_tokens: 12000, max_output_tokens: 1500, max_cost_usd: 0.75 })
  const fold = (events: LedgerEventView[]) => {
    let state: BudgetState = emptyBudget()
    const emits: BudgetEmit[] = []
    for (const e of events) {
      const r = reduceBudget(state, e, limits)
      state = r.state
      emits.push(...r.emits)
    }
    return { state, emits }
  }

  test('a soft threshold at 80 % and then a breach, each once, naming the event that crossed it', () => {
    // cost: 0.20, 0.40, 0.65 (≥ 80 % of 0.75), 0.85 (> 0.75); input tokens: …, 9000, 10000 (≥ 80 % of 12000)
    const events = [ev('run.started'), model(3000, 200, 0.2), model(3000, 200, 0.2), model(2000, 200, 0.25), model(1000, 100, 0.2), model(1000, 100, 0.1)]
    const { state, emits } = fold(events)
    assert.deepEqual(
      emits.map((e) => [e.kind, e.dimension]),
      [
        ['budget.threshold', 'cost_usd'],
        ['budget.breach', 'cost_usd'],
        ['budget.threshold', 'input_tokens'],
      ],
    )
    assert.deepEqual(
      emits.map((e) => e.eventId),
      [events[3]!.event_id, events[4]!.event_id, events[5]!.event_id],
    )
    assert.ok(Math.abs(state.used.cost_usd - 0.95) < 1e-9)
  })

  test('a redelivered event changes nothing, and a replay gives the same state and emits', () => {
    const events = [ev('run.started'), model(6000, 100, 0.3), tool('zendesk.read_ticket', { id: 1 }), model(6000, 100, 0.3)]
    const once = fold(events)
    const withRedelivery = fold([...events.slice(0, 3), events[1]!, events[2]!, events[3]!, events[3]!])
    assert.deepEqual(withRedelivery, once)
    assert.deepEqual(fold(events), once)
  })
})

describe('loop detector', () => {
  test("the seeds' refund loop: the same refund three times in the window trips once", () => {
    let state = emptyLoopState()
    const trips: LoopTrip[] = []
    const args = { charge_id: 'ch_3PqA', amount_usd: 38.5 }
    for (let i = 0; i < 5; i++) {
      const r = reduceLoop(state, tool('stripe.create_refund', args, { action_class: 'irreversible' }), { maxRepeats: 3, windowMs: 60_000 })
      state = r.state
      trips.push(...r.emits)
    }
    assert.equal(trips.length, 1)
    assert.equal(trips[0]!.repeats, 3)
  })

  test('repeats spread wider than the window, or with other arguments, do not trip', () => {
    let state = emptyLoopState()
    const trips: LoopTrip[] = []
    for (let i = 0; i < 5; i++) {
      const r = reduceLoop(state, ev('tool.call', { tool: 'zendesk.read_ticket', argument_digest: actionDigest('zendesk.read_ticket', { id: 1 }) }, T0 + i * 120_000), { maxRepeats: 3, windowMs: 60_000 })
      state = r.state
      trips.push(...r.emits)
      const other = reduceLoop(state, tool('zendesk.read_ticket', { id: 100 + i }), { maxRepeats: 3, windowMs: 60_000 })
      state = other.state
      trips.push(...other.emits)
    }
    assert.deepEqual(trips, [])
  })

  test('the same model input repeated trips too', () => {
    let state = emptyLoopState()
    const trips: LoopTrip[] = []
    for (let i = 0; i < 3; i++) {
      const r = reduceLoop(state, ev('model.call', { input_digest: 'sha256:' + 'f'.repeat(64) }), { maxRepeats: 3, windowMs: 60_000 })
      state = r.state
      trips.push(...r.emits)
    }
    assert.equal(trips.length, 1)
    assert.match(trips[0]!.key, /^model:/)
  })
})

describe('circuit breaker', () => {
  const options = { errorRateThreshold: 0.5, minCalls: 4, windowCalls: 10, openMs: 30_000 }
  test("the seeds' tool error storm opens the breaker, it half-opens after the wait, and a success closes it", () => {
    let state = closedBreaker()
    const transitions: BreakerTransition[] = []
    const call = (failed: boolean, at: number) => {
      const r = reduceBreaker(state, { failed, at, eventId: ulid() }, options)
      state = r.state
      transitions.push(...r.emits)
    }
    call(false, T0)
    call(true, T0 + 1_000)
    call(true, T0 + 2_000)
    assert.equal(state.phase, 'closed', 'below min calls')
    call(true, T0 + 3_000)
    assert.equal(state.phase, 'open')
    assert.equal(phaseAt(state, T0 + 10_000, options), 'open')
    assert.equal(phaseAt(state, T0 + 33_000, options), 'half_open')
    call(true, T0 + 34_000)
    assert.equal(state.phase, 'open', 'a failure while half-open opens it again')
    call(false, T0 + 70_000)
    assert.equal(state.phase, 'closed')
    assert.deepEqual(
      transitions.map((t) => `${t.from}->${t.to}`),
      ['closed->open', 'open->half_open', 'half_open->open', 'open->half_open', 'half_open->closed'],
    )
  })
})

describe('approval gate', () => {
  const contract = parseAgentContract(SEED_CONTRACT)
  const refundArgs = { charge_id: 'ch_3PqA', amount_usd: 240 }
  const fold = (events: LedgerEventView[]) => {
    let state = emptyGate()
    const emits: GateViolation[] = []
    for (const e of events) {
      const r = reduceGate(state, e, contract)
      state = r.state
      emits.push(...r.emits)
    }
    return emits
  }

  test("the seeds' refund over the threshold with no approval is a violation naming the digest", () => {
    const refund = tool('stripe.create_refund', refundArgs, { action_class: 'irreversible', amount_usd: 240 })
    const emits = fold([ev('policy.decision', { decision: 'require_approval' }), refund])
    assert.equal(emits.length, 1)
    assert.equal(emits[0]!.kind, 'gate.unapproved_action')
    assert.equal((emits[0] as { actionDigest: string }).actionDigest, actionDigest('stripe.create_refund', refundArgs))
  })

  test('an approval binds to the exact action: the approved refund passes, a different amount does not', () => {
    const digest = actionDigest('stripe.create_refund', refundArgs)
    const emits = fold([
      ev('approval.decided', { action_digest: digest, decision: 'granted' }),
      tool('stripe.create_refund', refundArgs, { action_class: 'irreversible', amount_usd: 240 }),
      tool('stripe.create_refund', { ...refundArgs, amount_usd: 2400 }, { action_class: 'irreversible', amount_usd: 2400 }),
    ])
    assert.deepEqual(emits.map((e) => e.kind), ['gate.unapproved_action'])
  })

  test('a denied approval does not count, a tool off the allowlist is refused, reads pass', () => {
    const digest = actionDigest('stripe.create_refund', refundArgs)
    const emits = fold([
      ev('approval.decided', { action_digest: digest, decision: 'denied' }),
      tool('zendesk.read_ticket', { id: 1 }),
      tool('stripe.create_refund', refundArgs, { action_class: 'irreversible' }),
      tool('aws.iam.create_access_key', { user: 'root' }, { action_class: 'write' }),
    ])
    assert.deepEqual(emits.map((e) => e.kind), ['gate.unapproved_action', 'gate.tool_not_allowed'])
  })

  test('a streak of policy denials trips once; an allow in between resets it', () => {
    const deny = () => ev('policy.decision', { decision: 'deny' })
    const emits = fold([deny(), deny(), ev('policy.decision', { decision: 'allow' }), deny(), deny(), deny(), deny()])
    assert.deepEqual(emits.map((e) => e.kind), ['gate.policy_denial_streak'])
  })
})

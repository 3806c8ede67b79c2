import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { TOPICS, topicName } from '../../infra/kafka/topics.ts'
import { BudgetExceededError, CircuitOpenError, createLedgerClient, LedgerGuardError, RunKilledError, type RunHandle } from '../../client/src/index.ts'
import { createControlCodec } from '../../services/shared/control-codec.ts'
import { readTopic, startTestGateway, type TestGateway } from '../helpers/gateway.ts'
import { waitFor } from '../helpers/stack.ts'

let gw: TestGateway
before(async () => {
  gw = await startTestGateway({ processors: true })
  const res = await fetch(`${gw.url}/v1/contracts`, { method: 'POST', headers: { 'content-type': 'application/yaml', authorization: `Bearer ${gw.keys['acme:admin']}` }, body: CONTRACT })
  assert.equal(res.status, 201)
  // The gateway stamps new runs with the published version once its contracts view has read it.
  await waitFor(() => gw.runtime.deps.control.runControl !== undefined && latestContract() !== undefined, 10_000)
})
after(async () => {
  await gw.stop()
})

const latestContract = () => (gw.runtime.deps.runControl as unknown as { options: { contracts: { latest(t: string, n: string): unknown } } }).options.contracts.latest('acme', 'refund-assistant')

const CONTRACT = `agent:
  name: refund-assistant
  version: "1.4.2"
  owner: finance-ops
  budgets:
    max_steps: 40
    max_cost_usd_per_run: 1.0
  tools:
    allowlist:
      - name: zendesk.read_ticket
      - name: stripe.lookup_charge
      - name: crm.update_note
      - name: stripe.create_refund
        require_approval_over_usd: 200
  loop_detection:
    max_repeats: 3
    window_seconds: 300
  circuit_breaker:
    error_rate_threshold: 0.5
    min_calls: 4
    window_calls: 10
    open_seconds: 60
`

function client() {
  return createLedgerClient({ endpoint: gw.url, apiKey: gw.keys['acme:emit']!, agent: { name: 'refund-assistant', version: '1.4.2' }, flushIntervalMs: 5 })
}
const startRun = (ledger: ReturnType<typeof client>, budget = {}) => ledger.startRun({ principal: { type: 'user', id: 'u-1042' }, owner: 'finance-ops', budget })

/** Calls guard() until it throws (the decision travels event → processor → control topic → gateway). */
async function refusal(run: RunHandle, action = {}, timeoutMs = 5_000): Promise<{ error: LedgerGuardError; afterMs: number }> {
  const started = Date.now()
  while (Date.now() - started < timeoutMs) {
    try {
      const permit = await run.guard(action)
      permit.release()
    } catch (err) {
      if (err instanceof LedgerGuardError) return { error: err, afterMs: Date.now() - started }
      throw err
    }
    await new Promise((r) => setTimeout(r, 5))
  }
  throw new Error(`guard() still allowed run ${run.runId} after ${timeoutMs} ms`)
}

test("the seeds' refund loop: guard() allows the first two identical refunds and refuses right after the third", async () => {
  const ledger = client()
  const run = startRun(ledger)
  const args = { ticket_id: 'ZD-8812' }
  run.toolCall({ tool: 'zendesk.read_ticket', action_class: 'read', arguments: args, status: 'ok', latency_ms: 10 })
  await run.guard({ tool: 'zendesk.read_ticket' })
  run.toolCall({ tool: 'zendesk.read_ticket', action_class: 'read', arguments: args, status: 'ok', latency_ms: 10 })
  await run.guard({ tool: 'zendesk.read_ticket' })
  const third = run.toolCall({ tool: 'zendesk.read_ticket', action_class: 'read', arguments: args, status: 'ok', latency_ms: 10 })
  const { error, afterMs } = await refusal(run, { tool: 'zendesk.read_ticket' })
  assert.ok(error instanceof RunKilledError, `expected RunKilledError, got ${error.name}`)
  assert.equal(error.trigger, 'tool_loop')
  assert.equal(error.trippingEventId, third.eventId, 'the error names the event that tripped it')
  assert.match(error.message, /zendesk\.read_ticket called 3 times/)
  assert.ok(afterMs < 2_000, `refused ${afterMs} ms after the offending event`)
  // The status route and every later emit response say the same.
  const status = (await (await fetch(`${gw.url}/v1/runs/${run.runId}/status`, { headers: { authorization: `Bearer ${gw.keys['acme:read']}` } })).json()) as { status: string; killed: { tripping_event_id: string } }
  assert.equal(status.status, 'killed')
  assert.equal(status.killed.tripping_event_id, third.eventId)
  await ledger.close()
})

test('a refund over the approval threshold with no approval kills the run; one with a granted approval bound to its digest does not', async () => {
  const ledger = client()
  const approved = startRun(ledger)
  const args = { charge_id: 'ch_3PqA', amount_usd: 240 }
  const { actionDigest } = { actionDigest: (await import('../../client/src/index.ts')).actionDigest('stripe.create_refund', args) }
  const { approvalId } = approved.requestApproval({ action_digest: actionDigest, tool: 'stripe.create_refund', requested_approver: 'finance-leads' })
  approved.recordApproval({ approval_id: approvalId, action_digest: actionDigest, approver: { type: 'user', id: 'u-7' }, decision: 'granted', time_to_decide_ms: 1000 })
  approved.toolCall({ tool: 'stripe.create_refund', action_class: 'irreversible', arguments: args, status: 'ok', latency_ms: 200, amount_usd: 240 })

  const rogue = startRun(ledger)
  const refund = rogue.toolCall({ tool: 'stripe.create_refund', action_class: 'irreversible', arguments: args, status: 'ok', latency_ms: 200, amount_usd: 240 })
  const { error } = await refusal(rogue)
  assert.ok(error instanceof RunKilledError)
  assert.equal(error.trigger, 'unapproved_action')
  assert.equal(error.trippingEventId, refund.eventId)
  // The approved run was processed before the rogue one's refusal could arrive (same processor, earlier in the log
  // or on another partition): give it the same time and check it was never killed.
  await new Promise((r) => setTimeout(r, 500))
  await approved.guard()
  await ledger.close()
})

test("a tool error storm opens the tool's circuit: CircuitOpenError for that tool in every run, other tools still allowed", async () => {
  const ledger = client()
  // The storm comes from one run: a run's events share a partition, so the breaker sees them in emit order and the
  // fourth error (min_calls: 4) is the one that trips it. Spread over runs on different partitions, the breaker's
  // order is the order it consumed the partitions in, and any of the errors could be the fourth it saw.
  const [stormy, bystander] = [startRun(ledger), startRun(ledger)]
  let last = ''
  for (let i = 0; i < 4; i++) {
    last = stormy.toolCall({ tool: 'crm.update_note', action_class: 'write', arguments: { note: i }, status: 'error', latency_ms: 30, error: 'upstream timed out' }).eventId
  }
  // The circuit is the tool's, not the run's: another run is refused that tool too.
  const { error } = await refusal(bystander, { tool: 'crm.update_note' })
  assert.ok(error instanceof CircuitOpenError, `expected CircuitOpenError, got ${error.name}`)
  assert.equal(error.scope, 'tool')
  assert.equal(error.trippingEventId, last)
  await assert.rejects(stormy.guard({ tool: 'crm.update_note' }), CircuitOpenError)
  await bystander.guard({ tool: 'stripe.lookup_charge' })
  await stormy.guard({ tool: 'stripe.lookup_charge' })
  await ledger.close()
})

test('guard() reserves estimated cost: parallel calls of one run cannot together exceed its limit', async () => {
  const ledger = client()
  const run = startRun(ledger, { max_cost_usd: 1.0 })
  const results = await Promise.allSettled(Array.from({ length: 8 }, () => run.guard({ estimatedCostUsd: 0.3 })))
  const allowed = results.filter((r) => r.status === 'fulfilled')
  const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
  assert.equal(allowed.length, 3, '3 × $0.30 fit in $1.00, a fourth does not')
  assert.ok(refused.every((r) => r.reason instanceof BudgetExceededError))
  assert.match((refused[0]!.reason as Error).message, /would exceed the run's limit of \$1/)
  // The calls happen and cost what they cost; each event releases its reservation.
  for (const r of allowed) run.modelCall({ provider: 'openai', model: 'gpt-4.1', input_tokens: 100, output_tokens: 10, cost_usd: 0.25, latency_ms: 100, permit: (r as PromiseFulfilledResult<Awaited<ReturnType<RunHandle['guard']>>>).value })
  await ledger.flush()
  const status = (await (await fetch(`${gw.url}/v1/runs/${run.runId}/status`, { headers: { authorization: `Bearer ${gw.keys['acme:read']}` } })).json()) as { budget: { cost_usd_emitted: number; cost_usd_reserved: number } }
  assert.equal(status.budget.cost_usd_emitted, 0.75)
  assert.equal(status.budget.cost_usd_reserved, 0)
  await run.guard({ estimatedCostUsd: 0.25 })
  await assert.rejects(run.guard({ estimatedCostUsd: 0.01 }), BudgetExceededError)
  await ledger.close()
})

test('an operator kills and releases a run: the SSE stream pushes both, the decision names the operator, guard() follows', async () => {
  const ledger = client()
  const run = startRun(ledger)
  await ledger.flush()
  const controller = new AbortController()
  const res = await fetch(`${gw.url}/v1/runs/${run.runId}/status/stream`, { headers: { authorization: `Bearer ${gw.keys['acme:emit']}` }, signal: controller.signal })
  assert.equal(res.headers.get('content-type'), 'text/event-stream')
  const reader = res.body!.getReader()
  let text = ''
  const readUntil = async (needle: string) => {
    while (!text.includes(needle)) {
      const { value, done } = await reader.read()
      if (done) throw new Error('stream ended')
      text += Buffer.from(value).toString()
    }
  }
  await readUntil('event: status')
  const decide = (action: string) =>
    fetch(`${gw.url}/v1/control/decisions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${gw.keys['acme:admin']}` },
      body: JSON.stringify({ action, scope: 'run', scope_key: run.runId, reason: 'customer complaint INC-1234', operator: 'dana@acme' }),
    })
  const kill = await decide('kill')
  assert.equal(kill.status, 202)
  await readUntil('"trigger":"manual"')
  assert.match(text, /"operator":\{"key_id":"[^"]+","name":"dana@acme"\}/)
  await assert.rejects(run.guard(), (err: unknown) => err instanceof RunKilledError && err.trigger === 'manual' && /INC-1234/.test(err.message))
  assert.equal((await decide('release')).status, 202)
  await readUntil('"state":"released"')
  await run.guard()
  controller.abort()
  await ledger.close()
})

test('decisions are Avro records on the compacted control topic, keyed by scope, each emitted once', async () => {
  const codec = await createControlCodec({ registryUrl: gw.registryUrl, controlTopic: topicName(TOPICS.control, gw.prefix), budgetStateTopic: topicName(TOPICS.budgetState, gw.prefix), register: false })
  const records = await readTopic(gw.kafka, topicName(TOPICS.control, gw.prefix), 1_000, 3_000)
  const decoded = await Promise.all(records.map(async (r) => ({ key: r.key, ...(await codec.decode(r.value)) })))
  const decisions = decoded.filter((d) => d.kind === 'kill_switch.decision')
  assert.ok(decisions.length >= 4, `decisions: ${decisions.length}`)
  const ids = decisions.map((d) => (d.record as { decision_id: string }).decision_id)
  assert.equal(new Set(ids).size, ids.length, 'no decision is emitted twice')
  for (const d of decisions) {
    const r = d.record as { scope: string; tenant: string; scope_key: string }
    assert.equal(d.key, `${r.scope}/${r.tenant}/${r.scope_key}`)
  }
})

test('every emit response carries the status of the runs it touched', async () => {
  const res = await fetch(`${gw.url}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${gw.keys['acme:emit']}` },
    body: JSON.stringify({ type: 'run.started', event_id: '01JDQ0ZK4N8W2Y3X5V6T7R8S9B', run_id: 'run-status-1', step: 0, occurred_at: new Date().toISOString(), agent_name: 'refund-assistant', agent_version: '1.4.2', principal: { type: 'user', id: 'u-1' }, owner: 'finance-ops', autonomy_mode: 'execute', budget: {} }),
  })
  assert.equal(res.status, 202)
  const body = (await res.json()) as { runs: Record<string, { status: string }> }
  assert.equal(body.runs['run-status-1']?.status, 'active')
})

test('bad guard, status and decision requests get a 400 naming the field; roles and tenants are enforced', async () => {
  const post = (path: string, body: unknown, key = gw.keys['acme:emit']!) =>
    fetch(`${gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(body) })
  const cases: [Promise<Response>, number, RegExp][] = [
    [post('/v1/runs/r1/guard', { estimated_cost_usd: -1 }), 400, /body\.estimated_cost_usd/],
    [post('/v1/runs/r1/guard', { estimated_cost_usd: 'a lot' }), 400, /body\.estimated_cost_usd/],
    [post('/v1/runs/r1/guard', { tool: 'x', surprise: 1 }), 400, /body\.surprise/],
    [post('/v1/runs/bad%20id!/guard', {}), 400, /^id: /],
    [fetch(`${gw.url}/v1/runs/${'x'.repeat(200)}/status`, { headers: { authorization: `Bearer ${gw.keys['acme:read']}` } }), 400, /^id: /],
    [fetch(`${gw.url}/v1/runs/r1/status?nope=1`, { headers: { authorization: `Bearer ${gw.keys['acme:read']}` } }), 400, /query\.nope/],
    [post('/v1/control/decisions', { action: 'kill', scope: 'run', scope_key: 'r1', operator: 'x' }, gw.keys['acme:admin']), 400, /body\.reason/],
    [post('/v1/control/decisions', { action: 'explode', scope: 'run', scope_key: 'r1', reason: 'why not', operator: 'x' }, gw.keys['acme:admin']), 400, /body\.action/],
    [post('/v1/control/decisions', { action: 'kill', scope: 'run', scope_key: 'r1', reason: 'because', operator: 'x' }), 403, /role "emit"/],
    [post('/v1/runs/r1/guard', {}, 'not-a-key'), 401, /key/],
  ]
  for (const [pending, status, message] of cases) {
    const res = await pending
    const body = (await res.json()) as { error: { message: string } }
    assert.equal(res.status, status, body.error.message)
    assert.match(body.error.message, message)
  }
})

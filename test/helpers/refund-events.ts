/**
 * The seeds' refund run in the flat JSON form the notary and the report see after decoding
 * (times as epoch ms, tenant and received_at set as the gateway sets them), with causation links.
 * Deterministic, for pure tests of the chain, the report and the verifier.
 */
export function refundRunEvents(options: { tenant?: string; runId?: string; at?: number } = {}): Record<string, unknown>[] {
  const tenant = options.tenant ?? 'acme'
  const run_id = options.runId ?? 'run-refund-1'
  const t0 = options.at ?? Date.parse('2026-11-22T10:00:00Z')
  const D = 'sha256:' + 'b'.repeat(64)
  let n = 0
  const id = () => `01JDQ0ZK4N8W2Y3X5V6T7R8S${String(n).padStart(2, '0')}`.replace(/[ILOU]/g, 'X')
  const env = (type: string, extra: Record<string, unknown> = {}) => {
    const step = n
    const e = { type, event_id: id(), tenant, run_id, step, occurred_at: t0 + step * 1_000, received_at: t0 + step * 1_000 + 5, agent_name: 'refund-assistant', agent_version: '1.4.2', principal: { type: 'user', id: 'u-1042' }, actor: 'agent', contract_version: '1.4.2', ...extra }
    n += 1
    return e
  }
  const started = env('run.started', { owner: 'finance-ops', autonomy_mode: 'execute_with_approval', budget: { max_steps: 12, max_cost_usd: 0.75 }, goal: 'Refund ticket ZD-8812' })
  const model = env('model.call', { provider: 'openai', model: 'gpt-4.1', input_tokens: 1420, output_tokens: 310, cost_usd: 0.0121, latency_ms: 820, parent_event_id: started.event_id })
  const read = env('tool.call', { tool: 'zendesk.read_ticket', action_class: 'read', argument_digest: 'sha256:' + 'a'.repeat(64), arguments: '{"ticket_id":"ZD-8812"}', status: 'ok', latency_ms: 190, parent_event_id: model.event_id })
  const evidence = env('evidence.retrieved', { source: 'zendesk', document_ids: ['ZD-8812'], content_hashes: ['sha256:' + 'c'.repeat(64)], parent_event_id: read.event_id })
  const lookup = env('tool.call', { tool: 'stripe.lookup_charge', action_class: 'read', argument_digest: 'sha256:' + 'e'.repeat(64), arguments: '{"charge_id":"ch_3PqA"}', status: 'ok', latency_ms: 240, parent_event_id: model.event_id })
  const policy = env('policy.decision', { engine: 'opa', policy_id: 'refunds/allow', bundle_revision: 'rev-42', decision: 'require_approval', reasons: ['amount_usd >= 200 requires approval'], decision_id: 'dec-1', action_digest: D })
  const requested = env('approval.requested', { approval_id: 'ap-1', action_digest: D, tool: 'stripe.create_refund', requested_approver: 'finance-leads' })
  const decided = env('approval.decided', { actor: 'human', approval_id: 'ap-1', action_digest: D, approver: { type: 'user', id: 'u-7' }, decision: 'granted', justification: 'verified with the customer', time_to_decide_ms: 93_000 })
  const refund = env('tool.call', { tool: 'stripe.create_refund', action_class: 'irreversible', argument_digest: D, arguments: '{"amount_usd":240,"charge_id":"ch_3PqA"}', status: 'ok', latency_ms: 240, amount_usd: 240, side_effect_ref: 're_1Q2w', parent_event_id: model.event_id })
  const ended = env('run.ended', { outcome: 'succeeded' })
  return [started, model, read, evidence, lookup, policy, requested, decided, refund, ended]
}

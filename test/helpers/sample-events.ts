import { ulid } from '../../client/src/ulid.ts'

const digest = (c: string) => `sha256:${c.repeat(64)}`
const envelope = (type: string, step: number) => ({
  type,
  event_id: ulid(),
  run_id: 'run-sample-1',
  step,
  occurred_at: '2026-11-22T10:00:00.000Z',
  agent_name: 'refund-assistant',
  agent_version: '1.4.2',
  principal: { type: 'user', id: 'u-1042' },
  trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
  span_id: '00f067aa0ba902b7',
})

/** One realistic, valid event of every type: used to check validation, codegen and sizes. */
export function sampleEvents(): Record<string, unknown>[] {
  return [
    { ...envelope('run.started', 0), owner: 'finance-ops', autonomy_mode: 'execute_with_approval', budget: { max_steps: 12, max_input_tokens: 12000, max_output_tokens: 1500, max_cost_usd: 0.75 }, goal: 'Refund ticket ZD-8812' },
    { ...envelope('model.call', 1), provider: 'openai', model: 'gpt-4.1', model_version: 'gpt-4.1-2025-04-14', prompt_version: 'refund-v3', input_tokens: 1420, output_tokens: 310, cached_tokens: 0, cost_usd: 0.0121, latency_ms: 820, finish_reason: 'tool_calls', routing_tier: 'small-fast', routing_reason: 'default', input_digest: digest('d') },
    { ...envelope('tool.call', 2), tool: 'zendesk.read_ticket', tool_call_id: 'call_1', action_class: 'read', argument_digest: digest('a'), arguments: '{"ticket_id":"ZD-8812"}', status: 'ok', latency_ms: 190 },
    { ...envelope('evidence.retrieved', 3), source: 'zendesk', document_ids: ['ZD-8812'], content_hashes: [digest('c')] },
    { ...envelope('policy.decision', 4), engine: 'opa', policy_id: 'refunds/allow', bundle_revision: 'rev-42', decision: 'require_approval', reasons: ['amount_usd >= 200'], decision_id: ulid(), input_digest: digest('e'), action_digest: digest('b') },
    { ...envelope('approval.requested', 5), approval_id: ulid(), action_digest: digest('b'), tool: 'stripe.create_refund', requested_approver: 'finance-leads' },
    { ...envelope('approval.decided', 6), actor: 'human', approval_id: ulid(), action_digest: digest('b'), approver: { type: 'user', id: 'u-7' }, decision: 'granted', justification: 'verified', time_to_decide_ms: 93000 },
    { ...envelope('tool.call', 7), tool: 'stripe.create_refund', action_class: 'irreversible', argument_digest: digest('b'), arguments: '{"charge_id":"ch_3PqA","amount_usd":240}', status: 'ok', latency_ms: 240, amount_usd: 240, side_effect_ref: 're_1Q2w', idempotency_key: 'k-1' },
    { ...envelope('human.override', 8), actor: 'human', kind: 'escalation', operator: { type: 'user', id: 'u-9' }, reason: 'customer disputes' },
    { ...envelope('run.ended', 9), outcome: 'succeeded', totals: { steps: 10, input_tokens: 1420, output_tokens: 310, cost_usd: 0.0121, tool_calls: 2, duration_ms: 2150 } },
  ]
}

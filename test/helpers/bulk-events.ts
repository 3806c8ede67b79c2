import { mulberry32 } from './synthetic-runs.ts'

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'

/** A valid ULID from a time and a counter: unique per counter, reproducible. */
export function ulidFrom(ms: number, n: number): string {
  let time = ''
  for (let i = 0, t = ms; i < 10; i++, t = Math.floor(t / 32)) time = CROCKFORD[t % 32] + time
  let rand = ''
  for (let i = 0, c = n; i < 16; i++, c = Math.floor(c / 32)) rand = CROCKFORD[c % 32] + rand
  return time + rand
}

export interface BulkEvent {
  eventType: string
  runId: string
  eventId: string
  /** The Avro record (nested envelope), ready for the codec. */
  record: Record<string, unknown>
}

/**
 * Many valid audit events in Avro form, fast and deterministic, for load and crash tests: runs of
 * 5-40 events (run.started, model and tool calls, policy decisions, evidence, run.ended) across a
 * few tenants, agents and versions. Unlike synthetic-runs.ts it skips the JSON form and validation,
 * so a million events take seconds.
 */
export function* bulkEvents(total: number, seed = 1, startAt = Date.parse('2026-11-22T08:00:00Z')): Generator<BulkEvent> {
  const rnd = mulberry32(seed)
  let n = 0
  let run = 0
  while (n < total) {
    const tenant = `t${Math.floor(rnd() * 4)}`
    const runId = `bulk-${seed}-${run++}`
    const version = `1.${Math.floor(rnd() * 3)}.0`
    const principal = { type: 'user', id: `u-${Math.floor(rnd() * 500)}` }
    const length = Math.min(total - n, 5 + Math.floor(rnd() * 36))
    let at = startAt + Math.floor(rnd() * 86_400_000)
    for (let step = 0; step < length; step++, n++) {
      at += 50 + Math.floor(rnd() * 500)
      const envelope = {
        event_id: ulidFrom(at, n),
        tenant,
        run_id: runId,
        step,
        occurred_at: at,
        received_at: at + 5,
        agent_name: 'refund-assistant',
        agent_version: version,
        principal,
        actor: 'agent',
        parent_event_id: null,
        trace_id: null,
        span_id: null,
        contract_version: null,
      }
      const last = step === length - 1
      const pick = rnd()
      let eventType: string
      let fields: Record<string, unknown>
      if (step === 0) {
        eventType = 'run.started'
        fields = { owner: 'finance-ops', autonomy_mode: 'execute_with_approval', budget: { max_steps: null, max_input_tokens: null, max_output_tokens: null, max_cost_usd: 1, max_tool_calls: null, max_wall_clock_seconds: null }, goal: null }
      } else if (last) {
        eventType = 'run.ended'
        fields = { outcome: 'succeeded', totals: { steps: length, input_tokens: 0, output_tokens: 0, cost_usd: 0, tool_calls: 0, duration_ms: 0 }, reason: null }
      } else if (pick < 0.35) {
        eventType = 'model.call'
        fields = { provider: 'openai', operation: 'chat', model: 'gpt-4.1', model_version: null, prompt_version: null, input_tokens: 1000 + Math.floor(rnd() * 500), output_tokens: 200, cached_tokens: 0, cost_usd: 0.01, latency_ms: 800, finish_reason: 'tool_calls', routing_tier: null, routing_reason: null, input_digest: null, response_id: null, error: null }
      } else if (pick < 0.75) {
        eventType = 'tool.call'
        const tool = pick < 0.5 ? 'zendesk.read_ticket' : pick < 0.7 ? 'stripe.lookup_charge' : 'stripe.create_refund'
        fields = { tool, tool_call_id: null, tool_schema_version: null, action_class: tool === 'stripe.create_refund' ? 'irreversible' : 'read', argument_digest: `sha256:${(n % 1e15).toString(16).padStart(64, '0')}`, arguments: `{"n":${n}}`, status: 'ok', latency_ms: 120, retries: 0, idempotency_key: null, side_effect_ref: null, dry_run: false, amount_usd: tool === 'stripe.create_refund' ? 40 : null, error: null }
      } else if (pick < 0.9) {
        eventType = 'policy.decision'
        fields = { engine: 'opa', policy_id: 'refunds/allow', bundle_revision: 'rev-42', decision: 'allow', reasons: [], decision_id: `d-${n}`, input_digest: null, subject_event_id: null, action_digest: null }
      } else {
        eventType = 'evidence.retrieved'
        fields = { source: 'zendesk', document_ids: [`ZD-${n}`], content_hashes: [], query_digest: null }
      }
      yield { eventType, runId, eventId: envelope.event_id, record: { envelope, ...fields } }
    }
  }
}

import { jsonFields } from '../../schemas/json-form.ts'
import type { EventSchema } from '../../schemas/event-schemas.ts'
import type { Findings, Redactor } from './redaction.ts'

/**
 * Fields that are identifiers the ledger itself needs to join on; strict mode scans every other
 * string. A value in one of these that looks like PII is a modelling error upstream, not a leak
 * we can fix by hashing a join key.
 */
const STRUCTURAL = new Set([
  'type', 'event_id', 'run_id', 'parent_event_id', 'trace_id', 'span_id', 'tenant', 'step', 'occurred_at',
  'agent_name', 'agent_version', 'contract_version', 'actor', 'argument_digest', 'action_digest', 'input_digest',
  'query_digest', 'decision_id', 'approval_id', 'policy_decision_id', 'subject_event_id', 'target_event_id',
  'tool_call_id', 'response_id', 'content_hashes',
])

export type RedactionMode = 'strict' | 'off'

/** Returns a redacted copy of a validated flat JSON event. */
export function redactEvent(schema: EventSchema, event: Record<string, unknown>, redactor: Redactor, findings: Findings): Record<string, unknown> {
  const out: Record<string, unknown> = { ...event }
  for (const f of jsonFields(schema)) {
    if (STRUCTURAL.has(f.name)) continue
    const v = out[f.name]
    if (v === undefined || v === null) continue
    if (f.pii === 'json' && typeof v === 'string') out[f.name] = redactor.json(v, findings)
    else out[f.name] = redactValue(v, redactor, findings)
  }
  return out
}

function redactValue(v: unknown, redactor: Redactor, findings: Findings): unknown {
  if (typeof v === 'string') return redactor.text(v, findings)
  if (Array.isArray(v)) return v.map((x) => redactValue(x, redactor, findings))
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, redactValue(x, redactor, findings)]))
  return v
}

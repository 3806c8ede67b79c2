import type { EventRef } from '../query/action-lineage.ts'

/** The lineage columns of an event from its flat JSON form (what the lineage sink stores as columns). */
export function eventRefOf(event: Record<string, unknown>): EventRef {
  const s = (v: unknown) => (typeof v === 'string' ? v : '')
  const type = s(event.type)
  return {
    event_id: s(event.event_id),
    parent_event_id: s(event.parent_event_id),
    step: typeof event.step === 'number' ? Math.max(0, Math.trunc(event.step)) : 0,
    event_type: type,
    action_digest: type === 'tool.call' ? s(event.argument_digest) : type === 'policy.decision' || type === 'approval.requested' || type === 'approval.decided' ? s(event.action_digest) : '',
    subject_event_id: type === 'policy.decision' ? s(event.subject_event_id) : type === 'human.override' ? s(event.target_event_id) : '',
    approval_id: type === 'approval.requested' || type === 'approval.decided' ? s(event.approval_id) : '',
  }
}

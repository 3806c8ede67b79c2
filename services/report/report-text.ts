/** One line saying what an event records, for the HTML timeline and the CSV (pure). */
export function eventSummary(e: Record<string, unknown>): string {
  const s = (v: unknown) => (v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v))
  const who = (p: unknown) => {
    const v = p as { type?: unknown; id?: unknown } | null | undefined
    return v && typeof v === 'object' ? `${s(v.type)}:${s(v.id)}` : ''
  }
  switch (e.type) {
    case 'run.started':
      return `run started for ${who(e.principal)}${e.owner ? `, owner ${s(e.owner)}` : ''}${e.autonomy_mode ? `, ${s(e.autonomy_mode)}` : ''}${e.goal ? `: ${s(e.goal)}` : ''}`
    case 'run.ended':
      return `run ended: ${s(e.outcome)}${e.reason ? ` (${s(e.reason)})` : ''}`
    case 'model.call':
      return `${s(e.provider)}/${s(e.model)}: ${s(e.input_tokens)} in, ${s(e.output_tokens)} out, $${s(e.cost_usd)}${e.error ? `, error ${s(e.error)}` : ''}`
    case 'tool.call':
      return `${s(e.tool)} (${s(e.action_class)}): ${s(e.status)}${typeof e.amount_usd === 'number' ? `, $${e.amount_usd}` : ''}${e.error ? `, ${s(e.error)}` : ''}`
    case 'policy.decision':
      return `${s(e.policy_id)}: ${s(e.decision)}${Array.isArray(e.reasons) && e.reasons.length > 0 ? ` (${e.reasons.map(s).join('; ')})` : ''}`
    case 'approval.requested':
      return `approval ${s(e.approval_id)} requested for ${s(e.tool)}${e.requested_approver ? ` from ${s(e.requested_approver)}` : ''}`
    case 'approval.decided':
      return `approval ${s(e.approval_id)} ${s(e.decision)} by ${who(e.approver)}`
    case 'evidence.retrieved':
      return `${s(e.source)}: ${Array.isArray(e.document_ids) ? e.document_ids.map(s).join(', ') : ''}`
    case 'human.override':
      return `${s(e.kind)} by ${who(e.operator)}${e.reason ? `: ${s(e.reason)}` : ''}`
    default:
      return s(e.type)
  }
}

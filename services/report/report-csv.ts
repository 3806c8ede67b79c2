import type { RunReport } from './run-report.ts'
import { eventSummary } from './report-text.ts'

/**
 * The CSV form (RFC 4180): one row per chained event in log order, with the action columns
 * (policy decision, approval, permitted) on tool calls and both hashes, for spreadsheets. The
 * JSON form is the one to verify. A text cell that a spreadsheet would run as a formula (starts
 * with =, +, -, @, tab or CR) gets a leading apostrophe; numbers are written as they are.
 */
const COLUMNS = [
  'seq', 'event_id', 'type', 'step', 'occurred_at', 'actor', 'summary', 'tool', 'action_class', 'status', 'cost_usd', 'amount_usd',
  'policy_id', 'policy_decision', 'approval_decision', 'approver', 'permitted', 'kill_switch', 'duplicate_of', 'late', 'event_hash', 'chain_hash',
] as const

function cell(v: unknown): string {
  if (v === null || v === undefined) return ''
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  let s = typeof v === 'string' ? v : JSON.stringify(v)
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s
}

export function renderReportCsv(report: RunReport): string {
  const actions = new Map(report.actions.map((a) => [a.seq, a]))
  const timeline = new Map(report.timeline.map((t) => [t.seq, t]))
  const lines = [COLUMNS.join(',')]
  for (const c of report.integrity.chain) {
    const e = c.event
    const a = actions.get(c.seq)
    const t = timeline.get(c.seq)
    const approver = a?.approval?.approver as { type?: string; id?: string } | null | undefined
    const row: Record<(typeof COLUMNS)[number], unknown> = {
      seq: c.seq,
      event_id: e.event_id,
      type: e.type,
      step: e.step,
      occurred_at: t?.occurred_at,
      actor: e.actor,
      summary: eventSummary(e),
      tool: e.tool,
      action_class: e.action_class,
      status: e.status,
      cost_usd: e.cost_usd,
      amount_usd: e.amount_usd,
      policy_id: a?.policy?.policy_id,
      policy_decision: a?.policy?.decision,
      approval_decision: a?.approval?.decision,
      approver: approver ? `${approver.type}:${approver.id}` : undefined,
      permitted: a?.permitted,
      kill_switch: a && a.kill_switch.length > 0 ? a.kill_switch.join(' ') : undefined,
      duplicate_of: t?.duplicate_of,
      late: t?.late,
      event_hash: c.event_hash,
      chain_hash: c.chain_hash,
    }
    lines.push(COLUMNS.map((k) => cell(row[k])).join(','))
  }
  return lines.join('\r\n') + '\r\n'
}

import type { ControlEntry, RunReport } from './run-report.ts'
import { eventSummary } from './report-text.ts'

/**
 * The HTML form a person reads: the run at a glance, kill-switch events highlighted, cost against
 * budget as an inline SVG chart, the action table, budget and kill-switch events, the timeline and
 * the integrity section. One self-contained file: inline CSS and SVG, no script, no external
 * asset, so it opens offline and shows the same everywhere. Every value is HTML-escaped.
 */

const esc = (v: unknown): string =>
  (v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v)).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
const usd = (v: number | null | undefined) => (typeof v === 'number' ? `$${v.toFixed(v !== 0 && Math.abs(v) < 0.01 ? 4 : 2)}` : '–')
const who = (p: unknown) => {
  const v = p as { type?: unknown; id?: unknown } | null | undefined
  return v && typeof v === 'object' ? `${String(v.type)}:${String(v.id)}` : '–'
}
const isKill = (c: ControlEntry) => c.kind === 'kill_switch.decision' && (c.state === 'killed' || c.state === 'circuit_open')

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1c2430;background:#f5f6f8}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#5b6675;margin:0 0 16px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:16px;margin:0 0 16px}
.glance{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:12px}
.glance div{min-width:0}.glance dt{color:#5b6675;font-size:12px;text-transform:uppercase;letter-spacing:.04em}.glance dd{margin:2px 0 0;font-weight:600;overflow-wrap:anywhere}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:700;font-size:13px}
.outcome-succeeded{background:#dff3e4;color:#14602c}.outcome-failed,.outcome-killed{background:#fde2e1;color:#a11a12}.outcome-escalated{background:#fff1d6;color:#7a4d00}.outcome-running{background:#e3ecfb;color:#1d4f99}
.kill-banner{background:#b3261e;color:#fff;border-radius:8px;padding:12px 16px;margin:0 0 16px;font-weight:600}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border-bottom:1px solid #e6e9ee;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;position:sticky;top:0}
tr.kill td{background:#fde2e1;color:#7d1510;font-weight:600}
tr.alert td{background:#fff4dc}
tr.flagged td{background:#f3f0ff}
.yes{color:#14602c;font-weight:700}.no{color:#a11a12;font-weight:700}.none{color:#5b6675}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;overflow-wrap:anywhere}
.bar{height:8px;background:#e6e9ee;border-radius:4px;min-width:80px}.bar span{display:block;height:8px;border-radius:4px;background:#2f6fd6}.bar span.over{background:#b3261e}
svg text{font:11px system-ui,sans-serif;fill:#5b6675}
`

/** Cumulative model cost over the chain, with the cost limit and kill events marked. */
function costChart(report: RunReport): string {
  const W = 1100
  const H = 260
  const pad = { l: 64, r: 16, t: 16, b: 34 }
  const chain = report.integrity.chain
  const n = Math.max(1, chain.length)
  const points: [number, number][] = [[0, 0]]
  let total = 0
  const seen = new Set<unknown>()
  for (const c of chain) {
    if (seen.has(c.event.event_id)) continue
    seen.add(c.event.event_id)
    if (c.event.type === 'model.call' && typeof c.event.cost_usd === 'number') {
      total += c.event.cost_usd
      points.push([c.seq, total])
    }
  }
  points.push([n - 1, total])
  const limit = report.cost.budget.find((b) => b.dimension === 'cost_usd')?.limit ?? null
  const top = Math.max(total, limit ?? 0, 1e-9) * 1.1
  const x = (seq: number) => pad.l + (seq / Math.max(1, n - 1)) * (W - pad.l - pad.r)
  const y = (v: number) => H - pad.b - (v / top) * (H - pad.t - pad.b)
  // At most ~600 points: enough for the eye at this width, small for a 10k-event run.
  const stride = Math.max(1, Math.ceil(points.length / 600))
  const drawn = points.filter((_, i) => i % stride === 0 || i === points.length - 1)
  const line = drawn.map(([s, v]) => `${x(s).toFixed(1)},${y(v).toFixed(1)}`).join(' ')
  const seqOf = new Map(chain.map((c) => [c.event.event_id, c.seq]))
  const kills = report.control.filter(isKill).flatMap((k) => {
    const seq = k.tripping_event_id === null ? undefined : seqOf.get(k.tripping_event_id)
    return seq === undefined ? [] : [{ seq, k }]
  })
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => top * f)
  return `<svg id="cost-chart" role="img" aria-label="Cumulative cost against the budget" viewBox="0 0 ${W} ${H}" width="100%" preserveAspectRatio="xMidYMid meet">
<rect x="${pad.l}" y="${pad.t}" width="${W - pad.l - pad.r}" height="${H - pad.t - pad.b}" fill="#fff" stroke="#dde1e7"/>
${ticks.map((t) => `<line x1="${pad.l}" x2="${W - pad.r}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#eef1f5"/><text x="${pad.l - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${esc(usd(t))}</text>`).join('\n')}
<text x="${pad.l}" y="${H - 10}">seq 0</text><text x="${W - pad.r}" y="${H - 10}" text-anchor="end">seq ${n - 1}</text><text x="${(W / 2).toFixed(0)}" y="${H - 10}" text-anchor="middle">events in log order</text>
${limit !== null ? `<line id="budget-line" x1="${pad.l}" x2="${W - pad.r}" y1="${y(limit).toFixed(1)}" y2="${y(limit).toFixed(1)}" stroke="#b3261e" stroke-width="2" stroke-dasharray="6 4"/><text x="${W - pad.r - 4}" y="${(y(limit) - 6).toFixed(1)}" text-anchor="end" style="fill:#b3261e">budget ${esc(usd(limit))}</text>` : ''}
<polyline id="cost-line" fill="none" stroke="#2f6fd6" stroke-width="2" points="${line}"/>
${kills.map(({ seq, k }) => `<g class="kill-marker"><line x1="${x(seq).toFixed(1)}" x2="${x(seq).toFixed(1)}" y1="${pad.t}" y2="${H - pad.b}" stroke="#b3261e" stroke-width="2"/><text x="${(x(seq) + 4).toFixed(1)}" y="${pad.t + 12}" style="fill:#b3261e">killed: ${esc(k.trigger)}</text></g>`).join('\n')}
</svg>`
}

/** Retrievals on the action's causation chain by source and documents; "preceding" ones only counted. */
function evidenceCell(evidence: RunReport['actions'][number]['evidence'], byId: Map<string, Record<string, unknown>>): string {
  if (evidence.event_ids.length === 0) return ''
  if (evidence.linked_by === 'preceding') return `<span class="none">${evidence.event_ids.length} earlier retrieval${evidence.event_ids.length === 1 ? '' : 's'}</span>`
  return evidence.event_ids
    .map((id) => {
      const e = byId.get(id)
      return esc(`${String(e?.source ?? '')} ${Array.isArray(e?.document_ids) ? e.document_ids.join(', ') : ''}`)
    })
    .join('<br>')
}

export function renderReportHtml(report: RunReport): string {
  const run = report.run
  const kills = report.control.filter(isKill)
  const killedActions = new Set(report.actions.filter((a) => a.kill_switch.length > 0).map((a) => a.event_id))
  const trippedBy = new Set(kills.map((k) => k.tripping_event_id))
  const integ = report.integrity
  const covering = integ.digests.find((d) => d.body.seq === integ.covering_digest)
  const glance: [string, string][] = [
    ['Outcome', `<span id="outcome" class="badge outcome-${esc(run.outcome)}">${esc(run.outcome)}</span>`],
    ['Agent', esc(`${run.agent.name ?? '–'} ${run.agent.version ?? ''}`)],
    ['Principal', esc(who(run.principal))],
    ['Owner', esc(run.owner ?? '–')],
    ['Contract version', esc(run.contract_version ?? '–')],
    ['Autonomy mode', esc(run.autonomy_mode ?? '–')],
    ['Started', esc(run.started_at ?? '–')],
    ['Ended', esc(run.ended_at ?? 'not ended')],
    ['Events', `${run.events}${run.duplicates > 0 ? ` (${run.duplicates} duplicate)` : ''}${run.late > 0 ? ` (${run.late} late)` : ''}`],
    ['Actions', `${report.actions.length}`],
    ['Cost', `<span id="total-cost">${esc(usd(report.cost.totals.cost_usd))}</span>${(() => {
      const l = report.cost.budget.find((b) => b.dimension === 'cost_usd')?.limit
      return l ? ` of ${esc(usd(l))}` : ''
    })()}`],
    ['Kill-switch events', `<span id="kill-count">${kills.length}</span>`],
  ]
  const permitted = (p: boolean | null) => (p === true ? '<span class="yes">yes</span>' : p === false ? '<span class="no">no</span>' : '<span class="none">no decision</span>')
  const controlRow = (c: ControlEntry) =>
    `<tr class="${isKill(c) ? 'kill' : c.kind === 'budget.alert' ? 'alert' : ''}"><td>${esc(c.occurred_at)}</td><td>${esc(c.kind)}</td><td>${esc(c.scope)}${c.scope_key ? ` ${esc(c.scope_key)}` : ''}</td><td>${esc(c.state ?? c.level)}</td><td>${esc(c.trigger ?? c.dimension)}</td><td>${c.used !== null ? `${esc(c.used)} / ${esc(c.limit)}` : ''}</td><td>${esc(c.reason)}</td><td class="mono">${esc(c.tripping_event_id)}</td></tr>`
  const timeline = new Map(report.timeline.map((t) => [t.seq, t]))
  const byId = new Map(integ.chain.map((c) => [String(c.event.event_id), c.event]))

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Run report ${esc(run.run_id)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<h1>Run ${esc(run.run_id)}</h1>
<p class="sub">Tenant ${esc(run.tenant)} · report generated ${esc(report.generated_at)} · ${esc(report.format)} v${report.version}</p>
${kills.length > 0 ? `<div id="kill-banner" class="kill-banner">Kill switch: ${kills.map((k) => esc(`${k.state} by ${k.trigger} — ${k.reason ?? ''}`)).join('<br>')}</div>` : ''}
<section class="card" id="at-a-glance"><h2 style="margin-top:0">Run at a glance</h2><dl class="glance">
${glance.map(([k, v]) => `<div><dt>${k}</dt><dd>${v}</dd></div>`).join('\n')}
</dl></section>

<section class="card" id="cost"><h2 style="margin-top:0">Cost against budget</h2>
${costChart(report)}
<table id="budget"><thead><tr><th>Dimension</th><th>Used</th><th>Limit</th><th style="width:30%">Use</th></tr></thead><tbody>
${report.cost.budget
  .map(
    (b) =>
      `<tr><td>${esc(b.dimension)}</td><td>${esc(b.dimension === 'cost_usd' ? usd(b.used) : Math.round(b.used * 100) / 100)}</td><td>${b.limit === null ? '<span class="none">none</span>' : esc(b.dimension === 'cost_usd' ? usd(b.limit) : b.limit)}</td><td>${b.ratio === null ? '' : `<div class="bar"><span class="${b.ratio > 1 ? 'over' : ''}" style="width:${Math.min(100, b.ratio * 100).toFixed(1)}%"></span></div> ${esc(Math.round(b.ratio * 100))}%`}</td></tr>`,
  )
  .join('\n')}
</tbody></table></section>

<h2>Actions</h2>
<table id="actions"><thead><tr><th>Seq</th><th>Time</th><th>Tool</th><th>Class</th><th>Status</th><th>Amount</th><th>Policy decision</th><th>Approval</th><th>Evidence</th><th>Permitted</th><th>Why</th></tr></thead><tbody>
${report.actions
  .map(
    (a) =>
      `<tr class="${killedActions.has(a.event_id) || trippedBy.has(a.event_id) ? 'kill' : ''}" data-event-id="${esc(a.event_id)}"><td>${a.seq}</td><td>${esc(a.occurred_at)}</td><td>${esc(a.tool)}</td><td>${esc(a.action_class)}</td><td>${esc(a.status)}</td><td>${a.amount_usd === null ? '' : esc(usd(a.amount_usd))}</td><td>${a.policy ? `${esc(a.policy.policy_id)}: ${esc(a.policy.decision)}` : '<span class="none">none</span>'}</td><td>${a.approval ? `${esc(a.approval.decision ?? 'requested')}${a.approval.approver ? ` by ${esc(who(a.approval.approver))}` : ''}` : ''}</td><td>${evidenceCell(a.evidence, byId)}</td><td>${permitted(a.permitted)}</td><td>${esc(a.basis)}</td></tr>`,
  )
  .join('\n')}
</tbody></table>

<h2>Budget and kill-switch events</h2>
<table id="control"><thead><tr><th>Time</th><th>Kind</th><th>Scope</th><th>State</th><th>Trigger</th><th>Used / limit</th><th>Reason</th><th>Tripping event</th></tr></thead><tbody>
${report.control.length === 0 ? '<tr><td colspan="8" class="none">none</td></tr>' : report.control.map(controlRow).join('\n')}
</tbody></table>
<p class="sub">${esc(integ.not_covered)}</p>

<h2>Timeline</h2>
<table id="timeline"><thead><tr><th>Seq</th><th>Time</th><th>Step</th><th>Type</th><th>What</th><th>Flags</th></tr></thead><tbody>
${integ.chain
  .map((c) => {
    const t = timeline.get(c.seq)
    const flags = [t?.duplicate_of !== null && t?.duplicate_of !== undefined ? `duplicate of seq ${t.duplicate_of}` : '', t?.late ? `late (${t.late})` : ''].filter(Boolean).join(', ')
    return `<tr class="${trippedBy.has(String(c.event.event_id)) ? 'kill' : flags ? 'flagged' : ''}"><td>${c.seq}</td><td>${esc(t?.occurred_at)}</td><td>${esc(t?.step)}</td><td>${esc(c.event.type)}</td><td>${esc(eventSummary(c.event))}</td><td>${esc(flags)}</td></tr>`
  })
  .join('\n')}
</tbody></table>

<h2>Integrity</h2>
<section class="card" id="integrity">
<p>Every event above is hashed (SHA-256 of its RFC 8785 canonical JSON) into a chain that starts from a genesis bound to this tenant and run; the notary signs the chain's head with Ed25519 in a digest chained to the previous digest. Verify the JSON form of this report offline: <span class="mono">npm run verify -- report.json --public-key notary-public-key.pem</span>, with the notary's public key obtained out of band.</p>
<dl class="glance">
<div><dt>Chain head</dt><dd class="mono" id="chain-head">${integ.head ? `seq ${integ.head.seq}: ${esc(integ.head.chain_hash)}` : 'none'}</dd></div>
<div><dt>Genesis</dt><dd class="mono">${esc(integ.genesis)}</dd></div>
<div><dt>Covering digest</dt><dd id="covering-digest">${covering ? `#${covering.body.seq}, issued ${esc(new Date(covering.body.issued_at).toISOString())}` : 'none'}</dd></div>
<div><dt>Signing key</dt><dd class="mono">${esc(integ.key_fingerprint)}</dd></div>
</dl>
${covering ? `<p class="mono">signature ${esc(covering.signature)}</p>` : ''}
${integ.pending_events > 0 ? `<p>${integ.pending_events} later events were not yet signed and are not in this report.</p>` : ''}
<table id="digests"><thead><tr><th>Digest</th><th>Issued</th><th>Covers</th><th>Heads</th><th>Signature</th></tr></thead><tbody>
${integ.digests.map((d) => `<tr><td>#${d.body.seq}</td><td>${esc(new Date(d.body.issued_at).toISOString())}</td><td>${d.covers ? `seq ${d.covers.seq}` : '–'}</td><td>${d.body.heads_count}</td><td class="mono">${esc(d.signature.slice(0, 24))}…</td></tr>`).join('\n')}
</tbody></table>
</section>
</main>
</body>
</html>
`
}

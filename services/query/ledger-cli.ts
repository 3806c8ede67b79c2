import { parseArgs } from 'node:util'

/**
 * `npm run ledger -- <command>`: the query API from a terminal, as readable tables or `--json`.
 * The API is `--url` or LEDGER_API_URL (default http://127.0.0.1:8080); the key is `--key` or
 * LEDGER_API_KEY (a read or audit key). Options are the API's query parameters with dashes
 * (`--action-class` is `action_class`). Exit codes: 0 done, 1 refused or unreachable, 2 usage.
 */
const USAGE = `usage: npm run ledger -- <command> [options] [--json] [--url <api>] [--key <read key>]
  runs                [--agent --version --principal --principal-type --outcome --from --to --limit --cursor]
  run <run id>
  timeline <run id>   [--type --limit --cursor]
  lineage <event id>  who authorized a tool call, which policy and approval permitted it, what evidence proves it
  actions             [--principal --tool --policy --decision --status --action-class --agent --version --from --to --limit --cursor]
  usage versions      [--agent --version --tool --event-type --granularity hour|day --from --to]
  usage principals    [--principal --agent --from --to --limit]
  control             [--run-id --kind --scope --trigger --from --to --limit --cursor]
times: ISO-8601 (2026-11-22T10:00:00Z), a date (2026-11-22) or epoch milliseconds`

const FILTERS = ['agent', 'version', 'principal', 'principal-type', 'outcome', 'from', 'to', 'limit', 'cursor', 'type', 'tool', 'policy', 'decision', 'status', 'action-class', 'event-type', 'granularity', 'run-id', 'kind', 'scope', 'trigger'] as const

type Json = Record<string, any>

function fail(message: string, code: 1 | 2 = 1): never {
  console.error(message)
  process.exit(code)
}

let parsed
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: { json: { type: 'boolean' }, url: { type: 'string' }, key: { type: 'string' }, help: { type: 'boolean', short: 'h' }, ...Object.fromEntries(FILTERS.map((f) => [f, { type: 'string' as const }])) },
  })
} catch (err) {
  fail(`${(err as Error).message}\n${USAGE}`, 2)
}
const { positionals, values } = parsed
if (values.help === true || positionals.length === 0) fail(USAGE, values.help === true ? 1 : 2)

const params = new URLSearchParams()
for (const f of FILTERS) {
  const v = (values as Record<string, unknown>)[f]
  if (typeof v === 'string') params.set(f.replace(/-/g, '_'), v)
}
const qs = () => (params.size > 0 ? `?${params}` : '')
const id = (what: string) => positionals[1] ?? fail(`${positionals[0]}: the ${what} is missing\n${USAGE}`, 2)

const [command, sub] = positionals
let path: string
let render: (body: Json) => void
switch (command) {
  case 'runs':
    path = `/v1/runs${qs()}`
    render = (b) => {
      table(b.runs, { run_id: (r) => r.run_id, started: (r) => r.started_at, agent: (r) => `${r.agent.name}@${r.agent.version}`, principal: (r) => `${r.principal.type}:${r.principal.id}`, outcome: (r) => r.outcome, events: (r) => r.usage?.events, tools: (r) => r.usage?.tool_calls, cost_usd: (r) => money(r.usage?.cost_usd) })
      next(b)
    }
    break
  case 'run':
    path = `/v1/runs/${encodeURIComponent(id('run id'))}`
    render = (b) => {
      fields({ run: b.run_id, agent: `${b.agent.name}@${b.agent.version}`, principal: `${b.principal.type}:${b.principal.id}`, owner: b.owner, contract: b.contract_version, autonomy: b.autonomy_mode, started: b.started_at, ended: b.ended_at, outcome: b.outcome })
      if (b.usage) fields({ events: b.usage.events, 'model calls': b.usage.model_calls, 'tool calls': b.usage.tool_calls, 'tool errors': b.usage.tool_errors, tokens: `${b.usage.input_tokens} in / ${b.usage.output_tokens} out`, cost_usd: money(b.usage.cost_usd), 'amount moved': money(b.usage.amount_usd) })
      if (b.control.length > 0) {
        console.log('\nkill-switch and budget events')
        table(b.control, controlColumns)
      }
    }
    break
  case 'timeline':
    path = `/v1/runs/${encodeURIComponent(id('run id'))}/timeline${qs()}`
    render = (b) => {
      table(b.events, { step: (e) => e.step, at: (e) => e.occurred_at, type: (e) => e.type, what: summary, event_id: (e) => e.event_id })
      next(b)
    }
    break
  case 'lineage':
    path = `/v1/actions/${encodeURIComponent(id('event id'))}/lineage`
    render = (b) => {
      const a = b.action
      fields({ action: `${a.tool} (${a.action_class}) ${a.status}`, event: a.event_id, run: `${b.run.run_id} step ${a.step}`, at: a.occurred_at, digest: a.argument_digest, amount_usd: a.amount_usd })
      console.log('\nWHO authorized it')
      fields({ principal: who(b.who.principal), approver: who(b.who.approver), agent: `${b.run.agent.name}@${b.run.agent.version}`, owner: b.run.owner, contract: b.run.contract_version, autonomy: b.run.autonomy_mode })
      console.log('\nWHICH POLICY permitted it')
      const d = b.policy.decision
      fields({ permitted: b.policy.permitted === null ? 'unknown' : b.policy.permitted ? 'yes' : 'NO', basis: b.policy.basis, decision: d ? `${d.decision} by ${d.engine} ${d.policy_id}${d.bundle_revision ? ` @${d.bundle_revision}` : ''} (${d.event_id}, linked by ${d.linked_by})` : null, approval: b.policy.approval?.decided ? `${b.policy.approval.decided.decision} by ${who(b.policy.approval.decided.approver)} (${b.policy.approval.decided.event_id})` : null })
      console.log('\nWHAT EVIDENCE proves it')
      const m = b.evidence.proposed_by
      fields({ 'proposed by': m ? `${m.provider}/${m.model} (${m.event_id}, linked by ${m.linked_by})` : null, outcome: `${b.evidence.outcome.status}${b.evidence.outcome.side_effect_ref ? ` → ${b.evidence.outcome.side_effect_ref}` : ''}`, 'causation chain': b.evidence.causation_chain.join(' ← ') || null })
      if (b.evidence.retrieved.length > 0) table(b.evidence.retrieved, { retrieved: (e) => e.event_id, source: (e) => e.source, documents: (e) => e.document_ids.join(' '), linked_by: (e) => e.linked_by })
      if (b.evidence.kill_switch.length > 0) table(b.evidence.kill_switch, { 'KILL SWITCH': (k) => k.state, trigger: (k) => k.trigger, reason: (k) => k.reason })
    }
    break
  case 'actions':
    path = `/v1/actions${qs()}`
    render = (b) => {
      table(b.actions, { at: (a) => a.occurred_at, event_id: (a) => a.event_id, run_id: (a) => a.run_id, tool: (a) => a.tool, principal: (a) => who(a.principal), status: (a) => a.status, amount_usd: (a) => a.amount_usd, policy: (a) => (a.policy ? `${a.policy.policy_id}: ${a.policy.decision}` : ''), approval: (a) => (a.approval ? `${a.approval.decision} by ${who(a.approval.approver)}` : '') })
      next(b)
    }
    break
  case 'usage':
    if (sub === 'versions') {
      path = `/v1/usage/agent-versions${qs()}`
      render = (b) => table(b.series, { bucket: (r) => r.bucket, agent: (r) => `${r.agent_name}@${r.agent_version}`, runs: (r) => r.runs, events: (r) => r.events, tool_calls: (r) => r.tool_calls, errors: (r) => r.errors, denials: (r) => r.denials, cost_usd: (r) => money(r.cost_usd), amount_usd: (r) => money(r.amount_usd) })
    } else if (sub === 'principals') {
      path = `/v1/usage/principals${qs()}`
      render = (b) => table(b.principals, { principal: (r) => who(r.principal), agent: (r) => r.agent_name, events: (r) => r.events, tool_calls: (r) => r.tool_calls, cost_usd: (r) => money(r.cost_usd), amount_usd: (r) => money(r.amount_usd) })
    } else fail(`usage: versions or principals\n${USAGE}`, 2)
    break
  case 'control':
    path = `/v1/control/history${qs()}`
    render = (b) => {
      table(b.records, controlColumns)
      next(b)
    }
    break
  default:
    fail(`unknown command ${command}\n${USAGE}`, 2)
}

const key = values.key ?? process.env.LEDGER_API_KEY
if (key === undefined || key === '') fail(`a read or audit API key is required: --key <key> or LEDGER_API_KEY (npm run keys -- create --tenant <tenant> --role read)`, 2)
const base = (values.url ?? process.env.LEDGER_API_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '')
let res: Response
try {
  res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(60_000) })
} catch (err) {
  fail(`could not reach the API at ${base}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`)
}
const body = (await res.json().catch(() => ({}))) as Json
if (!res.ok) fail(`${res.status} ${body.error?.code ?? ''}: ${body.error?.message ?? 'no error body'}`)
if (values.json === true) console.log(JSON.stringify(body, null, 2))
else render(body)

function money(v: unknown): string {
  return typeof v === 'number' ? v.toFixed(v !== 0 && Math.abs(v) < 0.01 ? 4 : 2) : ''
}
function who(p: Json | null | undefined): string {
  return p ? `${p.type}:${p.id}` : ''
}
function summary(e: Json): string {
  switch (e.type) {
    case 'model.call':
      return `${e.provider}/${e.model} ${e.input_tokens}→${e.output_tokens} tok $${money(e.cost_usd)}`
    case 'tool.call':
      return `${e.tool} ${e.action_class} ${e.status}${e.amount_usd != null ? ` $${money(e.amount_usd)}` : ''}`
    case 'policy.decision':
      return `${e.policy_id}: ${e.decision}`
    case 'approval.requested':
      return `approval ${e.approval_id} asked of ${e.requested_approver ?? '?'}`
    case 'approval.decided':
      return `approval ${e.approval_id} ${e.decision} by ${who(e.approver)}`
    case 'evidence.retrieved':
      return `${e.source}: ${(e.document_ids ?? []).join(' ')}`
    case 'human.override':
      return `${e.kind} by ${who(e.operator)}: ${e.reason ?? ''}`
    case 'run.started':
      return `for ${who(e.principal)}, owner ${e.owner}, ${e.autonomy_mode}`
    case 'run.ended':
      return `${e.outcome}${e.reason ? `: ${e.reason}` : ''}`
    default:
      return ''
  }
}
const controlColumns: Record<string, (r: Json) => unknown> = {
  at: (r) => r.decided_at ?? r.occurred_at,
  kind: (r) => r.kind,
  scope: (r) => `${r.scope}:${r.scope_key}`,
  state: (r) => r.state ?? r.level,
  trigger: (r) => r.trigger ?? r.dimension,
  reason: (r) => r.reason ?? (r.used !== undefined ? `${r.used} of ${r.limit}` : ''),
}
function next(b: Json): void {
  if (b.next_cursor) console.log(`\nmore: add --cursor ${b.next_cursor}`)
}
function fields(values: Record<string, unknown>): void {
  const width = Math.max(...Object.keys(values).map((k) => k.length))
  for (const [k, v] of Object.entries(values)) if (v !== null && v !== undefined && v !== '') console.log(`${k.padEnd(width)}  ${String(v)}`)
}
function table(rows: Json[], columns: Record<string, (r: Json) => unknown>): void {
  if (rows.length === 0) {
    console.log('(none)')
    return
  }
  const names = Object.keys(columns)
  const cells = rows.map((r) => names.map((n) => {
    const v = columns[n]!(r)
    return v === null || v === undefined ? '' : String(v)
  }))
  const widths = names.map((n, i) => Math.min(60, Math.max(n.length, ...cells.map((c) => c[i]!.length))))
  const line = (c: string[]) => c.map((v, i) => (v.length > widths[i]! ? `${v.slice(0, widths[i]! - 1)}…` : v.padEnd(widths[i]!))).join('  ').trimEnd()
  console.log(line(names))
  console.log(line(widths.map((w) => '-'.repeat(w))))
  for (const c of cells) console.log(line(c))
}

import { randomBytes } from 'node:crypto'
import { canonicalJson } from '../shared/canonical-json.ts'
import { DIMENSIONS, limitsFromSnapshot, usageOf, type Dimension } from '../../stream-processors/budget/domain/budget-reducer.ts'
import type { LedgerEventView } from '../../stream-processors/domain-event.ts'
import { eventHash, genesisHash } from '../../stream-processors/notary/domain/chain.ts'
import { proveHead, type DigestBody, type DigestHead, type HeadProof } from '../../stream-processors/notary/domain/digest.ts'
import { buildLineage, planRunLineage } from '../query/action-lineage.ts'
import { eventRefOf } from './run-lineage.ts'

/**
 * The per-run audit report, assembled from plain data (pure): the run's chain (each event with its
 * hashes, in log order), the signed digests that cover it, and the run's control records. Every
 * section but `control` is derived from the chained events alone by `deriveSections`, which the
 * verifier runs again: a header, timeline, action or cost figure that does not follow from the
 * signed events fails verification like a changed event does.
 *
 * Late and duplicate events (the log order is the truth):
 * - a record whose event id appeared earlier in the run's chain is a duplicate: it stays chained
 *   at its position, the timeline flags it `duplicate_of` the first one's seq, and the header,
 *   actions and cost count each event id once, at its first position;
 * - an event chained after the run's `run.ended` is late `after_end`; one whose step is below a
 *   step already chained is late `out_of_order`. Both stay at their log position, flagged, and
 *   count like any other event (they happened; the log says when we learned of them).
 */

type Json = Record<string, unknown>

export const REPORT_FORMAT = 'agent-ledger/run-report'
export const REPORT_VERSION = 1

export interface ChainedEvent {
  seq: number
  event_hash: string
  chain_hash: string
  event: Json
}

export interface ReportDigest {
  body: DigestBody
  signature: string
  /** This run's head in the digest and its Merkle audit path; null for a digest of the tenant's chain between two that cover the run. */
  covers: HeadProof | null
}

/** A kill-switch decision or budget alert of the run, from the control topic. */
export interface ControlEntry {
  kind: string
  record_id: string
  occurred_at: string | null
  scope: string | null
  scope_key: string | null
  state: string | null
  trigger: string | null
  level: string | null
  dimension: string | null
  window: string | null
  used: number | null
  limit: number | null
  reason: string | null
  tripping_event_id: string | null
}

export interface RunHeader {
  tenant: string
  run_id: string
  agent: { name: string | null; version: string | null }
  owner: string | null
  principal: unknown
  contract_version: string | null
  autonomy_mode: string | null
  goal: string | null
  started_at: string | null
  ended_at: string | null
  outcome: string
  end_reason: string | null
  events: number
  duplicates: number
  late: number
}

export interface TimelineEntry {
  seq: number
  event_id: string
  type: string
  step: number | null
  occurred_at: string | null
  actor: string | null
  duplicate_of: number | null
  late: 'after_end' | 'out_of_order' | null
}

export interface ActionRow {
  seq: number
  event_id: string
  step: number | null
  occurred_at: string | null
  tool: string | null
  action_class: string | null
  status: string | null
  amount_usd: number | null
  permitted: boolean | null
  basis: string
  policy: { event_id: string; policy_id: unknown; bundle_revision: unknown; decision: unknown; linked_by: string } | null
  approval: { approval_id: unknown; requested_event_id: string | null; decided_event_id: string | null; decision: unknown; approver: unknown } | null
  proposed_by: { event_id: string; model: unknown; linked_by: string } | null
  /** The retrievals behind the action, by event id (their content is in the chain): on its causation chain, or else the latest before it. */
  evidence: { linked_by: 'causation_chain' | 'preceding' | null; event_ids: string[] }
  overrides: string[]
  kill_switch: string[]
}

export interface CostSection {
  totals: { model_calls: number; tool_calls: number; tool_errors: number; input_tokens: number; output_tokens: number; cost_usd: number; amount_usd: number; steps: number; wall_clock_seconds: number }
  /** Use of each budget dimension against the run's limits (its run.started budget snapshot). */
  budget: { dimension: Dimension; used: number; limit: number | null; ratio: number | null }[]
}

export interface IntegritySection {
  algorithm: Record<string, string>
  tenant: string
  run_id: string
  genesis: string
  chain: ChainedEvent[]
  head: { seq: number; chain_hash: string } | null
  covering_digest: number | null
  key_fingerprint: string | null
  digests: ReportDigest[]
  /** Events chained after the covering digest (not yet signed), left out of this report. */
  pending_events: number
  not_covered: string
}

export interface RunReport {
  format: typeof REPORT_FORMAT
  version: typeof REPORT_VERSION
  generated_at: string
  run: RunHeader
  timeline: TimelineEntry[]
  actions: ActionRow[]
  cost: CostSection
  control: ControlEntry[]
  integrity: IntegritySection
}

export const ALGORITHM = {
  event_hash: 'sha256 of the RFC 8785 (JCS) canonical JSON of the event, lowercase hex',
  genesis: 'sha256(JCS({"kind":"agent-ledger/chain-genesis","run_id":<run>,"tenant":<tenant>,"v":1}))',
  chain_hash: 'sha256(JCS({"event_hash":<event_hash>,"prev":<previous chain_hash or genesis>,"seq":<seq>}))',
  digest: 'Ed25519 signature (base64) over JCS(body); body.previous_signature chains each digest of a tenant to the one before',
  heads_root: 'RFC 6962 Merkle root over JCS({"head":..,"run_id":..,"seq":..}) leaves sorted by run_id; covers.proof is the audit path',
  key_fingerprint: 'sha256: + hex sha256 of the raw 32-byte Ed25519 public key',
}

export const NOT_COVERED = 'The control section (kill-switch decisions and budget alerts) comes from the control topic; it is not in the hash chain and the signatures do not cover it.'

const iso = (ms: unknown) => (typeof ms === 'number' && Number.isFinite(ms) ? new Date(ms).toISOString() : null)
const str = (v: unknown) => (typeof v === 'string' ? v : null)
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0)

export interface DerivedSections {
  run: RunHeader
  timeline: TimelineEntry[]
  actions: ActionRow[]
  cost: CostSection
}

/** Everything the chained events say about the run. Deterministic: the verifier recomputes it. */
export function deriveSections(tenant: string, runId: string, chain: readonly ChainedEvent[], control: readonly ControlEntry[]): DerivedSections {
  const firstSeq = new Map<string, number>()
  const unique: { seq: number; event: Json }[] = []
  const timeline: TimelineEntry[] = []
  let maxStep = -Infinity
  let endedAt: number | undefined
  let duplicates = 0
  let late = 0
  for (const c of chain) {
    const e = c.event
    const id = String(e.event_id ?? '')
    const step = typeof e.step === 'number' ? e.step : null
    const dup = firstSeq.get(id)
    let lateness: TimelineEntry['late'] = null
    if (endedAt !== undefined) lateness = 'after_end'
    else if (step !== null && step < maxStep) lateness = 'out_of_order'
    if (dup === undefined) {
      firstSeq.set(id, c.seq)
      unique.push({ seq: c.seq, event: e })
    } else duplicates += 1
    if (lateness !== null) late += 1
    if (step !== null) maxStep = Math.max(maxStep, step)
    if (e.type === 'run.ended' && endedAt === undefined) endedAt = c.seq
    timeline.push({ seq: c.seq, event_id: id, type: String(e.type ?? ''), step, occurred_at: iso(e.occurred_at), actor: str(e.actor), duplicate_of: dup ?? null, late: lateness })
  }

  const started = unique.find((u) => u.event.type === 'run.started')?.event
  const ended = unique.find((u) => u.event.type === 'run.ended')?.event
  const first = unique[0]?.event
  const run: RunHeader = {
    tenant,
    run_id: runId,
    agent: { name: str((started ?? first)?.agent_name), version: str((started ?? first)?.agent_version) },
    owner: str(started?.owner),
    principal: (started ?? first)?.principal ?? null,
    contract_version: str(started?.contract_version) ?? str(first?.contract_version),
    autonomy_mode: str(started?.autonomy_mode),
    goal: str(started?.goal),
    started_at: iso(started?.occurred_at ?? first?.occurred_at),
    ended_at: iso(ended?.occurred_at),
    outcome: str(ended?.outcome) ?? 'running',
    end_reason: str(ended?.reason),
    events: chain.length,
    duplicates,
    late,
  }

  // Cost and budget use, as the budget processor counts them.
  const used: Record<Dimension, number> = { steps: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0, tool_calls: 0, wall_clock_seconds: 0 }
  const totals: CostSection['totals'] = { model_calls: 0, tool_calls: 0, tool_errors: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0, amount_usd: 0, steps: 0, wall_clock_seconds: 0 }
  let startedAt: number | undefined
  for (const { event } of unique) {
    for (const [d, amount] of Object.entries(usageOf(event as LedgerEventView)) as [Dimension, number][]) used[d] += amount
    if (typeof event.occurred_at === 'number') {
      startedAt ??= event.occurred_at
      used.wall_clock_seconds = Math.max(used.wall_clock_seconds, (event.occurred_at - startedAt) / 1000)
    }
    if (event.type === 'model.call') totals.model_calls += 1
    if (event.type === 'tool.call') {
      totals.tool_calls += 1
      if (event.status === 'error') totals.tool_errors += 1
      totals.amount_usd += num(event.amount_usd)
    }
  }
  Object.assign(totals, { input_tokens: used.input_tokens, output_tokens: used.output_tokens, cost_usd: used.cost_usd, steps: used.steps, wall_clock_seconds: used.wall_clock_seconds })
  const limits = limitsFromSnapshot((started?.budget ?? null) as Json | null)
  const cost: CostSection = {
    totals,
    budget: DIMENSIONS.map((dimension) => {
      const limit = limits[dimension] ?? null
      return { dimension, used: used[dimension], limit, ratio: limit === null || limit === 0 ? null : used[dimension] / limit }
    }),
  }

  // Actions: every tool call, with the policy decision, approval and evidence behind it.
  const payloads = new Map<string, Json>(unique.map((u) => [String(u.event.event_id), u.event]))
  const plans = planRunLineage(unique.map((u) => eventRefOf(u.event)))
  const killsByEvent = new Map<string, ControlEntry[]>()
  for (const c of control) {
    if (c.kind !== 'kill_switch.decision' || c.tripping_event_id === null) continue
    killsByEvent.set(c.tripping_event_id, [...(killsByEvent.get(c.tripping_event_id) ?? []), c])
  }
  const actions: ActionRow[] = []
  for (const { seq, event } of unique) {
    if (event.type !== 'tool.call') continue
    const id = String(event.event_id)
    const plan = plans.get(id)
    if (plan === undefined) continue
    const kills = killsByEvent.get(id) ?? []
    // Evidence is listed by id below, so the document is built without copying every retrieval.
    const doc = buildLineage({ ...plan, evidence: [] }, payloads, { outcome: run.outcome, killSwitch: kills as unknown as Json[] })
    const decision = doc.policy.decision
    const requested = doc.policy.approval?.requested ?? null
    const decided = doc.policy.approval?.decided ?? null
    const proposer = doc.evidence.proposed_by
    actions.push({
      seq,
      event_id: id,
      step: typeof event.step === 'number' ? event.step : null,
      occurred_at: iso(event.occurred_at),
      tool: str(event.tool),
      action_class: str(event.action_class),
      status: str(event.status),
      amount_usd: typeof event.amount_usd === 'number' ? event.amount_usd : null,
      permitted: doc.policy.permitted,
      basis: doc.policy.basis,
      policy: decision === null ? null : { event_id: String(decision.event_id), policy_id: decision.policy_id ?? null, bundle_revision: decision.bundle_revision ?? null, decision: decision.decision ?? null, linked_by: String(decision.linked_by) },
      approval:
        requested === null && decided === null
          ? null
          : {
              approval_id: decided?.approval_id ?? requested?.approval_id ?? null,
              requested_event_id: requested === null ? null : String(requested.event_id),
              decided_event_id: decided === null ? null : String(decided.event_id),
              decision: decided?.decision ?? null,
              approver: decided?.approver ?? null,
            },
      proposed_by: proposer === null ? null : { event_id: String(proposer.event_id), model: proposer.model ?? null, linked_by: String(proposer.linked_by) },
      evidence: { linked_by: plan.evidence[0]?.linkedBy ?? null, event_ids: plan.evidence.map((e) => e.ref.event_id) },
      overrides: doc.evidence.overrides.map((o) => String(o.event_id)),
      kill_switch: kills.map((k) => k.record_id),
    })
  }
  return { run, timeline, actions, cost }
}

export interface AssembleInput {
  tenant: string
  runId: string
  chain: ChainedEvent[]
  digests: ReportDigest[]
  pendingEvents: number
  control: ControlEntry[]
  generatedAt: number
}

export function assembleRunReport(input: AssembleInput): RunReport {
  const control = [...input.control].sort((a, b) => String(a.occurred_at).localeCompare(String(b.occurred_at)) || a.record_id.localeCompare(b.record_id))
  const sections = deriveSections(input.tenant, input.runId, input.chain, control)
  const last = input.chain.at(-1)
  const covering = [...input.digests].reverse().find((d) => d.covers !== null)
  return {
    format: REPORT_FORMAT,
    version: REPORT_VERSION,
    generated_at: new Date(input.generatedAt).toISOString(),
    ...sections,
    control,
    integrity: {
      algorithm: ALGORITHM,
      tenant: input.tenant,
      run_id: input.runId,
      genesis: genesisHash(input.tenant, input.runId),
      chain: input.chain,
      head: last === undefined ? null : { seq: last.seq, chain_hash: last.chain_hash },
      covering_digest: covering?.body.seq ?? null,
      key_fingerprint: covering?.body.key_fingerprint ?? null,
      digests: input.digests,
      pending_events: input.pendingEvents,
      not_covered: NOT_COVERED,
    },
  }
}

/** A control record as the lineage store returns it (kind, id, time, the Avro record) → a report entry. */
export function controlEntryOf(kind: string, recordId: string, occurredAtMs: number, record: Json): ControlEntry {
  const s = (v: unknown) => (typeof v === 'string' && v !== '' ? v : null)
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null)
  return {
    kind,
    record_id: recordId,
    occurred_at: iso(occurredAtMs),
    scope: s(record.scope),
    scope_key: s(record.scope_key),
    state: s(record.state),
    trigger: s(record.trigger),
    level: s(record.level),
    dimension: s(record.dimension),
    window: s(record.window),
    used: n(record.used),
    limit: n(record.limit),
    reason: s(record.reason),
    tripping_event_id: s(record.tripping_event_id),
  }
}

/** A stored digest: its signed body and signature, and its heads when the caller loaded them. */
export interface StoredDigest {
  body: DigestBody
  signature: string
  heads: DigestHead[] | null
}

/**
 * The digests a report carries: from the first that covers the run to the last that covers a head
 * the report can include (`availableThrough`: the last seq of the run's chain that is readable),
 * with every digest of the tenant's chain in between so the verifier can follow the chain.
 * `digests` is a contiguous range of the tenant's digests in seq order.
 */
export function digestTrail(digests: readonly StoredDigest[], runId: string, availableThrough: number): { digests: ReportDigest[]; coveredThrough: number } | undefined {
  const withProofs = digests.map((d) => ({ d, covers: d.heads === null ? undefined : proveHead({ heads: d.heads }, runId) }))
  const first = withProofs.findIndex((x) => x.covers !== undefined)
  let last = -1
  withProofs.forEach((x, i) => {
    if (x.covers !== undefined && x.covers.seq <= availableThrough) last = i
  })
  if (first < 0 || last < 0) return undefined
  return {
    digests: withProofs.slice(first, last + 1).map((x) => ({ body: x.d.body, signature: x.d.signature, covers: x.covers ?? null })),
    coveredThrough: withProofs[last]!.covers!.seq,
  }
}

/**
 * `canonicalJson(report)`, faster: each chained event whose stored canonical JSON (`stored[i]`, as
 * ClickHouse holds it) hashes to its `event_hash` is spliced in as it is instead of being
 * serialized again; those bytes are exactly what the notary hashed, so the result is the same.
 * An event whose stored text does not match its hash is serialized from the parsed object.
 */
export function canonicalReportJson(report: RunReport, stored?: readonly string[]): string {
  if (stored === undefined) return canonicalJson(report)
  const nonce = randomBytes(12).toString('hex')
  const spliced: (string | undefined)[] = []
  const chain = report.integrity.chain.map((c, i) => {
    const text = stored[i]
    if (text === undefined || eventHash(text) !== c.event_hash) return c
    spliced[i] = text
    return { ...c, event: `\u0000${nonce}:${i}` as unknown as Json }
  })
  const json = canonicalJson({ ...report, integrity: { ...report.integrity, chain } })
  // The placeholder as JSON text: a quoted string starting with the escaped NUL and a random nonce.
  const marker = JSON.stringify(`\u0000${nonce}:`).slice(0, -1).replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')
  return json.replace(new RegExp(`${marker}(\\d+)"`, 'g'), (_, i: string) => spliced[Number(i)]!)
}

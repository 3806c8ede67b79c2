/**
 * Action lineage, pure: for one action (a tool call) of a run, who authorized it, which policy and
 * approval permitted it, and what evidence proves what happened, as one document. Links are made
 * from the events alone, explicit ones first, and the document says how each was made:
 *
 * - proposing model call: the action's `parent_event_id` when it is a model call, else the first
 *   model call up its causation chain, else the last model call before it in the run;
 * - policy decision: one whose `subject_event_id` is the action, else the last one before the action
 *   bound to its argument digest (`action_digest`);
 * - approval: the last `approval.decided` before the action bound to its argument digest, with the
 *   `approval.requested` of the same approval id;
 * - evidence: retrievals that share a causation chain with the action; when none do, the latest
 *   retrievals before it in the run (at most MAX_PRECEDING_EVIDENCE);
 * - overrides targeting the action and kill-switch decisions it tripped.
 */

/** The columns of a run's events lineage needs to pick the related ones (no payloads). */
export interface EventRef {
  event_id: string
  parent_event_id: string
  step: number
  event_type: string
  action_digest: string
  subject_event_id: string
  approval_id: string
}

export const MAX_PRECEDING_EVIDENCE = 20

type Json = Record<string, unknown>

export interface LineagePlan {
  action: EventRef
  started?: EventRef
  model?: { ref: EventRef; linkedBy: 'parent_event_id' | 'causation_chain' | 'preceding_model_call' }
  policy?: { ref: EventRef; linkedBy: 'subject_event_id' | 'action_digest' }
  approvalDecided?: EventRef
  approvalRequested?: EventRef
  evidence: { ref: EventRef; linkedBy: 'causation_chain' | 'preceding' }[]
  overrides: EventRef[]
  chain: string[]
  /** Every event whose payload the document needs. */
  ids: string[]
}

const byPosition = (a: EventRef, b: EventRef) => a.step - b.step || (a.event_id < b.event_id ? -1 : a.event_id > b.event_id ? 1 : 0)
const before = (a: EventRef, b: EventRef) => byPosition(a, b) < 0

/** Picks the events related to `actionId` among the refs of its run (in any order). */
export function planLineage(refs: readonly EventRef[], actionId: string): LineagePlan | undefined {
  const sorted = [...refs].sort(byPosition)
  const byId = new Map(sorted.map((r) => [r.event_id, r]))
  const action = byId.get(actionId)
  if (action === undefined) return undefined
  const ancestorsOf = (ref: EventRef): EventRef[] => {
    const out: EventRef[] = []
    const seen = new Set<string>([ref.event_id])
    let parent = ref.parent_event_id
    while (parent !== '' && !seen.has(parent)) {
      seen.add(parent)
      const p = byId.get(parent)
      if (p === undefined) break
      out.push(p)
      parent = p.parent_event_id
    }
    return out
  }
  const chainRefs = ancestorsOf(action)
  const chain = chainRefs.map((r) => r.event_id)

  let model: LineagePlan['model']
  const parent = chainRefs[0]
  if (parent?.event_type === 'model.call') model = { ref: parent, linkedBy: 'parent_event_id' }
  else {
    const up = chainRefs.find((r) => r.event_type === 'model.call')
    if (up) model = { ref: up, linkedBy: 'causation_chain' }
    else {
      const preceding = sorted.filter((r) => r.event_type === 'model.call' && before(r, action)).at(-1)
      if (preceding) model = { ref: preceding, linkedBy: 'preceding_model_call' }
    }
  }

  let policy: LineagePlan['policy']
  const decisions = sorted.filter((r) => r.event_type === 'policy.decision')
  const subject = decisions.filter((r) => r.subject_event_id === action.event_id).at(-1)
  if (subject) policy = { ref: subject, linkedBy: 'subject_event_id' }
  else if (action.action_digest !== '') {
    const bound = decisions.filter((r) => r.action_digest === action.action_digest && before(r, action)).at(-1)
    if (bound) policy = { ref: bound, linkedBy: 'action_digest' }
  }

  const approvalDecided =
    action.action_digest === '' ? undefined : sorted.filter((r) => r.event_type === 'approval.decided' && r.action_digest === action.action_digest && before(r, action)).at(-1)
  const approvalRequested =
    approvalDecided === undefined
      ? action.action_digest === ''
        ? undefined
        : sorted.filter((r) => r.event_type === 'approval.requested' && r.action_digest === action.action_digest && before(r, action)).at(-1)
      : sorted.filter((r) => r.event_type === 'approval.requested' && r.approval_id === approvalDecided.approval_id).at(-1)

  // Evidence that shares a causation chain with the action: the retrieval itself, or one of its
  // ancestors, is on the action's chain (e.g. both descend from the same model call).
  const onChain = new Set(chain)
  const retrievals = sorted.filter((r) => r.event_type === 'evidence.retrieved' && before(r, action))
  const linked = retrievals.filter((r) => onChain.has(r.event_id) || ancestorsOf(r).some((a) => onChain.has(a.event_id)))
  const evidence: LineagePlan['evidence'] =
    linked.length > 0 ? linked.map((ref) => ({ ref, linkedBy: 'causation_chain' as const })) : retrievals.slice(-MAX_PRECEDING_EVIDENCE).map((ref) => ({ ref, linkedBy: 'preceding' as const }))

  const overrides = sorted.filter((r) => r.event_type === 'human.override' && r.subject_event_id === action.event_id)
  const started = sorted.find((r) => r.event_type === 'run.started')
  const ids = new Set<string>([action.event_id, ...chain, ...evidence.map((e) => e.ref.event_id), ...overrides.map((o) => o.event_id)])
  for (const r of [started, model?.ref, policy?.ref, approvalDecided, approvalRequested]) if (r) ids.add(r.event_id)
  return {
    action,
    ...(started ? { started } : {}),
    ...(model ? { model } : {}),
    ...(policy ? { policy } : {}),
    ...(approvalDecided ? { approvalDecided } : {}),
    ...(approvalRequested ? { approvalRequested } : {}),
    evidence,
    overrides,
    chain,
    ids: [...ids],
  }
}

export interface LineageDocument {
  action: Json
  run: { run_id: string; agent: { name: unknown; version: unknown }; owner: unknown; contract_version: unknown; autonomy_mode: unknown; started_at: string | null; outcome: string | null }
  who: {
    /** On whose behalf the agent acted. */
    principal: unknown
    /** The human who granted the approval, when one was needed. */
    approver: unknown
    actor: unknown
  }
  policy: {
    permitted: boolean | null
    basis: string
    decision: Json | null
    approval: { requested: Json | null; decided: Json | null } | null
  }
  evidence: {
    proposed_by: Json | null
    retrieved: Json[]
    outcome: Json
    overrides: Json[]
    kill_switch: Json[]
    causation_chain: string[]
  }
}

const iso = (ms: unknown) => (typeof ms === 'number' ? new Date(ms).toISOString() : null)
const withTime = (e: Json | undefined, linkedBy?: string): Json | null => (e === undefined ? null : { ...e, occurred_at: iso(e.occurred_at), ...(linkedBy ? { linked_by: linkedBy } : {}) })

/** Builds the document from the plan and the payloads of its events (`payloads` by event id). */
export function buildLineage(plan: LineagePlan, payloads: ReadonlyMap<string, Json>, context: { outcome: string | null; killSwitch: Json[] }): LineageDocument {
  const get = (ref: EventRef | undefined) => (ref === undefined ? undefined : payloads.get(ref.event_id))
  const action = payloads.get(plan.action.event_id) ?? {}
  const started = get(plan.started)
  const decision = get(plan.policy?.ref)
  const decided = get(plan.approvalDecided)
  const requested = get(plan.approvalRequested)

  let permitted: boolean | null
  let basis: string
  const verdict = decision?.decision
  if (decision === undefined) {
    permitted = null
    basis = 'no policy decision was recorded for this action'
  } else if (verdict === 'allow') {
    permitted = true
    basis = `policy ${String(decision.policy_id)} allowed it`
  } else if (verdict === 'deny') {
    permitted = false
    basis = `policy ${String(decision.policy_id)} denied it, and it ran anyway`
  } else if (decided?.decision === 'granted') {
    permitted = true
    basis = `policy ${String(decision.policy_id)} required an approval, granted by ${principalText(decided.approver)} and bound to the action's digest`
  } else {
    permitted = false
    basis = decided === undefined ? `policy ${String(decision.policy_id)} required an approval and none was granted before it ran` : `policy ${String(decision.policy_id)} required an approval, which was denied`
  }

  return {
    action: withTime(action) ?? {},
    run: {
      run_id: String(action.run_id ?? ''),
      agent: { name: action.agent_name, version: action.agent_version },
      owner: started?.owner ?? null,
      contract_version: action.contract_version ?? started?.contract_version ?? null,
      autonomy_mode: started?.autonomy_mode ?? null,
      started_at: iso(started?.occurred_at),
      outcome: context.outcome,
    },
    who: { principal: action.principal ?? null, approver: decided?.approver ?? null, actor: action.actor ?? null },
    policy: {
      permitted,
      basis,
      decision: withTime(decision, plan.policy?.linkedBy),
      approval: requested === undefined && decided === undefined ? null : { requested: withTime(requested), decided: withTime(decided, 'action_digest') },
    },
    evidence: {
      proposed_by: withTime(get(plan.model?.ref), plan.model?.linkedBy),
      retrieved: plan.evidence.flatMap((e) => {
        const p = withTime(payloads.get(e.ref.event_id), e.linkedBy)
        return p ? [p] : []
      }),
      outcome: { status: action.status ?? null, error: action.error ?? null, side_effect_ref: action.side_effect_ref ?? null, latency_ms: action.latency_ms ?? null, dry_run: action.dry_run ?? null },
      overrides: plan.overrides.flatMap((o) => {
        const p = withTime(payloads.get(o.event_id))
        return p ? [p] : []
      }),
      kill_switch: context.killSwitch,
      causation_chain: plan.chain,
    },
  }
}

function principalText(p: unknown): string {
  const v = p as { type?: unknown; id?: unknown } | null | undefined
  return v && typeof v === 'object' ? `${String(v.type)}:${String(v.id)}` : 'an unknown approver'
}

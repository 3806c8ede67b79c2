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

/**
 * The lineage plan of one action of a run (a tool call; undefined for any other event or an id not
 * among the refs). Refs come in any order and must have unique event ids.
 */
export function planLineage(refs: readonly EventRef[], actionId: string): LineagePlan | undefined {
  return planRunLineage(refs, actionId).get(actionId)
}

/**
 * The lineage plans of a run's actions (every tool call, or only `only`), by the rules above, in
 * one sort and one pass: a report of a 10k-event run plans thousands of actions, and planning each
 * on its own would sort and scan the run once per action. Refs must have unique event ids.
 */
export function planRunLineage(refs: readonly EventRef[], only?: string): Map<string, LineagePlan> {
  const sorted = [...refs].sort((a, b) => a.step - b.step || (a.event_id < b.event_id ? -1 : a.event_id > b.event_id ? 1 : 0))
  const byId = new Map(sorted.map((r) => [r.event_id, r]))
  const position = new Map(sorted.map((r, i) => [r.event_id, i]))
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

  // Rules that look at the whole run, whatever the position: the last decision naming the action
  // as its subject, the last request of an approval id, overrides of the action, the first start.
  const decisionBySubject = new Map<string, EventRef>()
  const requestByApproval = new Map<string, EventRef>()
  const overridesBySubject = new Map<string, EventRef[]>()
  // Retrievals by every event id on their own causation chain (themselves included).
  const retrievalsByChainMember = new Map<string, EventRef[]>()
  let started: EventRef | undefined
  for (const r of sorted) {
    if (r.event_type === 'policy.decision') decisionBySubject.set(r.subject_event_id, r)
    else if (r.event_type === 'approval.requested') requestByApproval.set(r.approval_id, r)
    else if (r.event_type === 'human.override') {
      const list = overridesBySubject.get(r.subject_event_id) ?? []
      list.push(r)
      overridesBySubject.set(r.subject_event_id, list)
    } else if (r.event_type === 'run.started') started ??= r
    else if (r.event_type === 'evidence.retrieved') {
      for (const member of [r, ...ancestorsOf(r)]) {
        const list = retrievalsByChainMember.get(member.event_id) ?? []
        list.push(r)
        retrievalsByChainMember.set(member.event_id, list)
      }
    }
  }

  // Rules that look only before the action, kept up to date in one pass.
  let lastModel: EventRef | undefined
  const decisionByDigest = new Map<string, EventRef>()
  const decidedByDigest = new Map<string, EventRef>()
  const requestedByDigest = new Map<string, EventRef>()
  const retrievals: EventRef[] = []
  const plans = new Map<string, LineagePlan>()
  for (const action of sorted) {
    if (action.event_type === 'tool.call' && (only === undefined || action.event_id === only)) {
      const here = position.get(action.event_id)!
      const chainRefs = ancestorsOf(action)
      const chain = chainRefs.map((r) => r.event_id)
      let model: LineagePlan['model']
      const parent = chainRefs[0]
      if (parent?.event_type === 'model.call') model = { ref: parent, linkedBy: 'parent_event_id' }
      else {
        const up = chainRefs.find((r) => r.event_type === 'model.call')
        if (up) model = { ref: up, linkedBy: 'causation_chain' }
        else if (lastModel) model = { ref: lastModel, linkedBy: 'preceding_model_call' }
      }
      let policy: LineagePlan['policy']
      const subject = decisionBySubject.get(action.event_id)
      if (subject) policy = { ref: subject, linkedBy: 'subject_event_id' }
      else if (action.action_digest !== '') {
        const bound = decisionByDigest.get(action.action_digest)
        if (bound) policy = { ref: bound, linkedBy: 'action_digest' }
      }
      const approvalDecided = action.action_digest === '' ? undefined : decidedByDigest.get(action.action_digest)
      const approvalRequested =
        approvalDecided === undefined ? (action.action_digest === '' ? undefined : requestedByDigest.get(action.action_digest)) : requestByApproval.get(approvalDecided.approval_id)

      const linked = new Map<string, EventRef>()
      for (const member of chain) for (const r of retrievalsByChainMember.get(member) ?? []) if (position.get(r.event_id)! < here) linked.set(r.event_id, r)
      const evidence: LineagePlan['evidence'] =
        linked.size > 0
          ? [...linked.values()].sort((a, b) => position.get(a.event_id)! - position.get(b.event_id)!).map((ref) => ({ ref, linkedBy: 'causation_chain' as const }))
          : retrievals.slice(-MAX_PRECEDING_EVIDENCE).map((ref) => ({ ref, linkedBy: 'preceding' as const }))
      const overrides = overridesBySubject.get(action.event_id) ?? []
      const ids = new Set<string>([action.event_id, ...chain, ...evidence.map((e) => e.ref.event_id), ...overrides.map((o) => o.event_id)])
      for (const r of [started, model?.ref, policy?.ref, approvalDecided, approvalRequested]) if (r) ids.add(r.event_id)
      plans.set(action.event_id, {
        action,
        ...(started ? { started } : {}),
        ...(model ? { model } : {}),
        ...(policy ? { policy } : {}),
        ...(approvalDecided ? { approvalDecided } : {}),
        ...(approvalRequested ? { approvalRequested } : {}),
        evidence,
        overrides: [...overrides],
        chain,
        ids: [...ids],
      })
    }
    switch (action.event_type) {
      case 'model.call':
        lastModel = action
        break
      case 'policy.decision':
        if (action.action_digest !== '') decisionByDigest.set(action.action_digest, action)
        break
      case 'approval.decided':
        if (action.action_digest !== '') decidedByDigest.set(action.action_digest, action)
        break
      case 'approval.requested':
        if (action.action_digest !== '') requestedByDigest.set(action.action_digest, action)
        break
      case 'evidence.retrieved':
        retrievals.push(action)
        break
    }
  }
  return plans
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

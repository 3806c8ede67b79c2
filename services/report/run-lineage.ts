import { MAX_PRECEDING_EVIDENCE, type EventRef, type LineagePlan } from '../query/action-lineage.ts'

/**
 * The lineage plan of every action of a run at once. `planLineage` (services/query) plans one
 * action by scanning and sorting the whole run, which is right for one lineage call and too slow
 * for a report of a 10k-event run (thousands of actions × a sort of 10k refs each). This does one
 * sort and one pass with the same rules, and `test/unit/report.test.ts` checks that every plan
 * it makes equals `planLineage`'s for the same run. Refs must have unique event ids (the report
 * counts a duplicated event once, at its first position).
 */
export function planRunLineage(refs: readonly EventRef[]): Map<string, LineagePlan> {
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
    if (action.event_type === 'tool.call') {
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

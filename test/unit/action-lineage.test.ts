import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { buildLineage, MAX_PRECEDING_EVIDENCE, planLineage, type EventRef } from '../../services/query/action-lineage.ts'
import { decodeCursor, encodeCursor, pageOf, timeRange } from '../../services/query/query-params.ts'
import { parseConfig, queryEnv } from '../../services/shared/config.ts'

const ref = (event_id: string, step: number, event_type: string, extra: Partial<EventRef> = {}): EventRef => ({
  event_id,
  step,
  event_type,
  parent_event_id: '',
  action_digest: '',
  subject_event_id: '',
  approval_id: '',
  ...extra,
})
const D = 'sha256:refund'
const payloadsOf = (refs: EventRef[], extra: Record<string, Record<string, unknown>> = {}) =>
  new Map(refs.map((r) => [r.event_id, { event_id: r.event_id, type: r.event_type, step: r.step, occurred_at: r.step * 1000, ...(extra[r.event_id] ?? {}) }]))

describe('action lineage', () => {
  const run = [
    ref('start', 0, 'run.started'),
    ref('m1', 1, 'model.call'),
    ref('read', 2, 'tool.call', { parent_event_id: 'm1', action_digest: 'sha256:read' }),
    ref('ev', 3, 'evidence.retrieved', { parent_event_id: 'read' }),
    ref('pd', 4, 'policy.decision', { action_digest: D }),
    ref('areq', 5, 'approval.requested', { action_digest: D, approval_id: 'ap1' }),
    ref('adec', 6, 'approval.decided', { action_digest: D, approval_id: 'ap1' }),
    ref('refund', 7, 'tool.call', { parent_event_id: 'm1', action_digest: D }),
    ref('m2', 8, 'model.call'),
  ]

  test('links the proposing model call, the policy decision and the approval bound to the digest, and evidence on the same causation chain', () => {
    const plan = planLineage(run, 'refund')!
    assert.equal(plan.model?.ref.event_id, 'm1')
    assert.equal(plan.model?.linkedBy, 'parent_event_id')
    assert.deepEqual([plan.policy?.ref.event_id, plan.policy?.linkedBy], ['pd', 'action_digest'])
    assert.equal(plan.approvalDecided?.event_id, 'adec')
    assert.equal(plan.approvalRequested?.event_id, 'areq')
    assert.deepEqual(plan.evidence.map((e) => [e.ref.event_id, e.linkedBy]), [['ev', 'causation_chain']])
    assert.deepEqual(plan.chain, ['m1'])
    assert.ok(!plan.ids.includes('m2'), 'a later model call is not part of it')
  })

  test('permitted only when the policy allowed it, or required an approval that was granted before it ran', () => {
    const plan = planLineage(run, 'refund')!
    const doc = (decision: string, approval?: string) =>
      buildLineage(plan, payloadsOf(run, { pd: { decision, policy_id: 'refunds/allow' }, ...(approval ? { adec: { decision: approval, approver: { type: 'user', id: 'u-7' } } } : {}) }), { outcome: 'succeeded', killSwitch: [] })
    assert.equal(doc('allow').policy.permitted, true)
    assert.equal(doc('require_approval', 'granted').policy.permitted, true)
    assert.equal(doc('require_approval', 'denied').policy.permitted, false)
    assert.equal(doc('deny').policy.permitted, false)
    assert.match(doc('deny').policy.basis, /ran anyway/)
    const withoutApproval = planLineage(run.filter((r) => r.event_id !== 'adec'), 'refund')!
    const d = buildLineage(withoutApproval, payloadsOf(run, { pd: { decision: 'require_approval', policy_id: 'refunds/allow' } }), { outcome: null, killSwitch: [] })
    assert.equal(d.policy.permitted, false)
    assert.match(d.policy.basis, /none was granted/)
  })

  test('an approval granted after the action ran does not count; a decision naming the action by id wins over a digest match', () => {
    const late = [...run.filter((r) => r.event_id !== 'adec'), ref('adec', 9, 'approval.decided', { action_digest: D, approval_id: 'ap1' })]
    assert.equal(planLineage(late, 'refund')!.approvalDecided, undefined)
    const explicit = [...run, ref('pd2', 10, 'policy.decision', { subject_event_id: 'refund' })]
    assert.deepEqual([planLineage(explicit, 'refund')!.policy?.ref.event_id, planLineage(explicit, 'refund')!.policy?.linkedBy], ['pd2', 'subject_event_id'])
  })

  test('without causation links: the last model call before it, and at most the latest retrievals before it', () => {
    const flat = [ref('m0', 0, 'model.call'), ...Array.from({ length: 30 }, (_, i) => ref(`e${i}`, i + 1, 'evidence.retrieved')), ref('act', 40, 'tool.call'), ref('e-after', 41, 'evidence.retrieved')]
    const plan = planLineage(flat, 'act')!
    assert.deepEqual([plan.model?.ref.event_id, plan.model?.linkedBy], ['m0', 'preceding_model_call'])
    assert.equal(plan.evidence.length, MAX_PRECEDING_EVIDENCE)
    assert.equal(plan.evidence.at(-1)?.ref.event_id, 'e29')
    assert.ok(plan.evidence.every((e) => e.linkedBy === 'preceding'))
  })

  test('a causation cycle in bad data ends the walk instead of looping', () => {
    const cyclic = [ref('a', 1, 'tool.call', { parent_event_id: 'b' }), ref('b', 2, 'tool.call', { parent_event_id: 'a' })]
    assert.deepEqual(planLineage(cyclic, 'a')!.chain, ['b'])
    assert.equal(planLineage(cyclic, 'missing'), undefined)
  })
})

describe('query parameters', () => {
  const config = parseConfig(queryEnv, {})
  test('cursors round-trip, and one list refuses another list\'s or a tampered cursor', () => {
    const c = encodeCursor('runs', [1795000000000, 'run-1'])
    assert.deepEqual(decodeCursor('runs', c, ['number', 'string']), [1795000000000, 'run-1'])
    assert.throws(() => decodeCursor('timeline', c, ['number', 'string']), /^LedgerError: cursor:|cursor: /)
    const tampered = Buffer.from(JSON.stringify({ l: 'runs', k: ['x', 'run-1'] })).toString('base64url')
    assert.throws(() => decodeCursor('runs', tampered, ['number', 'string']), /cursor: /)
  })
  test('a page of limit + 1 rows carries a cursor after its last row only when there is more', () => {
    const rows = [1, 2, 3, 4].map((n) => ({ at: n * 10, id: `r${n}` }))
    const more = pageOf('runs', rows, 3, (r) => [r.at, r.id])
    assert.deepEqual(more.page.map((r) => r.id), ['r1', 'r2', 'r3'])
    assert.deepEqual(decodeCursor('runs', more.next_cursor!, ['number', 'string']), [30, 'r3'])
    assert.deepEqual(pageOf('runs', rows.slice(0, 3), 3, (r) => [r.at, r.id]), { page: rows.slice(0, 3), next_cursor: null })
    assert.deepEqual(pageOf('runs', [], 3, (r: { at: number }) => [r.at]), { page: [], next_cursor: null })
  })
  test('time ranges default, keep their order and stay within the configured width', () => {
    assert.deepEqual(timeRange({}, config, 7, 10 * 86_400_000), { from: 3 * 86_400_000, to: 10 * 86_400_000 })
    assert.throws(() => timeRange({ from: 5, to: 5 }, config, 7), /from: must be before to/)
    assert.throws(() => timeRange({ from: 0, to: (config.LEDGER_QUERY_MAX_RANGE_DAYS + 1) * 86_400_000 }, config, 7), /from: the range/)
  })
})

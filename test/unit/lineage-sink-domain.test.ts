import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { canonicalJson } from '../../services/shared/canonical-json.ts'
import { flushToken, PartitionBuffer, planRecovery, type LoggedRange } from '../../stream-processors/lineage/domain/batch-log.ts'
import { controlRow, eventRow, UnmappableRecordError } from '../../stream-processors/lineage/domain/event-rows.ts'


describe('the sink batch log', () => {
  const logged = (flushId: string, first: number, last: number, done: boolean): LoggedRange => ({ flushId, topic: 'ledger.events.v1', partition: 0, first: BigInt(first), last: BigInt(last), done })

  test('a partition buffers one contiguous range and hands it over whole', () => {
    const p = new PartitionBuffer<number>()
    for (const o of [5, 6, 7, 9]) p.add(BigInt(o), o)
    assert.equal(p.size, 4)
    assert.deepEqual(p.take(), { first: 5n, last: 9n, items: [5, 6, 7, 9] })
    assert.equal(p.take(), undefined)
    p.add(10n, 10)
    assert.deepEqual(p.take(), { first: 10n, last: 10n, items: [10] })
  })

  test('after a crash: unfinished flushes are redone, and everything any logged flush holds is skipped', () => {
    const plan = planRecovery([logged('f1', 10, 14, true), logged('f2', 15, 19, false), logged('f3', 20, 22, false)], 10n)
    assert.deepEqual(plan, { redo: ['f2', 'f3'], skipThrough: 22n })
    const p = new PartitionBuffer<number>(plan.skipThrough)
    assert.equal(p.skips(22n), true)
    assert.equal(p.skips(23n), false)
    assert.throws(() => p.add(21n, 21), RangeError)
    p.add(23n, 23)
    assert.deepEqual(p.take(), { first: 23n, last: 23n, items: [23] })
  })

  test('nothing logged past the committed offset: nothing to redo or skip', () => {
    assert.deepEqual(planRecovery([logged('f0', 0, 9, true)], 10n), { redo: [], skipThrough: undefined })
    assert.deepEqual(planRecovery([], 0n), { redo: [], skipThrough: undefined })
  })

  test('a flush spanning partitions is redone once, whichever of its ranges led to it', () => {
    const plan = planRecovery([logged('f7', 30, 40, false), { ...logged('f7', 31, 35, false), partition: 0 }], 30n)
    assert.deepEqual(plan.redo, ['f7'])
  })

  test('the token names the group, the flush and the table', () => {
    assert.equal(flushToken('g', 'f-1', 'events'), 'g/f-1/events')
  })
})

describe('rows for ClickHouse', () => {
  const base = {
    type: 'tool.call',
    event_id: '01JD0000000000000000000000',
    tenant: 'acme',
    run_id: 'r-1',
    step: 3,
    occurred_at: 1_795_000_000_000,
    received_at: 1_795_000_000_050,
    agent_name: 'refund-assistant',
    agent_version: '1.4.2',
    principal: { type: 'user', id: 'u-1' },
    actor: 'agent',
    parent_event_id: null,
    trace_id: null,
    span_id: null,
    contract_version: null,
    tool: 'stripe.create_refund',
    action_class: 'irreversible',
    argument_digest: 'sha256:' + 'b'.repeat(64),
    arguments: '{}',
    status: 'ok',
    amount_usd: 240,
  }
  const at = { topic: 'ledger.events.v1', partition: 2, offset: '77' }

  test('a tool call gets its typed columns and its canonical JSON as payload', () => {
    const row = eventRow(base, at, 4)
    assert.equal(row.action_digest, base.argument_digest)
    assert.equal(row.amount_usd, 240)
    assert.equal(row.principal_id, 'u-1')
    assert.equal(row.parent_event_id, '')
    assert.equal(row.kafka_offset, '77')
    assert.equal(row.payload, canonicalJson(base))
  })

  test('a policy decision and an approval carry the digest they bind to', () => {
    const policy = eventRow({ ...base, type: 'policy.decision', policy_id: 'refunds/allow', decision: 'deny', decision_id: 'd-1', action_digest: 'sha256:x' }, at, 1)
    assert.deepEqual([policy.policy_id, policy.decision, policy.action_digest, policy.tool], ['refunds/allow', 'deny', 'sha256:x', undefined])
    const approval = eventRow({ ...base, type: 'approval.decided', approval_id: 'a-1', action_digest: 'sha256:x', decision: 'granted' }, at, 1)
    assert.deepEqual([approval.approval_id, approval.decision, approval.action_digest], ['a-1', 'granted', 'sha256:x'])
  })

  test('a record without what every row needs is refused with the field', () => {
    assert.throws(() => eventRow({ ...base, tenant: undefined }, at, 1), (e: unknown) => e instanceof UnmappableRecordError && /tenant/.test(e.message))
    assert.throws(() => eventRow({ ...base, occurred_at: 'yesterday' }, at, 1), /occurred_at/)
  })

  test('a kill-switch decision names its run, trigger and operator', () => {
    const row = controlRow(
      'kill_switch.decision',
      { decision_id: 'k-1', tenant: 'acme', scope: 'run', scope_key: 'r-9', state: 'killed', trigger: 'manual', reason: 'operator', tripping_event_id: null, run_id: null, operator: { key_id: 'key_1' }, decided_at: 5, decided_by: 'operator' },
      at,
    )
    assert.deepEqual([row.record_id, row.run_id, row.trigger, row.operator_id, row.occurred_at], ['k-1', 'r-9', 'manual', 'key_1', 5])
  })
})

describe('RFC 8785 canonical JSON', () => {
  test('sorts members by UTF-16 code units, at every depth, with no whitespace', () => {
    assert.equal(canonicalJson({ b: 1, a: [{ d: true, c: null }], é: 'x', Z: 0 }), '{"Z":0,"a":[{"c":null,"d":true}],"b":1,"é":"x"}')
    // U+20AC (€) sorts before U+1F600 (😀, a surrogate pair starting 0xD83D) by code units.
    assert.equal(canonicalJson({ '😀': 1, '€': 2 }), '{"€":2,"😀":1}')
  })
  test("numbers in ECMAScript's shortest form; strings escaped as JSON.stringify does", () => {
    assert.equal(canonicalJson([1e21, 1e-7, 0.1 + 0.2, -0, 100]), '[1e+21,1e-7,0.30000000000000004,0,100]')
    assert.equal(canonicalJson('a"\\\n\u0001'), '"a\\"\\\\\\n\\u0001"')
  })
  test('refuses what JSON cannot carry', () => {
    assert.throws(() => canonicalJson({ x: Number.NaN }), TypeError)
    assert.throws(() => canonicalJson([undefined]), TypeError)
    assert.equal(canonicalJson({ x: undefined, y: 1 }), '{"y":1}')
  })
})

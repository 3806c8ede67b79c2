import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { canonicalJson } from '../../services/shared/canonical-json.ts'
import { PartitionRanges, rangeToken } from '../../stream-processors/lineage/domain/batch-log.ts'
import { controlRow, eventRow, UnmappableRecordError } from '../../stream-processors/lineage/domain/event-rows.ts'

const offsets = (ranges: { first: bigint; last: bigint; items: number[]; redo: boolean }[]) => ranges.map((r) => ({ first: Number(r.first), last: Number(r.last), items: r.items, redo: r.redo }))

describe('the sink batch log', () => {
  test('new records form one open range, flushed with its exact bounds', () => {
    const p = new PartitionRanges<number>()
    for (const o of [5, 6, 7, 9]) p.add(BigInt(o), o)
    assert.deepEqual(offsets(p.take(false)), [], 'an open range waits unless asked')
    assert.deepEqual(offsets(p.take(true)), [{ first: 5, last: 9, items: [5, 6, 7, 9], redo: false }])
    assert.equal(p.bufferedItems, 0)
  })

  test('after a crash, logged ranges are rebuilt with their old bounds, then new ranges follow', () => {
    const p = new PartitionRanges<number>([
      { first: 10n, last: 14n },
      { first: 15n, last: 19n },
    ])
    for (let o = 10; o <= 22; o++) p.add(BigInt(o), o)
    assert.deepEqual(offsets(p.take(true)), [
      { first: 10, last: 14, items: [10, 11, 12, 13, 14], redo: true },
      { first: 15, last: 19, items: [15, 16, 17, 18, 19], redo: true },
      { first: 20, last: 22, items: [20, 21, 22], redo: false },
    ])
    assert.equal(p.redoing, false)
  })

  test('a logged range is not flushed before its last offset arrives, whatever the timer says', () => {
    const p = new PartitionRanges<number>([{ first: 10n, last: 14n }])
    for (let o = 10; o <= 12; o++) p.add(BigInt(o), o)
    assert.deepEqual(offsets(p.take(true)), [])
    assert.equal(p.redoing, true)
    p.add(13n, 13)
    p.add(14n, 14)
    assert.deepEqual(offsets(p.take(true)), [{ first: 10, last: 14, items: [10, 11, 12, 13, 14], redo: true }])
  })

  test('offsets that never come back (transaction markers) do not change a logged range', () => {
    // The range was logged as 10-14; offset 12 was a commit marker no consumer sees.
    const p = new PartitionRanges<number>([{ first: 10n, last: 14n }])
    for (const o of [10, 11, 13, 14]) p.add(BigInt(o), o)
    assert.deepEqual(offsets(p.take(true)), [{ first: 10, last: 14, items: [10, 11, 13, 14], redo: true }])
  })

  test('the token names the group, topic, partition and bounds', () => {
    assert.equal(rangeToken('g', 'ledger.events.v1', 3, { first: 100n, last: 199n }), 'g/ledger.events.v1/3/100-199')
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

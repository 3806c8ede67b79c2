import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { planLineage, planRunLineage } from '../../services/query/action-lineage.ts'
import { renderReportCsv } from '../../services/report/report-csv.ts'
import { renderReportHtml } from '../../services/report/report-html.ts'
import { verifyRunReport } from '../../services/report/report-verifier.ts'
import { eventRefOf } from '../../services/report/run-lineage.ts'
import { canonicalReportJson, deriveSections, type ControlEntry, type RunReport } from '../../services/report/run-report.ts'
import { canonicalJson } from '../../services/shared/canonical-json.ts'
import { eventHash, genesisHash, linkHash } from '../../stream-processors/notary/domain/chain.ts'
import { createSigner, type DigestRecord } from '../../stream-processors/notary/domain/digest.ts'
import { notarize, reportOf, testKeys } from '../helpers/notarized-run.ts'
import { refundRunEvents } from '../helpers/refund-events.ts'
import { interleave, mulberry32, syntheticRuns } from '../helpers/synthetic-runs.ts'

type Json = Record<string, any>
const clone = <T>(v: T): T => JSON.parse(canonicalJson(v)) as T
const keys = testKeys()

/** Two refund runs of tenant acme and one of globex, interleaved, notarized every 3 events. */
function fixture() {
  const a = refundRunEvents({ runId: 'run-a' })
  const b = refundRunEvents({ runId: 'run-b', at: Date.parse('2026-11-22T11:00:00Z') })
  const g = refundRunEvents({ tenant: 'globex', runId: 'run-g' })
  const log = interleave([a, b, g], 3)
  const { links, digests } = notarize(log, keys.signer, { digestEvery: 3 })
  return { a, links, digests, report: reportOf('acme', 'run-a', links, digests), other: reportOf('acme', 'run-b', links, digests) }
}

const expectProblem = (report: unknown, code: string, seq?: number, eventId?: string) => {
  const result = verifyRunReport(report, keys.publicKey)
  assert.equal(result.ok, false, 'the tampered report must not verify')
  assert.equal(result.problem?.code, code, result.problem?.message)
  if (seq !== undefined) assert.equal(result.problem?.seq, seq, result.problem?.message)
  if (eventId !== undefined) {
    assert.equal(result.problem?.event_id, eventId)
    assert.ok(result.problem!.message.includes(eventId), `the message names the event: ${result.problem!.message}`)
  }
  return result.problem!
}

/** Recomputes every hash of the chain from the (tampered) events, as a forger without the key would. */
function recomputeChain(report: Json): void {
  let prev = genesisHash(report.integrity.tenant, report.integrity.run_id)
  report.integrity.chain.forEach((c: Json, i: number) => {
    c.seq = i
    c.event_hash = eventHash(canonicalJson(c.event))
    c.chain_hash = linkHash(c.event_hash, prev, i)
    prev = c.chain_hash
  })
  report.integrity.head = { seq: report.integrity.chain.length - 1, chain_hash: prev }
  Object.assign(report, deriveSections(report.integrity.tenant, report.integrity.run_id, report.integrity.chain, report.control))
}

describe('the run report', () => {
  test('header, actions with their decision, approval and evidence, and cost against the budget come from the chained events', () => {
    const { report, a } = fixture()
    assert.equal(report.run.run_id, 'run-a')
    assert.equal(report.run.outcome, 'succeeded')
    assert.equal(report.run.owner, 'finance-ops')
    assert.equal(report.run.autonomy_mode, 'execute_with_approval')
    assert.equal(report.run.contract_version, '1.4.2')
    assert.deepEqual(report.run.principal, { type: 'user', id: 'u-1042' })
    assert.equal(report.timeline.length, 10)
    assert.equal(report.actions.length, 3)
    const refund = report.actions.find((x) => x.tool === 'stripe.create_refund')!
    assert.equal(refund.event_id, a[8]!.event_id)
    assert.equal(refund.permitted, true)
    assert.equal(refund.policy?.event_id, a[5]!.event_id)
    assert.equal(refund.policy?.decision, 'require_approval')
    assert.deepEqual([refund.approval?.decision, refund.approval?.decided_event_id, refund.approval?.requested_event_id], ['granted', a[7]!.event_id, a[6]!.event_id])
    assert.deepEqual(refund.approval?.approver, { type: 'user', id: 'u-7' })
    assert.equal(refund.proposed_by?.event_id, a[1]!.event_id)
    assert.deepEqual(refund.evidence, { linked_by: 'causation_chain', event_ids: [a[3]!.event_id] })
    const read = report.actions.find((x) => x.tool === 'zendesk.read_ticket')!
    assert.equal(read.permitted, null)
    const cost = Object.fromEntries(report.cost.budget.map((b) => [b.dimension, b]))
    assert.deepEqual([cost.cost_usd!.used, cost.cost_usd!.limit], [0.0121, 0.75])
    assert.deepEqual([cost.steps!.used, cost.steps!.limit], [8, 12])
    assert.equal(report.cost.totals.amount_usd, 240)
    assert.equal(report.integrity.chain.length, 10)
    assert.equal(report.integrity.pending_events, 0)
    assert.ok(report.integrity.digests.length >= 2, 'the run was covered by several digests as it grew')
    assert.ok(report.integrity.digests.every((d) => d.body.tenant === 'acme'), "another tenant's digests never appear")
  })

  test('splicing stored canonical events gives exactly the canonical JSON; a stored text that does not match its hash is not used', () => {
    const events = refundRunEvents({ runId: 'run-splice' })
    events[3] = { ...events[3]!, source: 'zendesk \u0000 "quoted" \\ ünïcode' }
    const { links, digests } = notarize(events, keys.signer)
    const report = reportOf('acme', 'run-splice', links, digests)
    const stored = report.integrity.chain.map((c) => canonicalJson(c.event))
    assert.equal(canonicalReportJson(report, stored), canonicalJson(report))
    const forged = [...stored]
    forged[2] = forged[2]!.replace('zendesk.read_ticket', 'zendesk.delete_ticket')
    const text = canonicalReportJson(report, forged)
    assert.equal(text, canonicalJson(report), 'the stored text that does not hash to event_hash is not spliced in')
  })

  test('planning a whole run makes exactly the plans of planning each action on its own', () => {
    const runs = syntheticRuns({ seed: 11, runs: 40, minSteps: 10, maxSteps: 60 })
    const rnd = mulberry32(5)
    for (const events of [...runs, refundRunEvents()]) {
      // Causation links, subjects and shared digests so every rule is exercised.
      const withLinks = events.map((e, i) => (i > 1 && rnd() < 0.5 ? { ...e, parent_event_id: events[Math.floor(rnd() * i)]!.event_id } : e))
      const refs = withLinks.map(eventRefOf)
      const plans = planRunLineage(refs)
      const actions = refs.filter((r) => r.event_type === 'tool.call')
      assert.equal(plans.size, actions.length)
      for (const action of actions) assert.deepEqual(plans.get(action.event_id), planLineage(refs, action.event_id), `action ${action.event_id}`)
    }
  })

  test('late and duplicate events stay at their log position, flagged; each event id counts once', () => {
    const events = refundRunEvents({ runId: 'run-late' })
    const log = [...events.slice(0, 5), events[1]!, ...events.slice(5), { ...events[2]!, event_id: '01JDQ0ZK4N8W2Y3X5V6T7R8SZZ', step: 3 }]
    const { links, digests } = notarize(log, keys.signer)
    const report = reportOf('acme', 'run-late', links, digests)
    assert.equal(report.integrity.chain.length, 12)
    assert.deepEqual(report.timeline[5], { seq: 5, event_id: events[1]!.event_id, type: 'model.call', step: 1, occurred_at: report.timeline[1]!.occurred_at, actor: 'agent', duplicate_of: 1, late: 'out_of_order' })
    assert.equal(report.timeline[11]!.late, 'after_end')
    assert.equal(report.timeline[11]!.duplicate_of, null)
    assert.deepEqual([report.run.events, report.run.duplicates, report.run.late], [12, 1, 2])
    assert.equal(report.cost.totals.model_calls, 1, 'the duplicate model call is not counted twice')
    assert.equal(report.actions.length, 4, 'the late tool call is an action')
    assert.equal(verifyRunReport(clone(report), keys.publicKey).ok, true)
  })

  test('CSV: one row per chained event, quoted, with formula-like text neutralized', () => {
    const events = refundRunEvents({ runId: 'run-csv' })
    events[2] = { ...events[2]!, tool: '=HYPERLINK("http://x")' }
    const { links, digests } = notarize(events, keys.signer)
    const csv = renderReportCsv(reportOf('acme', 'run-csv', links, digests))
    const lines = csv.trimEnd().split('\r\n')
    assert.equal(lines.length, 11)
    assert.match(lines[0]!, /^seq,event_id,type,/)
    assert.ok(lines[9]!.includes('stripe.create_refund') && lines[9]!.includes('refunds/allow') && lines[9]!.includes('granted') && lines[9]!.includes('user:u-7'))
    assert.ok(lines[3]!.includes(`,"'=HYPERLINK(""http://x"")",`), lines[3])
  })

  test('HTML: self-contained, escaped, kill events highlighted and cost drawn against the budget', () => {
    const events = refundRunEvents({ runId: 'run-html' })
    events[0] = { ...events[0]!, goal: '<script>alert(1)</script>' }
    const { links, digests } = notarize(events, keys.signer)
    const kill: ControlEntry = { kind: 'kill_switch.decision', record_id: 'k-1', occurred_at: '2026-11-22T10:00:09.000Z', scope: 'run', scope_key: 'run-html', state: 'killed', trigger: 'unapproved_action', level: null, dimension: null, window: null, used: null, limit: null, reason: 'irreversible without approval', tripping_event_id: String(events[8]!.event_id) }
    const html = renderReportHtml(reportOf('acme', 'run-html', links, digests, [kill]))
    assert.ok(!html.includes('<script>'), 'no script, and user text is escaped')
    assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'))
    assert.ok(!/(src|href)=["']?https?:/i.test(html), 'no external asset')
    assert.match(html, /<svg id="cost-chart"/)
    assert.match(html, /id="budget-line"/)
    assert.match(html, /class="kill-marker"/)
    assert.match(html, /id="kill-banner"/)
    assert.match(html, new RegExp(`<tr class="kill" data-event-id="${String(events[8]!.event_id)}"`))
  })
})

describe('the offline verifier', () => {
  test('an untouched report verifies, with only the public key', () => {
    const { report } = fixture()
    const result = verifyRunReport(clone(report), keys.publicKey)
    assert.equal(result.ok, true, result.problem?.message)
    assert.equal(result.checked.events, 10)
    assert.equal(result.checked.run_id, 'run-a')
    assert.equal(result.checked.head, report.integrity.head?.chain_hash)
  })

  test('flipping one byte of any event is detected and names that event', () => {
    const { report } = fixture()
    const text = canonicalJson(report)
    report.integrity.chain.forEach((c, i) => {
      // Flip one byte inside this event's agent_name, in the report's own bytes.
      const eventText = canonicalJson(c.event)
      const at = text.indexOf(eventText) + eventText.indexOf('refund-assistant') + 3
      const flipped = text.slice(0, at) + String.fromCharCode(text.charCodeAt(at) ^ 1) + text.slice(at + 1)
      expectProblem(JSON.parse(flipped), 'event_altered', i, String(c.event.event_id))
    })
  })

  test('any single byte flipped anywhere outside the parts the signatures do not cover makes the report fail, and nothing makes the verifier throw', () => {
    const { report } = fixture()
    const text = canonicalJson(report)
    // Not covered, by design: when the report was made, the control section, and how many events were still unsigned.
    const span = (from: string, to: string) => [text.indexOf(from), text.indexOf(to, text.indexOf(from))] as const
    const free = [span('"control":', ',"cost":'), span('"generated_at":', ',"integrity":'), span('"pending_events":', ',"run_id":')]
    // 2,000 random flips; LEDGER_VERIFIER_FLIPS=all tries every bit of every byte (about a minute).
    const rnd = mulberry32(99)
    const flips: [number, number][] =
      process.env.LEDGER_VERIFIER_FLIPS === 'all'
        ? Array.from({ length: text.length * 7 }, (_, i) => [Math.floor(i / 7), i % 7])
        : Array.from({ length: 2_000 }, () => [Math.floor(rnd() * text.length), Math.floor(rnd() * 7)])
    let checked = 0
    for (const [at, bit] of flips) {
      if (free.some(([a, b]) => at >= a && at < b)) continue
      const flipped = text.slice(0, at) + String.fromCharCode(text.charCodeAt(at) ^ (1 << bit)) + text.slice(at + 1)
      let parsed: unknown
      try {
        parsed = JSON.parse(flipped)
      } catch {
        continue
      }
      // A flip that changed no value (a 17th digit a double does not hold) is not tampering.
      if (canonicalJson(parsed) === text) continue
      const result = verifyRunReport(parsed, keys.publicKey)
      assert.equal(result.ok, false, `a flip at ${at} (${JSON.stringify(text.slice(at - 30, at + 10))}) was not detected`)
      checked += 1
    }
    assert.ok(checked > 500, `${checked} flips checked`)
  })

  test('deleting an event is detected and names where', () => {
    const { report } = fixture()
    const r = clone(report) as Json
    const [removed] = r.integrity.chain.splice(4, 1)
    const p = expectProblem(r, 'missing_event', 4)
    assert.match(p.message, /seq 4 is missing/)
    assert.notEqual(p.event_id, removed.event.event_id)
    // Renumbered so the seqs look whole: the chain still breaks at the event after the gap.
    const r2 = clone(report) as Json
    r2.integrity.chain.splice(4, 1)
    r2.integrity.chain.forEach((c: Json, i: number) => (c.seq = i))
    expectProblem(r2, 'link_broken', 4, String(report.integrity.chain[5]!.event.event_id))
  })

  test('swapping two events is detected and names the first', () => {
    const { report } = fixture()
    const r = clone(report) as Json
    ;[r.integrity.chain[2], r.integrity.chain[6]] = [r.integrity.chain[6], r.integrity.chain[2]]
    expectProblem(r, 'order', 2, String(report.integrity.chain[6]!.event.event_id))
    // Only the events swapped, hashes left in place: each no longer matches its hash.
    const r2 = clone(report) as Json
    ;[r2.integrity.chain[2].event, r2.integrity.chain[6].event] = [r2.integrity.chain[6].event, r2.integrity.chain[2].event]
    expectProblem(r2, 'event_altered', 2, String(report.integrity.chain[6]!.event.event_id))
  })

  test('truncating the tail is detected against the signed head', () => {
    const { report } = fixture()
    const r = clone(report) as Json
    r.integrity.chain.length = 7
    const p = expectProblem(r, 'truncated', 7)
    assert.match(p.message, /events from seq 7 on were removed/)
  })

  test("splicing in another run's event is detected and names it", () => {
    const { report, other } = fixture()
    const r = clone(report) as Json
    const foreign = clone(other.integrity.chain[3]!) as Json
    r.integrity.chain[3] = { ...foreign, seq: 3 }
    expectProblem(r, 'spliced', 3, String(foreign.event.event_id))
    // Rewritten to claim this run: its hash no longer matches the chain.
    const r2 = clone(report) as Json
    r2.integrity.chain.splice(5, 0, { ...foreign, event: { ...foreign.event, run_id: 'run-a' } })
    r2.integrity.chain.forEach((c: Json, i: number) => (c.seq = i))
    expectProblem(r2, 'event_altered', 5, String(foreign.event.event_id))
  })

  test('a digest signed with another key is detected, whatever fingerprint it claims', () => {
    const { report } = fixture()
    const forger = testKeys()
    const resign = (claimOurs: boolean) => {
      const r = clone(report) as Json
      const d = r.integrity.digests.at(-1)
      if (!claimOurs) d.body.key_fingerprint = forger.signer.fingerprint
      d.signature = forger.signer.sign(Buffer.from(canonicalJson(d.body))).toString('base64')
      return r
    }
    const digestSeq = report.integrity.digests.at(-1)!.body.seq
    assert.equal(expectProblem(resign(true), 'bad_signature').digest, digestSeq)
    assert.equal(expectProblem(resign(false), 'key_mismatch').digest, digestSeq)
    // And a report checked against the wrong public key fails on its first digest.
    assert.equal(verifyRunReport(clone(report), forger.publicKey).problem?.code, 'key_mismatch')
  })

  test('a report whose chain was recomputed after tampering still fails against the signed digest', () => {
    const { report } = fixture()
    const r = clone(report) as Json
    const target = r.integrity.chain[8]
    target.event.amount_usd = 24
    recomputeChain(r)
    const p = expectProblem(r, 'signed_head_mismatch')
    // The first event no matching signed head vouches for is at or before the altered one.
    assert.ok(p.seq! <= 8 && p.seq! > 0, p.message)
    assert.match(p.message, /altered and the chain recomputed/)
  })

  test('a header or action edited without touching the events does not follow from them', () => {
    const { report } = fixture()
    const r = clone(report) as Json
    r.run.outcome = 'killed'
    assert.match(expectProblem(r, 'derived_mismatch').message, /^run\.outcome /)
    const r2 = clone(report) as Json
    r2.actions[2].permitted = false
    assert.match(expectProblem(r2, 'derived_mismatch').message, /^actions\[2\]\.permitted /)
  })

  test('a digest removed from the middle of the trail breaks the digest chain', () => {
    const { report } = fixture()
    const r = clone(report) as Json
    assert.ok(r.integrity.digests.length >= 3)
    r.integrity.digests.splice(1, 1)
    expectProblem(r, 'digest_chain')
  })

  test('events past the last signed head are refused, not trusted', () => {
    const { report, links } = fixture()
    const r = clone(report) as Json
    const extra = links.find((l) => l.run_id === 'run-b')!
    const last = r.integrity.chain.at(-1)
    const event = { ...extra.event, run_id: 'run-a', step: 99 }
    const eh = eventHash(canonicalJson(event))
    r.integrity.chain.push({ seq: last.seq + 1, event_hash: eh, chain_hash: linkHash(eh, last.chain_hash, last.seq + 1), event })
    expectProblem(r, 'unsigned_tail', last.seq + 1)
  })

  test('the signer is bound to the key: a fingerprint names exactly one key', () => {
    const one = testKeys()
    assert.equal(createSigner(one.privateKey).fingerprint, one.signer.fingerprint)
    assert.notEqual(one.signer.fingerprint, keys.signer.fingerprint)
    const digest: DigestRecord | undefined = notarize(refundRunEvents(), one.signer).digests[0]
    assert.equal(digest?.body.key_fingerprint, one.signer.fingerprint)
  })
})

export type { RunReport }

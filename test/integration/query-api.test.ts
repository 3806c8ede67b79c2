import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { LedgerClickHouse } from '../../services/shared/clickhouse.ts'
import type { LineageSink } from '../../stream-processors/lineage/lineage-sink.ts'
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts'
import { closeTestClickHouse, startTestSink, testClickHouse } from '../helpers/lineage.ts'
import { emitRefundRun, publishRefundContract, type RefundScenario } from '../helpers/refund-scenario.ts'
import { waitFor } from '../helpers/stack.ts'

let gw: TestGateway
let ch: LedgerClickHouse
let sink: LineageSink
let refund: RefundScenario
let queryableAfterMs: number

type Json = Record<string, any>

const get = async (path: string, key = 'acme:read'): Promise<{ status: number; body: Json }> => {
  const res = await fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${gw.keys[key]}` } })
  return { status: res.status, body: (await res.json()) as Json }
}

before(async () => {
  ch = await testClickHouse()
  gw = await startTestGateway({ processors: true, query: ch })
  sink = await startTestSink(gw, ch, { lingerMs: 100 })
  await publishRefundContract(gw)
  refund = await emitRefundRun(gw.url, gw.keys['acme:emit']!)
  // The client has had every event acknowledged; from here the clock runs until the API serves the whole run.
  const emitted = Date.now()
  await waitFor(async () => (await get(`/v1/runs/${refund.runId}/timeline`)).body.events?.length === 10, 2_000, 'the refund run to be queryable within 2 s')
  queryableAfterMs = Date.now() - emitted
})
after(async () => {
  await sink?.stop()
  await gw?.stop()
  await closeTestClickHouse()
})

test("the seeds' refund run is queryable through the API within 2 s of its last acknowledgement", () => {
  assert.ok(queryableAfterMs <= 2_000, `queryable after ${queryableAfterMs} ms`)
})

test('the lineage of the refund answers who authorized it, which policy and approval permitted it, and what evidence proves it', async () => {
  const { status, body } = await get(`/v1/actions/${refund.ids.refund}/lineage`)
  assert.equal(status, 200)
  // The action itself.
  assert.equal(body.action.event_id, refund.ids.refund)
  assert.equal(body.action.tool, 'stripe.create_refund')
  assert.equal(body.action.argument_digest, refund.digest)
  // 1. Who: the principal the agent acted for, and the human who approved.
  assert.deepEqual(body.who.principal, { type: 'user', id: 'u-1042' })
  assert.deepEqual(body.who.approver, { type: 'user', id: 'u-7' })
  assert.equal(body.run.owner, 'finance-ops')
  assert.equal(body.run.contract_version, '1.4.2')
  assert.equal(body.run.outcome, 'succeeded')
  // 2. Which policy: the decision bound to the refund's digest, and the approval bound to the same digest.
  assert.equal(body.policy.permitted, true)
  assert.equal(body.policy.decision.event_id, refund.ids.policy)
  assert.equal(body.policy.decision.policy_id, 'refunds/allow')
  assert.equal(body.policy.decision.bundle_revision, 'rev-42')
  assert.equal(body.policy.decision.decision, 'require_approval')
  assert.equal(body.policy.decision.linked_by, 'action_digest')
  assert.equal(body.policy.approval.decided.event_id, refund.ids.approvalDecided)
  assert.equal(body.policy.approval.decided.decision, 'granted')
  assert.equal(body.policy.approval.decided.action_digest, refund.digest)
  assert.equal(body.policy.approval.requested.event_id, refund.ids.approvalRequested)
  assert.match(body.policy.basis, /granted by user:u-7/)
  // 3. What evidence: the model call that proposed it, the ticket it read, and the outcome.
  assert.equal(body.evidence.proposed_by.event_id, refund.ids.model)
  assert.equal(body.evidence.proposed_by.linked_by, 'parent_event_id')
  assert.deepEqual(
    body.evidence.retrieved.map((e: Json) => [e.event_id, e.document_ids, e.linked_by]),
    [[refund.ids.evidence, ['ZD-8812'], 'causation_chain']],
  )
  assert.equal(body.evidence.outcome.status, 'ok')
  assert.equal(body.evidence.outcome.side_effect_ref, 're_1Q2w')
  assert.deepEqual(body.evidence.causation_chain, [refund.ids.model])
  assert.deepEqual(body.evidence.kill_switch, [])
})

test('a read action without a policy decision says so instead of inventing one', async () => {
  const { body } = await get(`/v1/actions/${refund.ids.readTicket}/lineage`)
  assert.equal(body.policy.permitted, null)
  assert.equal(body.policy.decision, null)
  assert.equal(body.policy.approval, null)
  assert.equal(body.evidence.proposed_by.event_id, refund.ids.model)
})

test('run, list and timeline show the run; timeline pages with a stable cursor', async () => {
  const run = await get(`/v1/runs/${refund.runId}`)
  assert.equal(run.status, 200)
  assert.equal(run.body.outcome, 'succeeded')
  assert.deepEqual(run.body.principal, { type: 'user', id: 'u-1042' })
  assert.equal(run.body.usage.tool_calls, 3)
  assert.equal(run.body.usage.amount_usd, 240)
  assert.equal(run.body.started_event_id, refund.ids.started)

  const list = await get(`/v1/runs?agent=refund-assistant&principal=u-1042&outcome=succeeded`)
  assert.equal(list.status, 200)
  assert.ok(list.body.runs.some((r: Json) => r.run_id === refund.runId))
  assert.equal((await get(`/v1/runs?outcome=failed`)).body.runs.length, 0)

  const seen: string[] = []
  let cursor: string | null = null
  do {
    const page: { body: Json } = await get(`/v1/runs/${refund.runId}/timeline?limit=3${cursor ? `&cursor=${cursor}` : ''}`)
    seen.push(...page.body.events.map((e: Json) => e.event_id))
    cursor = page.body.next_cursor
  } while (cursor !== null)
  assert.deepEqual(seen, Object.values(refund.ids))
  const types = (await get(`/v1/runs/${refund.runId}/timeline?type=tool.call`)).body.events.map((e: Json) => e.tool)
  assert.deepEqual(types, ['zendesk.read_ticket', 'stripe.lookup_charge', 'stripe.create_refund'])
})

test('search actions by policy, decision, principal and tool; cost by agent version; control history', async () => {
  const byPolicy = await get(`/v1/actions?policy=refunds/allow&decision=require_approval`)
  assert.equal(byPolicy.status, 200)
  const found = byPolicy.body.actions.find((a: Json) => a.event_id === refund.ids.refund)
  assert.ok(found, 'the refund is found by its policy decision')
  assert.equal(found.policy.decision, 'require_approval')
  assert.equal(found.approval.decision, 'granted')
  assert.deepEqual(found.approval.approver, { type: 'user', id: 'u-7' })
  assert.equal(byPolicy.body.actions.filter((a: Json) => a.run_id === refund.runId).length, 1, 'only the action the policy decided on')
  assert.equal((await get(`/v1/actions?policy=refunds/allow&decision=deny`)).body.actions.length, 0)
  const byTool = await get(`/v1/actions?tool=zendesk.read_ticket&principal=u-1042`)
  assert.ok(byTool.body.actions.some((a: Json) => a.event_id === refund.ids.readTicket))
  assert.ok(byTool.body.actions.every((a: Json) => a.tool === 'zendesk.read_ticket'))

  const usage = await get(`/v1/usage/agent-versions?agent=refund-assistant&tool=stripe.create_refund&granularity=hour`)
  assert.equal(usage.status, 200)
  const row = usage.body.series.find((r: Json) => r.agent_version === '1.4.2')
  assert.ok(row, JSON.stringify(usage.body))
  assert.ok(row.amount_usd >= 240 && row.tool_calls >= 1)
  const principals = await get(`/v1/usage/principals?principal=u-1042`)
  assert.ok(principals.body.principals[0].cost_usd >= 0.0121)

  const history = await get(`/v1/control/history?run_id=${refund.runId}`)
  assert.equal(history.status, 200)
  assert.ok(Array.isArray(history.body.records))
})

test("another tenant's key gets 404 for every id of the run, and its lists do not show it", async () => {
  const foreign = 'globex:read'
  for (const path of [`/v1/runs/${refund.runId}`, `/v1/runs/${refund.runId}/timeline`]) {
    const r = await get(path, foreign)
    assert.equal(r.status, 404, path)
    assert.doesNotMatch(JSON.stringify(r.body), /u-1042|refund-assistant|finance/)
  }
  for (const id of Object.values(refund.ids)) {
    const r = await get(`/v1/actions/${id}/lineage`, foreign)
    assert.equal(r.status, 404, `lineage of ${id}`)
  }
  // The same 404 as for an id that exists nowhere: nothing tells the two apart.
  const missing = await get(`/v1/runs/run-that-does-not-exist`, foreign)
  assert.equal(missing.status, 404)
  assert.equal((await get(`/v1/runs/${refund.runId}`, foreign)).body.error.code, missing.body.error.code)
  assert.equal((await get(`/v1/runs?agent=refund-assistant`, foreign)).body.runs.length, 0)
  assert.equal((await get(`/v1/actions?tool=stripe.create_refund`, foreign)).body.actions.length, 0)
  assert.equal((await get(`/v1/usage/agent-versions`, foreign)).body.series.length, 0)
  // Emit keys cannot read; no key at all is a 401.
  assert.equal((await get(`/v1/runs/${refund.runId}`, 'acme:emit')).status, 403)
  assert.equal((await fetch(`${gw.url}/v1/runs`)).status, 401)
  assert.equal((await get(`/v1/runs/${refund.runId}`, 'acme:audit')).status, 200)
})

test('bad filters, malformed ids, absurd limits and time ranges get a 400 naming the field', async () => {
  const cases: [string, RegExp][] = [
    ['/v1/runs?limit=0', /^query\.limit/],
    ['/v1/runs?limit=1000000', /^limit: at most/],
    ['/v1/runs?limit=abc', /^query\.limit/],
    ['/v1/runs?limit=2.5', /^query\.limit/],
    ['/v1/runs?from=yesterday', /^query\.from/],
    ['/v1/runs?from=2026-11-22T10:00:00Z&to=2026-11-21T10:00:00Z', /^from: must be before to/],
    ['/v1/runs?from=1990-01-01&to=2026-01-01', /^from: the range/],
    ['/v1/runs?outcome=exploded', /^query\.outcome/],
    ['/v1/runs?agent=%3Bdrop%20table', /^query\.agent/],
    ['/v1/runs?colour=blue', /^query\.colour: is not a known field/],
    ['/v1/runs?cursor=garbage', /^cursor: /],
    [`/v1/runs?cursor=${Buffer.from(JSON.stringify({ l: 'timeline', k: [1, 'x'] })).toString('base64url')}`, /^cursor: /],
    ['/v1/runs/has%20spaces', /^id: /],
    [`/v1/runs/${'r'.repeat(129)}/timeline`, /^id: /],
    ['/v1/actions/not-a-ulid/lineage', /^eventId: /],
    [`/v1/actions/${refund.ids.model}/lineage`, /^eventId: .* is a model\.call event/],
    ['/v1/actions?decision=maybe', /^query\.decision/],
    ['/v1/usage/agent-versions?granularity=minute', /^query\.granularity/],
    ['/v1/usage/agent-versions?granularity=hour&from=2026-01-01&to=2026-06-01', /^granularity: /],
    ['/v1/control/history?run_id=a%20b', /^query\.run_id/],
    ['/v1/runs?from=99999999999999999999', /^query\.from/],
  ]
  for (const [path, message] of cases) {
    const { status, body } = await get(path)
    assert.equal(status, 400, `${path}: ${JSON.stringify(body)}`)
    assert.equal(body.error.code, 'LEDGER_ERR_BAD_REQUEST', path)
    assert.match(body.error.message, message, path)
  }
})

test('no query string produces a 5xx', async () => {
  const values = ['', '0', '-1', '1e400', 'null', '[]', '{}', '%00', '%FF', "' OR 1=1 --", '\\', 'a'.repeat(5_000), '2026-13-45', 'NaN', 'Infinity', '9'.repeat(30)]
  const params = ['agent', 'version', 'principal', 'outcome', 'from', 'to', 'limit', 'cursor', 'tool', 'policy', 'decision', 'granularity', 'run_id', 'kind', 'type']
  const paths = ['/v1/runs', `/v1/runs/${refund.runId}/timeline`, '/v1/actions', '/v1/usage/agent-versions', '/v1/usage/principals', '/v1/control/history']
  let checked = 0
  for (const path of paths) {
    for (const p of params) {
      for (const v of values) {
        const res = await fetch(`${gw.url}${path}?${p}=${encodeURIComponent(v)}`, { headers: { authorization: `Bearer ${gw.keys['acme:read']}` } })
        const text = await res.text()
        assert.ok(res.status < 500, `${path}?${p}=${v.slice(0, 40)} gave ${res.status}: ${text}`)
        checked += 1
      }
    }
  }
  for (const id of ['%00', '..', '....%2F', 'a'.repeat(3_000), '%E2%80%AE']) {
    for (const path of [`/v1/runs/${id}`, `/v1/runs/${id}/timeline`, `/v1/actions/${id}/lineage`]) {
      const res = await fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${gw.keys['acme:read']}` } })
      assert.ok(res.status < 500, `${path} gave ${res.status}`)
      await res.body?.cancel()
      checked += 1
    }
  }
  assert.ok(checked > 1_000)
})

test('the OpenAPI document lists every query route the app serves', async () => {
  const spec = (await fetch(`${gw.url}/v1/openapi.json`).then((r) => r.json())) as { paths: Record<string, Record<string, unknown>> }
  // /healthz and /metrics are served by the backbone beside these routes.
  const documented = new Set(Object.entries(spec.paths).flatMap(([p, ops]) => (p === '/healthz' || p === '/metrics' ? [] : Object.keys(ops).map((m) => `${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`))))
  for (const route of gw.routes) assert.ok(documented.has(route), `${route} is served but not documented`)
  for (const route of documented) assert.ok(gw.routes.includes(route), `${route} is documented but not served`)
})

test('the compliance CLI answers the same questions as tables, and as JSON', async () => {
  const { execFile } = await import('node:child_process')
  const { promisify } = await import('node:util')
  const path = await import('node:path')
  const { REPO_ROOT } = await import('../../infra/paths.ts')
  const cli = (...args: string[]) =>
    promisify(execFile)(path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx'), [path.join(REPO_ROOT, 'services', 'query', 'ledger-cli.ts'), ...args], {
      env: { ...process.env, LEDGER_API_URL: gw.url, LEDGER_API_KEY: gw.keys['acme:read'] },
    })
  const lineage = await cli('lineage', refund.ids.refund)
  assert.match(lineage.stdout, /WHO authorized it[\s\S]*principal\s+user:u-1042[\s\S]*approver\s+user:u-7/)
  assert.match(lineage.stdout, /WHICH POLICY permitted it[\s\S]*permitted\s+yes[\s\S]*require_approval by opa refunds\/allow @rev-42/)
  assert.match(lineage.stdout, /WHAT EVIDENCE proves it[\s\S]*proposed by\s+openai\/gpt-4\.1[\s\S]*ZD-8812/)
  const runs = await cli('runs', '--agent', 'refund-assistant', '--outcome', 'succeeded')
  assert.match(runs.stdout, new RegExp(`${refund.runId}.*refund-assistant@1\\.4\\.2.*user:u-1042.*succeeded`))
  const json = JSON.parse((await cli('timeline', refund.runId, '--json')).stdout) as Json
  assert.equal(json.events.length, 10)
  await assert.rejects(cli('actions', '--decision', 'maybe'), (err: Error & { stderr: string; code: number }) => err.code === 1 && /400 LEDGER_ERR_BAD_REQUEST: query\.decision/.test(err.stderr))
  await assert.rejects(cli('frobnicate'), (err: Error & { code: number }) => err.code === 2)
})

test('a row stored twice (ReplacingMergeTree before its merge) is read once everywhere', async () => {
  const db = ch.database
  // Copy the run's rows into a second part, as an at-least-once redelivery without a token would.
  await ch.command(`INSERT INTO ${db}.events SELECT * FROM ${db}.events WHERE tenant = 'acme' AND run_id = {r:String}`, { r: refund.runId })
  const raw = await ch.query<{ n: string }>(`SELECT count() AS n FROM ${db}.events WHERE tenant = 'acme' AND run_id = {r:String}`, { r: refund.runId })
  assert.equal(Number(raw[0]!.n), 20, 'two copies are stored')
  const timeline = await get(`/v1/runs/${refund.runId}/timeline`)
  assert.deepEqual(timeline.body.events.map((e: Json) => e.event_id), Object.values(refund.ids))
  const lineage = await get(`/v1/actions/${refund.ids.refund}/lineage`)
  assert.equal(lineage.body.evidence.retrieved.length, 1)
  const actions = await get(`/v1/actions?tool=stripe.create_refund&principal=u-1042`)
  assert.equal(actions.body.actions.filter((a: Json) => a.event_id === refund.ids.refund).length, 1)
})

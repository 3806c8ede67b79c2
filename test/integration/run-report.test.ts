import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createPublicKey } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { after, before, test } from 'node:test'
import { REPO_ROOT } from '../../infra/paths.ts'
import { eventSchemas } from '../../schemas/event-schemas.ts'
import { toAvroRecord } from '../../schemas/json-form.ts'
import { verifyRunReport } from '../../services/report/report-verifier.ts'
import type { RunReport } from '../../services/report/run-report.ts'
import { canonicalJson } from '../../services/shared/canonical-json.ts'
import type { LedgerClickHouse } from '../../services/shared/clickhouse.ts'
import { createEventCodec } from '../../services/shared/event-codec.ts'
import type { LineageSink } from '../../stream-processors/lineage/lineage-sink.ts'
import type { NotaryRunner } from '../../stream-processors/notary/notary-runner.ts'
import type { NotaryKey } from '../../stream-processors/notary/signing-key.ts'
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts'
import { closeTestClickHouse, testClickHouse } from '../helpers/lineage.ts'
import { startTestNotary, startTestSinkWithNotary, testNotaryKey } from '../helpers/notary.ts'
import { emitRefundRun, publishRefundContract, type RefundScenario } from '../helpers/refund-scenario.ts'
import { scratchDir, waitFor } from '../helpers/stack.ts'

let gw: TestGateway
let ch: LedgerClickHouse
let sink: LineageSink
let notary: NotaryRunner
let key: NotaryKey
let refund: RefundScenario
let reportText: string
let report: RunReport

const get = async (p: string, k = 'acme:audit') => {
  const res = await fetch(`${gw.url}${p}`, { headers: { authorization: `Bearer ${gw.keys[k]}` } })
  return { status: res.status, headers: res.headers, text: await res.text() }
}

before(async () => {
  ch = await testClickHouse()
  gw = await startTestGateway({ processors: true, query: ch, report: { digestIntervalMs: 300 } })
  key = testNotaryKey()
  notary = await startTestNotary(gw, key, { digestIntervalMs: 300 })
  sink = await startTestSinkWithNotary(gw, ch)
  await publishRefundContract(gw)
  refund = await emitRefundRun(gw.url, gw.keys['acme:emit']!)
  // The report is ready once the notary signed the whole run and the sink wrote links and digests.
  reportText = await waitFor(
    async () => {
      const r = await get(`/v1/runs/${refund.runId}/report`)
      if (r.status !== 200) return undefined
      return (JSON.parse(r.text) as RunReport).integrity.chain.length === 10 ? r.text : undefined
    },
    20_000,
    'a signed report of the whole refund run',
  )
  report = JSON.parse(reportText) as RunReport
})
after(async () => {
  await sink?.stop()
  await notary?.stop()
  await gw?.stop()
  await closeTestClickHouse()
})

test("the refund run's JSON report is canonical and verifies offline with the notary's public key", async () => {
  assert.equal(reportText, canonicalJson(JSON.parse(reportText)), 'RFC 8785 canonical')
  const published = JSON.parse((await get('/v1/notary/public-key')).text) as { algorithm: string; keys: { fingerprint: string; public_key_pem: string }[] }
  assert.equal(published.algorithm, 'Ed25519')
  const announced = published.keys.find((k) => k.fingerprint === key.signer.fingerprint)
  assert.ok(announced, 'the notary announced its key')
  const result = verifyRunReport(report, createPublicKey(announced.public_key_pem))
  assert.equal(result.ok, true, result.problem?.message)
  assert.equal(result.checked.events, 10)
  assert.equal(report.integrity.key_fingerprint, key.signer.fingerprint)
  assert.equal(report.integrity.pending_events, 0)
})

test('the report answers who, which policy and what evidence for each action, with cost against the budget', () => {
  assert.equal(report.run.run_id, refund.runId)
  assert.equal(report.run.tenant, 'acme')
  assert.deepEqual(report.run.agent, { name: 'refund-assistant', version: '1.4.2' })
  assert.deepEqual([report.run.owner, report.run.autonomy_mode, report.run.contract_version, report.run.outcome], ['finance-ops', 'execute_with_approval', '1.4.2', 'succeeded'])
  assert.deepEqual(report.run.principal, { type: 'user', id: 'u-1042' })
  assert.deepEqual(report.timeline.map((t) => t.event_id), Object.values(refund.ids))
  const r = report.actions.find((a) => a.event_id === refund.ids.refund)!
  assert.equal(r.permitted, true)
  assert.deepEqual([r.policy?.event_id, r.policy?.decision], [refund.ids.policy, 'require_approval'])
  assert.deepEqual([r.approval?.decided_event_id, r.approval?.decision], [refund.ids.approvalDecided, 'granted'])
  assert.equal(r.proposed_by?.event_id, refund.ids.model)
  const cost = report.cost.budget.find((b) => b.dimension === 'cost_usd')!
  assert.deepEqual([cost.used, cost.limit], [0.0121, 0.75])
})

test('CSV and HTML forms; HTML locked down by its content security policy', async () => {
  const csv = await get(`/v1/runs/${refund.runId}/report?format=csv`)
  assert.equal(csv.status, 200)
  assert.match(csv.headers.get('content-type') ?? '', /^text\/csv/)
  assert.equal(csv.text.trimEnd().split('\r\n').length, 11)
  const html = await get(`/v1/runs/${refund.runId}/report?format=html`)
  assert.equal(html.status, 200)
  assert.match(html.headers.get('content-type') ?? '', /^text\/html/)
  assert.match(html.headers.get('content-security-policy') ?? '', /default-src 'none'/)
  assert.match(html.text, /<svg id="cost-chart"/)
  assert.ok(html.text.includes(refund.ids.refund))
})

test("another tenant's key gets 404; a bad format or id is a 400 naming the field; an emit key is refused", async () => {
  const foreign = await get(`/v1/runs/${refund.runId}/report`, 'globex:read')
  assert.equal(foreign.status, 404)
  assert.equal(JSON.parse(foreign.text).error.code, 'LEDGER_ERR_NOT_FOUND')
  assert.equal((await get('/v1/runs/no-such-run/report')).status, 404)
  const format = await get(`/v1/runs/${refund.runId}/report?format=pdf`)
  assert.equal(format.status, 400)
  assert.match(JSON.parse(format.text).error.message, /query\.format/)
  const extra = await get(`/v1/runs/${refund.runId}/report?fmt=json`)
  assert.equal(extra.status, 400)
  assert.match(JSON.parse(extra.text).error.message, /query\.fmt/)
  const id = await get(`/v1/runs/${encodeURIComponent('bad id!')}/report`)
  assert.equal(id.status, 400)
  assert.match(JSON.parse(id.text).error.message, /^id:/)
  assert.equal((await get(`/v1/runs/${refund.runId}/report`, 'acme:emit')).status, 403)
  assert.equal((await fetch(`${gw.url}/v1/runs/${refund.runId}/report`)).status, 401)
})

test('a duplicate record of an event is chained where it appears and flagged; the report still verifies', async () => {
  // The same event id produced again with another received_at: what a client retry after a
  // gateway restart produces. It bypasses the gateway's deduplication by writing to the topic.
  const codec = await createEventCodec({ registryUrl: gw.registryUrl, topic: gw.topic })
  const original = report.integrity.chain[2]!.event
  const schema = eventSchemas().get(String(original.type))!
  const producer = gw.kafka.producer({ idempotent: true })
  await producer.connect()
  await producer.send({ topic: gw.topic, acks: -1, messages: [{ key: refund.runId, value: codec.encode(String(original.type), toAvroRecord(schema, original, 'acme', Number(original.received_at) + 1)) }] })
  await producer.disconnect()
  const text = await waitFor(
    async () => {
      const r = await get(`/v1/runs/${refund.runId}/report`)
      return r.status === 200 && (JSON.parse(r.text) as RunReport).integrity.chain.length === 11 ? r.text : undefined
    },
    20_000,
    'the duplicate to be chained and signed',
  )
  const withDup = JSON.parse(text) as RunReport
  assert.equal(withDup.timeline[10]!.event_id, original.event_id)
  assert.equal(withDup.timeline[10]!.duplicate_of, 2)
  assert.equal(withDup.timeline[10]!.late, 'after_end')
  assert.deepEqual([withDup.run.duplicates, withDup.run.late], [1, 1])
  assert.equal(withDup.actions.length, report.actions.length, 'counted once')
  // Its link chains to the head the first report ended at: the chain only grew.
  assert.equal(withDup.integrity.chain[9]!.chain_hash, report.integrity.head!.chain_hash)
  assert.equal(verifyRunReport(withDup, key.publicKey).ok, true)
})

test('an event whose link is larger than the broker default of 1 MiB is chained, signed and reported', async () => {
  // 600,000 quotes: 600 kB of Avro, 1.2 MB as JSON once escaped, so the link is over 1 MiB.
  const codec = await createEventCodec({ registryUrl: gw.registryUrl, topic: gw.topic })
  const big: Record<string, unknown> = { ...report.integrity.chain[2]!.event, event_id: '01JDQ0ZK4N8W2Y3X5V6T7R8BIG', run_id: 'run-big-link', step: 0, arguments: '"'.repeat(600_000) }
  const schema = eventSchemas().get(String(big.type))!
  const producer = gw.kafka.producer({ idempotent: true })
  await producer.connect()
  await producer.send({ topic: gw.topic, acks: -1, messages: [{ key: 'run-big-link', value: codec.encode(String(big.type), toAvroRecord(schema, big, 'acme', Date.now())) }] })
  await producer.disconnect()
  const text = await waitFor(
    async () => {
      const r = await get('/v1/runs/run-big-link/report')
      return r.status === 200 ? r.text : undefined
    },
    30_000,
    'the big event to be chained, signed and stored',
  )
  assert.ok(text.length > 1_200_000)
  const bigReport = JSON.parse(text) as RunReport
  assert.equal(bigReport.integrity.chain[0]!.event.arguments, big.arguments)
  assert.equal(verifyRunReport(bigReport, key.publicKey).ok, true)
})

test('the report and verify CLIs: a fetched report verifies, an edited one fails naming the event', async () => {
  const dir = scratchDir('report-cli')
  const tsx = path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx')
  const run = (script: string, args: string[]) =>
    promisify(execFile)(tsx, [path.join(REPO_ROOT, 'services', 'report', script), ...args], { env: { ...process.env, LEDGER_API_URL: gw.url, LEDGER_API_KEY: gw.keys['acme:audit'] } }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    )
  const file = path.join(dir, 'report.json')
  const pub = path.join(dir, 'notary.pem')
  writeFileSync(pub, key.publicKeyPem)
  const fetched = await run('report-cli.ts', [refund.runId, '--out', file])
  assert.equal(fetched.code, 0, fetched.stderr)
  const ok = await run('verify-cli.ts', [file, '--public-key', pub])
  assert.equal(ok.code, 0, ok.stderr)
  assert.match(ok.stdout, /^OK: run /)
  const edited = JSON.parse((await import('node:fs')).readFileSync(file, 'utf8')) as RunReport
  edited.integrity.chain[8]!.event.amount_usd = 2400
  writeFileSync(file, JSON.stringify(edited))
  const bad = await run('verify-cli.ts', [file, '--public-key', pub])
  assert.equal(bad.code, 1)
  assert.ok(bad.stderr.includes(`event ${refund.ids.refund} (seq 8`), bad.stderr)
  assert.equal((await run('verify-cli.ts', [file])).code, 2, 'usage without a key')
  assert.equal((await run('report-cli.ts', ['no-such-run', '--out', file])).code, 1)
})

test('the OpenAPI document lists exactly the routes served, the report routes included', async () => {
  const spec = JSON.parse((await get('/v1/openapi.json')).text) as { paths: Record<string, Record<string, unknown>> }
  // /healthz and /metrics are served by the backbone beside these routes.
  const documented = new Set(Object.entries(spec.paths).flatMap(([p, ops]) => (p === '/healthz' || p === '/metrics' ? [] : Object.keys(ops).map((m) => `${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`))))
  assert.ok(documented.has('GET /v1/runs/:id/report') && documented.has('GET /v1/notary/public-key'))
  for (const route of gw.routes) assert.ok(documented.has(route), `${route} is served but not documented`)
  for (const route of documented) assert.ok(gw.routes.includes(route), `${route} is documented but not served`)
})

test('the notary dead-letters nothing and signed every head it chained', () => {
  assert.equal(notary.stats.deadLettered, 0)
  assert.ok(notary.stats.digests >= 1)
})

import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry'
import { context, trace, TraceFlags } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { createLedgerClient, actionDigest } from '../../client/src/index.ts'
import { readTopic, startTestGateway, type TestGateway } from '../helpers/gateway.ts'

let gw: TestGateway
before(async () => {
  gw = await startTestGateway()
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
})
after(async () => {
  context.disable()
  await gw.stop()
})

/**
 * The seeds' refund-assistant run, emitted through the thin client inside an OpenTelemetry span:
 * read the ticket, look up the charge, a policy decision that requires approval, the approval
 * bound to the refund's digest, the refund, the end. It must arrive in Kafka in step order,
 * decode through the registry with an unmodified Confluent client, have its PII redacted and
 * keep the agent's trace id.
 */
test('the refund-assistant run arrives in order, decodes through the registry, redacted, with its trace id', async () => {
  const traceId = '0af7651916cd43dd8448eb211c80319c'
  const spanCtx = { traceId, spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED }
  const errors: Error[] = []
  const ledger = createLedgerClient({ endpoint: gw.url, apiKey: gw.keys['acme:emit']!, agent: { name: 'refund-assistant', version: '1.4.2' }, onError: (e) => errors.push(e) })

  const run = context.with(trace.setSpan(context.active(), trace.wrapSpanContext(spanCtx)), () => {
    const r = ledger.startRun({
      principal: { type: 'user', id: 'u-1042' },
      owner: 'finance-ops',
      autonomyMode: 'execute_with_approval',
      budget: { max_steps: 12, max_input_tokens: 12000, max_output_tokens: 1500, max_cost_usd: 0.75 },
      contractVersion: 'refund-assistant@7',
      goal: 'Refund ticket ZD-8812 for jane.doe@example.com',
    })
    r.modelCall({ provider: 'openai', model: 'gpt-4.1', input_tokens: 1420, output_tokens: 310, cost_usd: 0.0121, latency_ms: 820, finish_reason: 'tool_calls', routing_tier: 'small-fast' })
    r.toolCall({ tool: 'zendesk.read_ticket', action_class: 'read', arguments: { ticket_id: 'ZD-8812' }, status: 'ok', latency_ms: 190 })
    r.evidence({ source: 'zendesk', document_ids: ['ZD-8812'], content_hashes: ['sha256:' + 'c'.repeat(64)] })
    r.toolCall({ tool: 'stripe.lookup_charge', action_class: 'read', arguments: { charge_id: 'ch_3PqA', customer_email: 'jane.doe@example.com' }, status: 'ok', latency_ms: 240 })
    const refundArgs = { charge_id: 'ch_3PqA', amount_usd: 240.0, card: '4242 4242 4242 4242' }
    const digest = actionDigest('stripe.create_refund', refundArgs)
    r.policyDecision({ engine: 'opa', policy_id: 'refunds/allow', bundle_revision: 'rev-42', decision: 'require_approval', reasons: ['amount_usd >= 200 requires approval'], action_digest: digest })
    const { approvalId } = r.requestApproval({ action_digest: digest, tool: 'stripe.create_refund', requested_approver: 'finance-leads' })
    r.recordApproval({ approval_id: approvalId, action_digest: digest, approver: { type: 'user', id: 'u-7' }, decision: 'granted', justification: 'customer called from 415-555-0134, verified', time_to_decide_ms: 93_000 })
    const refund = r.toolCall({ tool: 'stripe.create_refund', action_class: 'irreversible', arguments: refundArgs, status: 'ok', latency_ms: 240, amount_usd: 240, side_effect_ref: 're_1Q2w', idempotency_key: approvalId })
    assert.equal(refund.actionDigest, digest, 'the approval binds to the exact refund')
    r.end({ outcome: 'succeeded' })
    return r
  })
  await ledger.close()
  assert.deepEqual(errors, [])
  assert.equal(ledger.stats.acknowledged, 10)
  assert.equal(run.traceId, traceId)

  const records = await readTopic(gw.kafka, gw.topic, 10, 20_000, run.runId)
  assert.equal(records.length, 10)
  const registry = new SchemaRegistry({ host: gw.registryUrl })
  const decoded = (await Promise.all(records.map((r) => registry.decode(r.value)))) as Record<string, any>[]
  assert.deepEqual(
    decoded.map((d) => d.envelope.step),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  )
  assert.deepEqual(
    records.map((r) => r.headers['ledger-event-type']),
    ['run.started', 'model.call', 'tool.call', 'evidence.retrieved', 'tool.call', 'policy.decision', 'approval.requested', 'approval.decided', 'tool.call', 'run.ended'],
  )
  for (const d of decoded) {
    assert.equal(d.envelope.trace_id, traceId)
    assert.equal(d.envelope.tenant, 'acme')
    assert.equal(d.envelope.run_id, run.runId)
  }
  for (const r of records) assert.match(r.headers.traceparent ?? '', new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`))

  // PII: nothing raw survives, and equal values hash equally (the two emails join).
  const all = JSON.stringify(decoded)
  assert.doesNotMatch(all, /jane\.doe@example\.com|4242 4242 4242 4242|415-555-0134/)
  const emailTags = all.match(/\[REDACTED:email:[0-9a-f]{16}\]/g) ?? []
  assert.equal(emailTags.length, 2)
  assert.equal(new Set(emailTags).size, 1)
  const approval = decoded[7]!
  assert.equal(approval.envelope.actor, 'human')
  assert.deepEqual({ ...approval.approver }, { type: 'user', id: 'u-7' })
  assert.equal(approval.action_digest, decoded[8]!.argument_digest)
  const ended = decoded[9]!
  assert.equal(ended.outcome, 'succeeded')
  assert.equal(ended.totals.tool_calls, 3)
})

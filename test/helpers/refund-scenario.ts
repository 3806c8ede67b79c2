import { actionDigest, createLedgerClient } from '../../client/src/index.ts'
import type { TestGateway } from './gateway.ts'
import { waitFor } from './stack.ts'

/** The refund assistant's contract (version 1.4.2): refunds over $200 need an approval. */
export const REFUND_CONTRACT = `agent:
  name: refund-assistant
  version: "1.4.2"
  owner: finance-ops
  budgets:
    max_steps: 40
    max_cost_usd_per_run: 1.0
  tools:
    allowlist:
      - name: zendesk.read_ticket
      - name: stripe.lookup_charge
      - name: stripe.create_refund
        require_approval_over_usd: 200
`

/** Publishes REFUND_CONTRACT and waits until the processors can read it. */
export async function publishRefundContract(gw: TestGateway): Promise<void> {
  const res = await fetch(`${gw.url}/v1/contracts`, { method: 'POST', headers: { 'content-type': 'application/yaml', authorization: `Bearer ${gw.keys['acme:admin']}` }, body: REFUND_CONTRACT })
  if (res.status !== 201) throw new Error(`publishing the contract: HTTP ${res.status} ${await res.text()}`)
  if (gw.processors) await waitFor(() => gw.processors!.contracts.get('acme', 'refund-assistant', '1.4.2') !== undefined, 10_000, 'the processors to read the contract')
}

export interface RefundScenario {
  runId: string
  /** Event ids by role in the run. */
  ids: { started: string; model: string; readTicket: string; evidence: string; lookup: string; policy: string; approvalRequested: string; approvalDecided: string; refund: string; ended: string }
  digest: string
}

/**
 * The seeds' refund-assistant run through the thin client: the model proposes, the agent reads the
 * ticket (evidence ZD-8812), looks up the charge, a policy requires approval for the $240 refund,
 * a finance lead grants it (bound to the refund's digest), the refund runs, the run ends. It runs
 * under contract 1.4.2: publish it first (publishRefundContract) where processors run.
 */
export async function emitRefundRun(endpoint: string, apiKey: string, options: { principal?: string; runId?: string } = {}): Promise<RefundScenario> {
  const errors: Error[] = []
  const ledger = createLedgerClient({ endpoint, apiKey, agent: { name: 'refund-assistant', version: '1.4.2' }, onError: (e) => errors.push(e) })
  const run = ledger.startRun({
    principal: { type: 'user', id: options.principal ?? 'u-1042' },
    owner: 'finance-ops',
    autonomyMode: 'execute_with_approval',
    budget: { max_steps: 12, max_cost_usd: 0.75 },
    contractVersion: '1.4.2',
    goal: 'Refund ticket ZD-8812',
    ...(options.runId ? { runId: options.runId } : {}),
  })
  const started = run.startedEventId
  const model = run.modelCall({ provider: 'openai', model: 'gpt-4.1', input_tokens: 1420, output_tokens: 310, cost_usd: 0.0121, latency_ms: 820, finish_reason: 'tool_calls' })
  const readTicket = run.toolCall({ tool: 'zendesk.read_ticket', action_class: 'read', arguments: { ticket_id: 'ZD-8812' }, status: 'ok', latency_ms: 190, parentEventId: model }).eventId
  const evidence = run.evidence({ source: 'zendesk', document_ids: ['ZD-8812'], content_hashes: ['sha256:' + 'c'.repeat(64)], parentEventId: readTicket })
  const lookup = run.toolCall({ tool: 'stripe.lookup_charge', action_class: 'read', arguments: { charge_id: 'ch_3PqA' }, status: 'ok', latency_ms: 240, parentEventId: model }).eventId
  const refundArgs = { charge_id: 'ch_3PqA', amount_usd: 240 }
  const digest = actionDigest('stripe.create_refund', refundArgs)
  const policy = run.policyDecision({ engine: 'opa', policy_id: 'refunds/allow', bundle_revision: 'rev-42', decision: 'require_approval', reasons: ['amount_usd >= 200 requires approval'], action_digest: digest })
  const { approvalId, eventId: approvalRequested } = run.requestApproval({ action_digest: digest, tool: 'stripe.create_refund', requested_approver: 'finance-leads' })
  const approvalDecided = run.recordApproval({ approval_id: approvalId, action_digest: digest, approver: { type: 'user', id: 'u-7' }, decision: 'granted', justification: 'verified with the customer', time_to_decide_ms: 93_000 })
  const refund = run.toolCall({ tool: 'stripe.create_refund', action_class: 'irreversible', arguments: refundArgs, status: 'ok', latency_ms: 240, amount_usd: 240, side_effect_ref: 're_1Q2w', idempotency_key: approvalId, parentEventId: model }).eventId
  const ended = run.end({ outcome: 'succeeded' })
  await ledger.close()
  if (errors.length > 0) throw new Error(`the client reported: ${errors.map((e) => e.message).join('; ')}`)
  return { runId: run.runId, digest, ids: { started, model, readTicket, evidence, lookup, policy, approvalRequested, approvalDecided, refund, ended } }
}

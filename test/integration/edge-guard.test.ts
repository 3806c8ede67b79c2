import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { actionDigest, createLedgerClient, RunKilledError, type LedgerClient } from '../../client/src/index.ts'
import { ulid } from '../../client/src/ulid.ts'
import { TOPICS, topicName } from '../../infra/kafka/topics.ts'
import type { KillSwitchDecision } from '../../schemas/control-schemas.ts'
import { createControlCodec } from '../../services/shared/control-codec.ts'
import { readTopic, startTestGateway, type TestGateway } from '../helpers/gateway.ts'
import { waitFor } from '../helpers/stack.ts'

/**
 * The edge run guard (services/gateway/run-control.ts): the gateway folds each acknowledged event
 * of a run it saw start through the processors' run guard, so guard() refuses on the very next
 * call after the offending event, with the decision the processor publishes later.
 */
const CONTRACT = `agent:
  name: edge-agent
  version: "2.0.0"
  owner: ops
  tools:
    allowlist:
      - name: crm.lookup
  loop_detection:
    max_repeats: 3
    window_seconds: 300
`

async function publishContract(gw: TestGateway): Promise<void> {
  const res = await fetch(`${gw.url}/v1/contracts`, { method: 'POST', headers: { 'content-type': 'application/yaml', authorization: `Bearer ${gw.keys['acme:admin']}` }, body: CONTRACT })
  assert.equal(res.status, 201, await res.text())
  await waitFor(() => (gw.runtime.deps.runControl as unknown as { options: { contracts: { latest(t: string, n: string): unknown } } }).options.contracts.latest('acme', 'edge-agent') !== undefined, 10_000)
}

const client = (gw: TestGateway) => createLedgerClient({ endpoint: gw.url, apiKey: gw.keys['acme:emit']!, agent: { name: 'edge-agent', version: '2.0.0' }, flushIntervalMs: 5 })

/** Three identical lookups: the third trips the loop detector. Returns the run and the third call's event id. */
async function loop(ledger: LedgerClient) {
  const run = ledger.startRun({ principal: { type: 'user', id: 'u-1' }, owner: 'ops' })
  const args = { ticket: ulid() }
  for (let i = 0; i < 2; i++) {
    run.toolCall({ tool: 'crm.lookup', action_class: 'read', arguments: args, status: 'ok', latency_ms: 5 })
    await run.guard({ tool: 'crm.lookup' })
  }
  const third = run.toolCall({ tool: 'crm.lookup', action_class: 'read', arguments: args, status: 'ok', latency_ms: 5 }).eventId
  return { run, third }
}

const refusalOf = async (p: Promise<unknown>) => {
  try {
    await p
  } catch (err) {
    return err
  }
  return undefined
}

describe('edge run guard, no processors running', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startTestGateway()
    await publishContract(gw)
  })
  after(async () => {
    await gw.stop()
  })

  test('guard() refuses on the first call after the offending event, naming it, with no processor running', async () => {
    const ledger = client(gw)
    const { run, third } = await loop(ledger)
    const err = await refusalOf(run.guard({ tool: 'crm.lookup' }))
    assert.ok(err instanceof RunKilledError, `expected RunKilledError, got ${String(err)}`)
    assert.equal(err.trigger, 'tool_loop')
    assert.equal(err.trippingEventId, third)
    const status = (await (await fetch(`${gw.url}/v1/runs/${run.runId}/status`, { headers: { authorization: `Bearer ${gw.keys['acme:read']}` } })).json()) as { status: string }
    assert.equal(status.status, 'killed')
    await ledger.close()
  })

  test("an operator's release on the control topic overrides the edge kill", async () => {
    const ledger = client(gw)
    const { run } = await loop(ledger)
    assert.ok((await refusalOf(run.guard())) instanceof RunKilledError)
    const res = await fetch(`${gw.url}/v1/control/decisions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${gw.keys['acme:admin']}` },
      body: JSON.stringify({ action: 'release', scope: 'run', scope_key: run.runId, reason: 'false positive, checked by hand', operator: 'dana' }),
    })
    assert.equal(res.status, 202)
    await waitFor(() => gw.runtime.deps.control.view.get('run', 'acme', run.runId) !== undefined, 10_000, 'the release in the control view')
    ;(await run.guard()).release()
    await ledger.close()
  })

  test('a run this gateway did not see start gets no edge verdict (its state would be incomplete)', async () => {
    const runId = `edge-${ulid()}`
    const T0 = Date.now()
    const args = { ticket: 'T-1' }
    const call = (step: number) => ({ type: 'tool.call', event_id: ulid(), run_id: runId, step, occurred_at: T0 + step, agent_name: 'edge-agent', agent_version: '2.0.0', principal: { type: 'user', id: 'u-1' }, tool: 'crm.lookup', action_class: 'read', arguments: JSON.stringify(args), argument_digest: actionDigest('crm.lookup', args), status: 'ok', latency_ms: 5 })
    const res = await fetch(`${gw.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${gw.keys['acme:emit']}` }, body: JSON.stringify([call(5), call(6), call(7), call(8)]) })
    assert.equal(res.status, 202, await res.text())
    const guard = await fetch(`${gw.url}/v1/runs/${runId}/guard`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${gw.keys['acme:emit']}` }, body: '{}' })
    assert.equal(((await guard.json()) as { allowed: boolean }).allowed, true)
  })
})

describe('edge run guard beside the processors', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startTestGateway({ processors: true })
    await publishContract(gw)
  })
  after(async () => {
    await gw.stop()
  })

  test('the edge kill is the decision the processor publishes: same id, trigger and tripping event', async () => {
    const ledger = client(gw)
    const { run, third } = await loop(ledger)
    const err = await refusalOf(run.guard())
    assert.ok(err instanceof RunKilledError)
    const edge = (await (await fetch(`${gw.url}/v1/runs/${run.runId}/status`, { headers: { authorization: `Bearer ${gw.keys['acme:read']}` } })).json()) as { killed: { decision_id: string } }
    const controlTopic = topicName(TOPICS.control, gw.prefix)
    const codec = await createControlCodec({ registryUrl: gw.registryUrl, controlTopic, budgetStateTopic: topicName(TOPICS.budgetState, gw.prefix) })
    const records = await readTopic(gw.kafka, controlTopic, 1, 15_000, `run/acme/${run.runId}`)
    assert.equal(records.length, 1, 'the processor published one decision for the run')
    const published = (await codec.decode(records[0]!.value)).record as unknown as KillSwitchDecision
    assert.equal(published.decision_id, edge.killed.decision_id)
    assert.equal(published.tripping_event_id, third)
    assert.equal(published.trigger, 'tool_loop')
    await ledger.close()
  })
})

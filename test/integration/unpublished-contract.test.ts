import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ulid } from '../../client/src/ulid.ts'
import { startTestGateway } from '../helpers/gateway.ts'
import { waitFor } from '../helpers/stack.ts'

/**
 * A run naming a contract version that was never published is processed without one after a single
 * wait (the test gateway's processors wait 2 s), not one wait per event: its tool loop is still
 * caught in a few seconds. Waiting per event would hold the partition for 2 s × 10 events.
 */
test('events naming an unpublished contract version cost one wait, not one per event', { timeout: 60_000 }, async () => {
  const gw = await startTestGateway({ processors: true })
  try {
    const runId = `run-unpublished-${Date.now()}`
    const base = (step: number) => ({
      event_id: ulid(),
      run_id: runId,
      step,
      occurred_at: new Date(Date.UTC(2026, 10, 22, 10, 0, step)).toISOString(),
      agent_name: 'refund-assistant',
      agent_version: '1.4.2',
      principal: { type: 'user', id: 'u-1' },
      contract_version: '9.9.9',
    })
    const read = (step: number, ticket: string) => ({ ...base(step), type: 'tool.call', tool: 'zendesk.read_ticket', action_class: 'read', argument_digest: 'sha256:' + ticket.repeat(64), arguments: '{}', status: 'ok' })
    // Seven different reads, then the same read three times: a loop on the tenth event.
    const events = [...['1', '2', '3', '4', '5', '6', '7'].map((t, i) => read(i, t)), read(7, 'a'), read(8, 'a'), read(9, 'a')]
    const started = Date.now()
    const res = await fetch(`${gw.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${gw.keys['acme:emit']}` }, body: JSON.stringify(events) })
    assert.equal(res.status, 202)
    const status = await waitFor(
      async () => {
        const r = (await (await fetch(`${gw.url}/v1/runs/${runId}/status`, { headers: { authorization: `Bearer ${gw.keys['acme:read']}` } })).json()) as { status: string; killed?: { trigger: string } }
        return r.status === 'killed' ? r : undefined
      },
      15_000,
      'the loop kill',
    )
    const tookMs = Date.now() - started
    assert.equal(status.killed?.trigger, 'tool_loop')
    assert.ok(tookMs < 8_000, `the kill took ${tookMs} ms; ten waits of 2 s would take 20 s`)
  } finally {
    await gw.stop()
  }
})

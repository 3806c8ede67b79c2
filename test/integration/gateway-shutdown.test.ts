import assert from 'node:assert/strict'
import { test } from 'node:test'
import { readTopic, startTestGateway, validEvent } from '../helpers/gateway.ts'

/**
 * Shutting down in order loses nothing: requests in flight when the gateway stops either get a
 * 202, and then their events are in Kafka, or an error the client retries (503) — never a 202
 * for an event that was not stored.
 */
test('stopping the gateway under load: every acknowledged event is in Kafka', { timeout: 60_000 }, async () => {
  const gw = await startTestGateway()
  const runId = `run-shutdown-${Date.now()}`
  const events = Array.from({ length: 300 }, (_, i) => validEvent({ run_id: runId, step: i }))
  let firstAck: () => void
  const acknowledged = new Promise<void>((resolve) => (firstAck = resolve))
  const send = (event: Record<string, unknown>) =>
    fetch(`${gw.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${gw.keys['acme:emit']}` },
      body: JSON.stringify(event),
      // Connections the closing server never accepted just hang; a client's time-out ends them.
      signal: AbortSignal.timeout(8_000),
    }).then(
      async (res) => {
        if (res.status === 202) firstAck()
        return { id: event.event_id as string, status: res.status, body: await res.text() }
      },
      () => ({ id: event.event_id as string, status: 0, body: 'connection closed or timed out' }),
    )
  // A first wave is in flight; the stop begins at its first acknowledgement while a second wave arrives.
  const results = events.slice(0, 100).map(send)
  await acknowledged
  const stopped = gw.stop()
  results.push(...events.slice(100).map(send))
  const outcomes = await Promise.all(results)
  await stopped
  const acked = outcomes.filter((o) => o.status === 202).map((o) => o.id)
  const other = outcomes.filter((o) => o.status !== 202)
  for (const o of other) assert.ok(o.status === 503 || o.status === 0, `unexpected ${o.status}: ${o.body}`)
  assert.ok(other.length > 0, 'the stop came while requests were still in flight')
  const stored = await readTopic(gw.kafka, gw.topic, acked.length, 15_000, runId)
  // The registry stopped with the gateway; the runtime's codec still knows the ids it registered.
  const decoded = await Promise.all(stored.map((r) => gw.runtime.deps.codec.decode(r.value)))
  const storedIds = new Set(decoded.map((d) => d.json.event_id as string))
  assert.deepEqual(acked.filter((id) => !storedIds.has(id)), [], 'acknowledged but not stored')
})

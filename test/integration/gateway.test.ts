import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { gatewayOpenApi, EXAMPLE_EVENT } from '../../services/gateway/openapi.ts'
import { readTopic, startTestGateway, validEvent, ulidLike, type TestGateway } from '../helpers/gateway.ts'

describe('ingest gateway on the real stack', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startTestGateway({ env: { LEDGER_INGEST_MAX_BODY_BYTES: String(64 * 1024), LEDGER_INGEST_MAX_BATCH: '50' }, tenants: { globex: { redaction: 'off' } } })
  })
  after(async () => {
    await gw.stop()
  })

  const post = (body: unknown, key: string | null = gw.keys['acme:emit']!, headers: Record<string, string> = {}) =>
    fetch(`${gw.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}), ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    })

  test('malformed requests get the right 4xx naming the field; none gets a 5xx', async () => {
    const stored = validEvent()
    assert.equal((await post(stored)).status, 202)
    const e = validEvent
    const cases: { name: string; body: unknown; key?: string | null; headers?: Record<string, string>; status: number; code: string; names: RegExp }[] = [
      { name: 'missing event_id', body: { ...e(), event_id: undefined }, status: 400, code: 'LEDGER_ERR_INGEST_VALIDATION', names: /events\[0\]\.event_id: is required/ },
      { name: 'missing run_id in the 3rd event', body: [e(), e(), { ...e(), run_id: undefined }], status: 400, code: 'LEDGER_ERR_INGEST_VALIDATION', names: /events\[2\]\.run_id: is required/ },
      { name: 'missing principal.id', body: { ...e(), principal: { type: 'user' } }, status: 400, code: 'LEDGER_ERR_INGEST_VALIDATION', names: /events\[0\]\.principal\.id: is required/ },
      { name: 'step is a string', body: { ...e(), step: 'three' }, status: 400, code: 'LEDGER_ERR_INGEST_VALIDATION', names: /events\[0\]\.step/ },
      { name: 'negative step', body: { ...e(), step: -1 }, status: 400, code: 'LEDGER_ERR_INGEST_VALIDATION', names: /events\[0\]\.step/ },
      { name: 'input_tokens is a float', body: { ...e(), input_tokens: 1.5 }, status: 400, code: 'LEDGER_ERR_INGEST_VALIDATION', names: /events\[0\]\.input_tokens/ },
      { name: 'negative cost', body: { ...e(), cost_usd: -0.5 }, status: 400, code: 'LEDGER_ERR_INGEST_VALIDATION', names: /events\[0\]\.cost_usd: must not be negative/ },
      { name: 'cost is a string', body: { ...e(), cost_usd: '0.5' }, status: 400, code: 'LEDGER_ERR_INGEST_VALIDATION', names: /events\[0\]\.cost_usd/ },
      { name: 'bad timestamp', body: { ...e(), occurred_at: 'yesterday' }, status: 400, code: 'LEDGER_ERR_INGEST_VALIDATION', names: /events\[0\]\.occurred_at: must be an ISO 8601/ },
      { name: 'event id not a ULID', body: { ...e(), event_id: 'evt-1' }, status: 400, code: 'LEDGER_ERR_INGEST_VALIDATION', names: /events\[0\]\.event_id: must be a ULID/ },
      { name: 'trace id not W3C', body: { ...e(), trace_id: 'xyz' }, status: 400, code: 'LEDGER_ERR_INGEST_VALIDATION', names: /events\[0\]\.trace_id/ },
      { name: 'unknown event type', body: { ...e(), type: 'model.cal' }, status: 400, code: 'LEDGER_ERR_INGEST_VALIDATION', names: /events\[0\]\.type: unknown event type "model\.cal"/ },
      { name: 'missing type', body: { ...e(), type: undefined }, status: 400, code: 'LEDGER_ERR_INGEST_VALIDATION', names: /events\[0\]\.type: is required/ },
      { name: 'unknown field', body: { ...e(), tokens_in: 5 }, status: 400, code: 'LEDGER_ERR_INGEST_VALIDATION', names: /events\[0\]\.tokens_in: is not a field of model\.call/ },
      { name: 'bad enum', body: { ...e(), type: 'tool.call', tool: 't', action_class: 'delete', argument_digest: 'sha256:' + 'a'.repeat(64), arguments: '{}', status: 'ok', provider: undefined, model: undefined, input_tokens: undefined, output_tokens: undefined, cost_usd: undefined }, status: 400, code: 'LEDGER_ERR_INGEST_VALIDATION', names: /events\[0\]\.action_class/ },
      { name: 'arguments not JSON', body: { ...e(), type: 'tool.call', tool: 't', action_class: 'read', argument_digest: 'sha256:' + 'a'.repeat(64), arguments: '{oops', status: 'ok', provider: undefined, model: undefined, input_tokens: undefined, output_tokens: undefined, cost_usd: undefined }, status: 400, code: 'LEDGER_ERR_INGEST_VALIDATION', names: /events\[0\]\.arguments: must be a JSON document/ },
      { name: 'event is a number', body: [e(), 42], status: 400, code: 'LEDGER_ERR_INGEST_VALIDATION', names: /events\[1\]: must be an event object/ },
      { name: 'invalid JSON', body: '{"type": "model.call",', status: 400, code: 'LEDGER_ERR_INGEST_BODY', names: /body: not valid JSON/ },
      { name: 'empty batch', body: [], status: 400, code: 'LEDGER_ERR_INGEST_BODY', names: /body: the array holds no events/ },
      { name: 'body is a string', body: '"hello"', status: 400, code: 'LEDGER_ERR_INGEST_BODY', names: /body: must be an event object/ },
      { name: 'oversized body', body: [{ ...e(), error: 'x'.repeat(70 * 1024) }], status: 413, code: 'LEDGER_ERR_INGEST_TOO_LARGE', names: /body|large/i },
      { name: 'too many events', body: Array.from({ length: 51 }, () => e()), status: 413, code: 'LEDGER_ERR_INGEST_TOO_LARGE', names: /51 events in one request; at most 50/ },
      { name: 'no key', body: e(), key: null, status: 401, code: 'LEDGER_ERR_AUTH_MISSING', names: /authorization/ },
      { name: 'unknown key', body: e(), key: 'led_emit_not-a-real-key-at-all', status: 401, code: 'LEDGER_ERR_AUTH_INVALID', names: /API key is unknown/ },
      { name: 'read key cannot emit', body: e(), key: 'acme:read', status: 403, code: 'LEDGER_ERR_FORBIDDEN', names: /role "read" cannot POST \/v1\/events/ },
      { name: 'key for another tenant', body: { ...e(), tenant: 'acme' }, key: 'globex:emit', status: 403, code: 'LEDGER_ERR_FORBIDDEN', names: /events\[0\]\.tenant: this key emits for tenant "globex" only/ },
      { name: 'duplicate event id in a batch', body: [stored, { ...stored }], status: 409, code: 'LEDGER_ERR_INGEST_DUPLICATE', names: /events\[1\]\.event_id: duplicates events\[0\]\.event_id/ },
      { name: 'stored event id reused for other content', body: { ...stored, cost_usd: 99 }, status: 409, code: 'LEDGER_ERR_INGEST_DUPLICATE', names: /events\[0\]\.event_id: .* already stored with different content/ },
      { name: 'wrong media type', body: 'type=model.call', headers: { 'content-type': 'text/plain' }, status: 415, code: 'LEDGER_ERR_INGEST_MEDIA_TYPE', names: /text\/plain/ },
    ]
    assert.ok(cases.length >= 20)
    for (const c of cases) {
      const key = c.key === null ? null : c.key ? (gw.keys[c.key] ?? c.key) : gw.keys['acme:emit']!
      const res = await post(c.body, key, c.headers)
      const body = (await res.json()) as { error?: { code: string; message: string } }
      assert.ok(res.status < 500, `${c.name}: got a ${res.status}`)
      assert.equal(res.status, c.status, `${c.name}: ${JSON.stringify(body)}`)
      assert.equal(body.error?.code, c.code, c.name)
      assert.match(body.error?.message ?? '', c.names, c.name)
    }
  })

  test('a batch is stored in order, Avro in the registry wire format, with trace context and tenant from the key', async () => {
    const runId = `run-${ulidLike()}`
    const events = Array.from({ length: 5 }, (_, i) => validEvent({ run_id: runId, step: i, error: i === 2 ? 'mail bob@example.com or call +1 415 555 0134' : null }))
    const res = await post(events, gw.keys['acme:emit']!, { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' })
    assert.equal(res.status, 202)
    const body = (await res.json()) as { accepted: number; redactions: Record<string, number> }
    assert.equal(body.accepted, 5)
    assert.deepEqual(body.redactions, { email: 1, phone: 1 })
    const records = await readTopic(gw.kafka, gw.topic, 5, 15_000, runId)
    assert.equal(records.length, 5)
    assert.equal(new Set(records.map((r) => r.partition)).size, 1, 'one run, one partition')
    const decoded = await Promise.all(records.map((r) => gw.codec.decode(r.value)))
    assert.deepEqual(decoded.map((d) => d.json.step), [0, 1, 2, 3, 4])
    for (const d of decoded) {
      assert.equal(d.json.tenant, 'acme')
      assert.equal(d.json.trace_id, '4bf92f3577b34da6a3ce929d0e0e4736')
      assert.equal(typeof d.json.received_at, 'number')
    }
    assert.equal(records[0]!.headers.traceparent, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
    assert.equal(records[0]!.value[0], 0, 'magic byte')
    const redacted = String(decoded[2]!.json.error)
    assert.doesNotMatch(redacted, /bob@example\.com|555/)
    assert.match(redacted, /\[REDACTED:email:[0-9a-f]{16}\]/)
  })

  test('a retried event id is acknowledged again and stored once', async () => {
    const runId = `run-${ulidLike()}`
    const event = validEvent({ run_id: runId })
    const first = await post(event)
    const second = await post(event)
    assert.equal(first.status, 202)
    assert.equal(second.status, 202)
    assert.deepEqual(((await second.json()) as { duplicates: number }).duplicates, 1)
    const records = await readTopic(gw.kafka, gw.topic, 2, 3_000, runId)
    assert.equal(records.length, 1)
  })

  test('redaction off for a tenant that asked for it: the text is stored as sent', async () => {
    const runId = `run-${ulidLike()}`
    const res = await post(validEvent({ run_id: runId, error: 'mail bob@example.com' }), gw.keys['globex:emit']!)
    assert.equal(res.status, 202)
    const [record] = await readTopic(gw.kafka, gw.topic, 1, 15_000, runId)
    assert.equal((await gw.codec.decode(record!.value)).json.error, 'mail bob@example.com')
  })

  test('the OpenAPI document lists exactly the routes the gateway serves, and its example is accepted', async () => {
    const spec = (await fetch(`${gw.url}/v1/openapi.json`).then((r) => r.json())) as { paths: Record<string, Record<string, unknown>> }
    assert.deepEqual(spec, JSON.parse(JSON.stringify(gatewayOpenApi())))
    const served = new Set<string>()
    // Every spec operation answers something other than "no route".
    for (const [p, ops] of Object.entries(spec.paths)) {
      for (const method of Object.keys(ops)) {
        if (p === '/healthz' || p === '/metrics') continue // served by the backbone, beside the gateway
        if (p.endsWith('/stream')) {
          // A server-sent event stream answers 401 without a key, like every route.
          const res = await fetch(`${gw.url}${p}`)
          assert.equal(res.status, 401, `${method} ${p}`)
          served.add(`${method.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`)
          continue
        }
        const res = await fetch(`${gw.url}${p}`, { method: method.toUpperCase(), headers: { 'content-type': 'application/json' }, body: method === 'get' ? undefined : '{}' })
        const body = (await res.json()) as { error?: { code: string } }
        assert.notEqual(body.error?.code, 'LEDGER_ERR_NOT_FOUND', `${method} ${p}`)
        served.add(`${method.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`)
      }
    }
    // And every route the app has is in the spec.
    for (const r of gw.routes) assert.ok(served.has(r), `${r} is served but missing from the spec`)
    const example = { ...EXAMPLE_EVENT, event_id: ulidLike() }
    assert.equal((await post(example)).status, 202)
  })
})

describe('rate limits and Kafka outages', () => {
  test('a tenant over its request rate gets 429 with retry-after', async () => {
    const gw = await startTestGateway({ tenants: { acme: { rate_limit_rps: 1 } } })
    try {
      const statuses: number[] = []
      let retryAfter: string | null = null
      for (let i = 0; i < 4; i++) {
        const res = await fetch(`${gw.url}/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${gw.keys['acme:emit']}` },
          body: JSON.stringify(validEvent()),
        })
        statuses.push(res.status)
        if (res.status === 429) retryAfter = res.headers.get('retry-after')
        await res.body?.cancel()
      }
      assert.deepEqual(statuses.slice(0, 2), [202, 202], 'the burst is allowed')
      assert.ok(statuses.includes(429))
      assert.ok(Number(retryAfter) >= 1)
    } finally {
      await gw.stop()
    }
  })
})

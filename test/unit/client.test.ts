import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { actionDigest, canonicalJson, createLedgerClient, LedgerBufferFullError, LedgerFlushTimeoutError, LedgerRejectedError, ulid, type LedgerClientError } from '../../client/src/index.ts'

/**
 * The client's transport against a scripted HTTP peer on loopback: what it sends, how it retries
 * and what it reports. (The client against the real gateway is test/integration/client-refund-run.)
 */
type Handler = (events: Record<string, unknown>[], req: http.IncomingMessage) => { status: number; body?: unknown; headers?: Record<string, string> }
let handler: Handler
const received: Record<string, unknown>[][] = []
let server: http.Server
let endpoint: string

before(async () => {
  server = http.createServer((req, res) => {
    let data = ''
    req.on('data', (c: Buffer) => (data += c.toString()))
    req.on('end', () => {
      const events = JSON.parse(data) as Record<string, unknown>[]
      received.push(events)
      const { status, body, headers } = handler(events, req)
      res.writeHead(status, { 'content-type': 'application/json', ...headers })
      res.end(JSON.stringify(body ?? { accepted: events.length, duplicates: 0, event_ids: events.map((e) => e.event_id) }))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
after(() => server.close())

const agent = { name: 'refund-assistant', version: '1.4.2' }
const principal = { type: 'user', id: 'u-1' }
const model = { provider: 'openai', model: 'gpt-4.1', input_tokens: 10, output_tokens: 5, cost_usd: 0.001, latency_ms: 100 }

describe('thin client transport', () => {
  test('batches by size, posts in step order with the key, and counts acknowledgements', async () => {
    received.length = 0
    handler = () => ({ status: 202 })
    const ledger = createLedgerClient({ endpoint, apiKey: 'led_emit_x', agent, batchSize: 4, flushIntervalMs: 10_000 })
    const run = ledger.startRun({ principal, owner: 'ops' })
    for (let i = 0; i < 9; i++) run.modelCall(model)
    run.end({ outcome: 'succeeded' })
    await ledger.close()
    assert.deepEqual(received.map((b) => b.length), [4, 4, 3])
    const steps = received.flat().map((e) => e.step)
    assert.deepEqual(steps, [...Array(11).keys()])
    assert.equal(ledger.stats.acknowledged, 11)
    const ended = received.flat().at(-1)!
    assert.equal((ended.totals as { input_tokens: number }).input_tokens, 90)
  })

  test('5xx is retried with the same event ids until accepted', async () => {
    received.length = 0
    let calls = 0
    handler = () => (++calls <= 2 ? { status: 503, headers: { 'retry-after': '0' } } : { status: 202 })
    const errors: LedgerClientError[] = []
    const ledger = createLedgerClient({ endpoint, apiKey: 'k', agent, maxRetryDelayMs: 50, onError: (e) => errors.push(e) })
    ledger.startRun({ principal, owner: 'ops' }).modelCall(model)
    await ledger.close(5_000)
    assert.equal(received.length, 3)
    assert.deepEqual(received[0]!.map((e) => e.event_id), received[2]!.map((e) => e.event_id))
    assert.equal(ledger.stats.retries, 2)
    assert.equal(ledger.stats.acknowledged, 2)
    assert.equal(errors.length, 2)
  })

  test('a 400 naming one event drops only that event; the rest are resent and stored', async () => {
    received.length = 0
    handler = (events) =>
      events.length === 3
        ? { status: 400, body: { error: { code: 'LEDGER_ERR_INGEST_VALIDATION', message: 'events[1].cost_usd: must not be negative', problems: [{ index: 1, path: 'events[1].cost_usd', message: 'x' }] } } }
        : { status: 202 }
    const errors: LedgerClientError[] = []
    const ledger = createLedgerClient({ endpoint, apiKey: 'k', agent, onError: (e) => errors.push(e) })
    const run = ledger.startRun({ principal, owner: 'ops' })
    run.modelCall({ ...model, cost_usd: -1 })
    run.modelCall(model)
    await ledger.close(5_000)
    assert.equal(ledger.stats.rejected, 1)
    assert.equal(ledger.stats.acknowledged, 2)
    assert.ok(errors[0] instanceof LedgerRejectedError)
    assert.deepEqual(received[1]!.map((e) => e.step), [0, 2])
  })

  test('a full buffer never drops silently: counted and reported, thrown only in strict mode', async () => {
    handler = () => ({ status: 503 })
    const errors: LedgerClientError[] = []
    const ledger = createLedgerClient({ endpoint, apiKey: 'k', agent, maxBufferedEvents: 3, flushIntervalMs: 60_000, batchSize: 100, onError: (e) => errors.push(e) })
    const run = ledger.startRun({ principal, owner: 'ops' })
    run.modelCall(model)
    run.modelCall(model)
    assert.doesNotThrow(() => run.modelCall(model))
    assert.equal(ledger.stats.dropped, 1)
    assert.ok(errors.some((e) => e instanceof LedgerBufferFullError))

    const strict = createLedgerClient({ endpoint, apiKey: 'k', agent, maxBufferedEvents: 1, flushIntervalMs: 60_000, strict: true, onError: () => undefined })
    const r2 = strict.startRun({ principal, owner: 'ops' })
    assert.throws(() => r2.modelCall(model), LedgerBufferFullError)
    await assert.rejects(strict.close(300), LedgerFlushTimeoutError)
    await ledger.close(300)
  })

  test('an unreachable gateway never throws into the agent', async () => {
    const errors: LedgerClientError[] = []
    const ledger = createLedgerClient({ endpoint: 'http://127.0.0.1:9', apiKey: 'k', agent, maxRetryDelayMs: 20, onError: (e) => errors.push(e) })
    ledger.startRun({ principal, owner: 'ops' }).modelCall(model)
    await ledger.close(300)
    assert.ok(ledger.stats.retries >= 1)
    assert.equal(ledger.stats.acknowledged, 0)
    assert.ok(errors.some((e) => e.code === 'LEDGER_CLIENT_NETWORK'))
    assert.ok(errors.some((e) => e instanceof LedgerFlushTimeoutError))
  })
})

describe('ids and digests', () => {
  test('ULIDs are unique and sort in creation order, even within one millisecond', () => {
    const ids = Array.from({ length: 2000 }, () => ulid())
    assert.equal(new Set(ids).size, ids.length)
    assert.deepEqual([...ids].sort(), ids)
    assert.match(ids[0]!, /^[0-9A-HJKMNP-TV-Z]{26}$/)
  })

  test('the action digest ignores key order and changes with any argument', () => {
    const a = actionDigest('stripe.create_refund', { charge: 'ch_1', amount_usd: 240 })
    assert.equal(actionDigest('stripe.create_refund', { amount_usd: 240, charge: 'ch_1' }), a)
    assert.notEqual(actionDigest('stripe.create_refund', { charge: 'ch_1', amount_usd: 241 }), a)
    assert.notEqual(actionDigest('stripe.lookup_charge', { charge: 'ch_1', amount_usd: 240 }), a)
    assert.equal(canonicalJson({ b: [2, { d: 1, c: 0 }], a: null }), '{"a":null,"b":[2,{"c":0,"d":1}]}')
  })
})

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { eventSchemas } from '../../schemas/event-schemas.ts'
import { redactEvent } from '../../services/gateway/event-redaction.ts'
import { createRedactor, luhn, type Findings } from '../../services/gateway/redaction.ts'

const redactor = createRedactor(Buffer.alloc(32, 7))

describe('PII and secret redaction', () => {
  const cases: [string, string, string][] = [
    ['email', 'write to Jane.Doe+refunds@example.co.uk today', 'email'],
    ['card with spaces (Luhn ok)', 'card 4242 4242 4242 4242 on file', 'card'],
    ['card with dashes', 'card 5555-5555-5555-4444', 'card'],
    ['US SSN', 'ssn 123-45-6789', 'national_id'],
    ['UK NINO', 'nino AB 12 34 56 C', 'national_id'],
    ['US phone', 'call (415) 555-0134', 'phone'],
    ['international phone', 'call +44 20 7946 0958', 'phone'],
    ['OpenAI key', 'key sk-proj-abcdefghijklmnopqrstuvwxyz123456', 'secret'],
    ['Stripe live key', 'sk_live_51HqLyjWDarjtT1zdp7dc', 'secret'],
    ['AWS access key id', 'AKIAIOSFODNN7EXAMPLE', 'secret'],
    ['GitHub token', 'ghp_abcdefghijklmnopqrstuvwxyz0123456789', 'secret'],
    ['bearer token', 'Authorization: Bearer abcdef0123456789abcdef', 'secret'],
    ['JWT', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U', 'secret'],
    ['password pair', 'password=hunter2hunter2', 'secret'],
  ]
  for (const [name, text, kind] of cases) {
    test(name, () => {
      const findings: Findings = {}
      const out = redactor.text(text, findings)
      assert.ok((findings as Record<string, number>)[kind]! >= 1, `${kind} in ${JSON.stringify(out)}`)
      assert.match(out, new RegExp(`\\[REDACTED:${kind}:[0-9a-f]{16}\\]`))
    })
  }

  test('leaves ordinary text, amounts, dates and ids alone', () => {
    for (const text of ['refund $240.00 for order A-10492', 'on 2026-11-22 at 10:15', 'ticket ZD-8812, step 3 of 12', 'card ending 4242']) {
      assert.equal(redactor.text(text), text)
    }
    // A 16-digit number that fails Luhn is not called a card (strict mode may still hide it as a phone-like number).
    const findings: Findings = {}
    redactor.text('4242 4242 4242 4241', findings)
    assert.equal(findings.card, undefined)
  })

  test('equal values hash equally (they still join); another key hashes differently', () => {
    const a = redactor.text('bob@example.com')
    assert.equal(redactor.text('BOB@example.com'), a)
    assert.notEqual(createRedactor(Buffer.alloc(32, 8)).text('bob@example.com'), a)
  })

  test('JSON arguments are redacted value by value and stay JSON', () => {
    const out = redactor.json('{"customer":{"email":"a@b.io","card":4242424242424242},"amount":240}')
    const parsed = JSON.parse(out) as { customer: { email: string; card: string }; amount: number }
    assert.match(parsed.customer.email, /^\[REDACTED:email:/)
    assert.match(parsed.customer.card, /^\[REDACTED:card:/)
    assert.equal(parsed.amount, 240)
  })

  test('Luhn', () => {
    assert.equal(luhn('4111 1111 1111 1111'), true)
    assert.equal(luhn('4111 1111 1111 1112'), false)
  })

  test('strict mode scans every free-text field of an event but never its identifiers', () => {
    const schema = eventSchemas().get('tool.call')!
    const findings: Findings = {}
    const out = redactEvent(
      schema,
      { run_id: 'run-1', event_id: '01JD0000000000000000000000', principal: { type: 'user', id: 'jane@example.com' }, tool: 't', arguments: '{"to":"jane@example.com"}', error: 'SSN 123-45-6789 rejected', argument_digest: 'sha256:' + '1'.repeat(64) },
      redactor,
      findings,
    )
    assert.equal(out.run_id, 'run-1')
    assert.equal(out.argument_digest, 'sha256:' + '1'.repeat(64))
    assert.match((out.principal as { id: string }).id, /^\[REDACTED:email:/)
    assert.equal(JSON.parse(out.arguments as string).to, (out.principal as { id: string }).id, 'the same email joins across fields')
    assert.doesNotMatch(String(out.error), /6789/)
    assert.deepEqual(findings, { email: 2, national_id: 1 })
  })
})

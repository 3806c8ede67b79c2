import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { TOPICS, topicName } from '../../infra/kafka/topics.ts'
import { REPO_ROOT } from '../../infra/paths.ts'
import { readTopic, startTestGateway, type TestGateway } from '../helpers/gateway.ts'
import { scratchDir } from '../helpers/stack.ts'

let gw: TestGateway
before(async () => {
  gw = await startTestGateway()
})
after(async () => {
  await gw.stop()
})

const CONTRACT = `agent:
  name: refund-assistant
  version: "7"
  owner: finance-ops
  budgets:
    max_steps: 12
    max_cost_usd_per_run: 0.75
  tools:
    allowlist:
      - name: zendesk.read_ticket
      - name: stripe.create_refund
        requires_approval: true
`
const publish = (body: string, key: string, contentType = 'application/yaml') =>
  fetch(`${gw.url}/v1/contracts`, { method: 'POST', headers: { 'content-type': contentType, authorization: `Bearer ${key}` }, body })

test('an admin publishes a contract; it lands on the compacted contracts topic under tenant/agent@version', async () => {
  const res = await publish(CONTRACT, gw.keys['acme:admin']!)
  assert.equal(res.status, 201)
  assert.deepEqual(await res.json(), { tenant: 'acme', name: 'refund-assistant', version: '7', key: 'acme/refund-assistant@7' })
  const [record] = await readTopic(gw.kafka, topicName(TOPICS.contracts, gw.prefix), 1, 10_000)
  assert.equal(record?.key, 'acme/refund-assistant@7')
  const stored = JSON.parse(record!.value.toString()) as { contract: { budgets: { max_cost_usd_per_run: number } }; yaml: string }
  assert.equal(stored.contract.budgets.max_cost_usd_per_run, 0.75)
  assert.equal(stored.yaml, CONTRACT)
})

test('an invalid contract gets 400 naming the line and field; an emit key gets 403', async () => {
  const res = await publish(CONTRACT.replace('max_steps: 12', 'max_steps: -3'), gw.keys['acme:admin']!)
  assert.equal(res.status, 400)
  const body = (await res.json()) as { error: { code: string; message: string; problems: { line: number; path: string }[] } }
  assert.equal(body.error.code, 'LEDGER_ERR_CONTRACT_INVALID')
  assert.match(body.error.message, /line 6: agent\.budgets\.max_steps/)
  assert.equal((await publish(CONTRACT, gw.keys['acme:emit']!)).status, 403)
  assert.equal((await publish('', gw.keys['acme:admin']!)).status, 400)
  assert.equal((await publish('agent: [', gw.keys['acme:admin']!)).status, 400)
})

test('the contracts CLI publishes through the API, and says why when it cannot', async () => {
  const dir = scratchDir('contracts-cli')
  const good = path.join(dir, 'good.yaml')
  const bad = path.join(dir, 'bad.yaml')
  writeFileSync(good, CONTRACT.replace('version: "7"', 'version: "8"'))
  writeFileSync(bad, CONTRACT.replace('max_steps: 12', 'max_steps: -3'))
  const cli = (args: string[], env: Record<string, string> = {}) =>
    new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'services', 'gateway', 'contracts-cli.ts'), ...args], { env: { ...process.env, LEDGER_ADMIN_KEY: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      let err = ''
      child.stdout.on('data', (d: Buffer) => (out += d.toString()))
      child.stderr.on('data', (d: Buffer) => (err += d.toString()))
      child.on('exit', (code) => resolve({ code, out, err }))
    })
  // Independent invocations, run together: each is a Node start-up.
  const [published, invalid, forbidden, noKey, offline] = await Promise.all([
    cli(['publish', good, '--url', gw.url], { LEDGER_ADMIN_KEY: gw.keys['acme:admin']! }),
    cli(['publish', bad, '--url', gw.url, '--key', gw.keys['acme:admin']!]),
    cli(['publish', good, '--url', gw.url, '--key', gw.keys['acme:emit']!]),
    cli(['publish', good, '--url', gw.url]),
    cli(['validate', bad]),
  ])
  assert.equal(published.code, 0, published.err)
  assert.match(published.out, /published acme\/refund-assistant@8/)
  const records = await readTopic(gw.kafka, topicName(TOPICS.contracts, gw.prefix), 1, 10_000, 'acme/refund-assistant@8')
  assert.equal(records.length, 1)
  assert.equal(invalid.code, 1)
  assert.match(invalid.err, /LEDGER_ERR_CONTRACT_INVALID: .*line 6: agent\.budgets\.max_steps/s)
  assert.equal(forbidden.code, 1)
  assert.match(forbidden.err, /\(403\)/)
  assert.equal(noKey.code, 2)
  assert.match(noKey.err, /LEDGER_ADMIN_KEY/)
  assert.equal(offline.code, 1)
  assert.match(offline.err, /line 6: agent\.budgets\.max_steps/)
})

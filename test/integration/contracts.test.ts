import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { TOPICS, topicName } from '../../infra/kafka/topics.ts'
import { readTopic, startTestGateway, type TestGateway } from '../helpers/gateway.ts'

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

import assert from 'node:assert/strict'
import path from 'node:path'
import { test } from 'node:test'
import { logLevel } from 'kafkajs'
import { createEmbeddedKafka } from '../../infra/kafka/broker.ts'
import { createKafka } from '../../services/shared/kafka.ts'
import { startTestGateway, validEvent } from '../helpers/gateway.ts'
import { scratchDir, testLogger } from '../helpers/stack.ts'
import { freePort } from '../../infra/ports.ts'


/**
 * The gateway produces to a broker of its own, which this test stops and starts again: while it
 * is down every request gets 503 with retry-after and nothing is acknowledged; after it is back
 * the same events are accepted.
 */
test('Kafka down: 503 with retry-after, nothing acknowledged; back up: accepted', { timeout: 180_000 }, async () => {
  const broker = createEmbeddedKafka({
    dataDir: path.join(scratchDir('outage'), 'kafka'),
    port: await freePort(),
    controllerPort: await freePort(),
    heap: '384m',
    logger: testLogger,
  })
  await broker.start()
  const producerKafka = createKafka({ brokers: broker.brokers, clientId: 'outage-test', logger: testLogger, level: logLevel.NOTHING, retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 500 } })
  const gw = await startTestGateway({ producerKafka, env: { LEDGER_INGEST_ACK_TIMEOUT_MS: '3000' } })
  const post = (body: unknown) =>
    fetch(`${gw.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${gw.keys['acme:emit']}` },
      body: JSON.stringify(body),
    })
  try {
    assert.equal((await post(validEvent())).status, 202)
    await broker.stop()

    const pending = validEvent()
    const res = await post(pending)
    const body = (await res.json()) as { error: { code: string; message: string } }
    assert.equal(res.status, 503)
    assert.equal(body.error.code, 'LEDGER_ERR_KAFKA_UNAVAILABLE')
    assert.ok(Number(res.headers.get('retry-after')) >= 1)

    await broker.start()
    // The client's retry: the same event id, accepted once Kafka is back.
    let status = 0
    for (let i = 0; i < 40 && status !== 202; i++) {
      const again = await post(pending)
      status = again.status
      await again.body?.cancel()
      if (status !== 202) await new Promise((r) => setTimeout(r, 500))
    }
    assert.equal(status, 202)
  } finally {
    await gw.stop()
    await broker.stop()
  }
})

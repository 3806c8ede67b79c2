import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Admin, Kafka } from 'kafkajs'
import { testKafka, unique, waitFor } from '../helpers/stack.ts'

/** The embedded broker is real Apache Kafka: groups, the idempotent producer and transactions work with kafkajs. */
describe('embedded Kafka broker with kafkajs', () => {
  let kafka: Kafka
  let admin: Admin

  before(async () => {
    kafka = testKafka()
    admin = kafka.admin()
    await admin.connect()
  })
  after(async () => {
    await admin.disconnect()
  })

  async function createTopic(partitions = 3): Promise<string> {
    const topic = unique('broker-test')
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: partitions }] })
    return topic
  }

  test('produce and consume through a consumer group, committed offsets resume the group', async () => {
    const topic = await createTopic()
    const groupId = unique('group')
    const producer = kafka.producer()
    await producer.connect()
    await producer.send({ topic, acks: -1, messages: Array.from({ length: 30 }, (_, i) => ({ key: `k${i % 5}`, value: `v${i}` })) })

    const seen: string[] = []
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    await consumer.run({ eachMessage: async ({ message }) => void seen.push(message.value!.toString()) })
    await waitFor(() => seen.length >= 30, 20_000, '30 messages')
    await consumer.disconnect()
    assert.equal(new Set(seen).size, 30)

    // The group committed its offsets: a restart of the group sees only what came after.
    await producer.send({ topic, acks: -1, messages: [{ key: 'k1', value: 'after-restart' }] })
    const later: string[] = []
    const again = kafka.consumer({ groupId, maxWaitTimeInMs: 100 })
    await again.connect()
    await again.subscribe({ topic, fromBeginning: true })
    await again.run({ eachMessage: async ({ message }) => void later.push(message.value!.toString()) })
    await waitFor(() => later.length >= 1, 20_000, 'the message produced after the restart')
    await new Promise((r) => setTimeout(r, 300))
    await again.disconnect()
    await producer.disconnect()
    assert.deepEqual(later, ['after-restart'])
  })

  test('the idempotent producer writes each record once with acks=all', async () => {
    const topic = await createTopic(1)
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    const results = await producer.send({ topic, acks: -1, messages: Array.from({ length: 100 }, (_, i) => ({ key: 'run-1', value: String(i) })) })
    await producer.disconnect()
    assert.equal(results[0]?.errorCode, 0)
    const offsets = await admin.fetchTopicOffsets(topic)
    assert.equal(offsets[0]?.high, '100')
  })

  test('a transactional produce is visible to read_committed consumers only once committed', async () => {
    const topic = await createTopic(1)
    const producer = kafka.producer({ transactionalId: unique('tx'), idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    const aborted = await producer.transaction()
    await aborted.send({ topic, messages: [{ key: 'a', value: 'aborted' }] })
    await aborted.abort()
    const committed = await producer.transaction()
    await committed.send({ topic, messages: [{ key: 'a', value: 'committed-1' }, { key: 'a', value: 'committed-2' }] })
    await committed.commit()
    await producer.disconnect()

    const seen: string[] = []
    const consumer = kafka.consumer({ groupId: unique('tx-reader'), readUncommitted: false, maxWaitTimeInMs: 100 })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    await consumer.run({ eachMessage: async ({ message }) => void seen.push(message.value!.toString()) })
    await waitFor(() => seen.length >= 2, 20_000, 'committed records')
    await new Promise((r) => setTimeout(r, 300))
    await consumer.disconnect()
    assert.deepEqual(seen, ['committed-1', 'committed-2'])
  })
})

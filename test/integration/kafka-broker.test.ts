import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Admin, Kafka, Producer } from 'kafkajs'
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

  test('read_committed never returns a record of an aborted transaction, whatever order transactions end in', async () => {
    // Transactions of several producers aborted in another order than they began, as when the processors of a
    // killed process are fenced one after another by its successor. kafkajs' own filter lets the first one through.
    const topic = await createTopic(1)
    const producers = await Promise.all(
      ['a', 'b', 'c'].map(async (name) => {
        const p = kafka.producer({ transactionalId: unique(`tx-${name}`), idempotent: true, maxInFlightRequests: 1 })
        await p.connect()
        return p
      }),
    )
    const [a, b, c] = producers as [Producer, Producer, Producer]
    const ta = await a.transaction()
    await ta.send({ topic, messages: [{ value: 'a-1 aborted' }] }) // offset 0
    const tb = await b.transaction()
    await tb.send({ topic, messages: [{ value: 'b-1 aborted' }] }) // 1
    await tb.send({ topic, messages: [{ value: 'b-2 aborted' }] }) // 2
    const tc = await c.transaction()
    await tc.send({ topic, messages: [{ value: 'c-1 committed' }] }) // 3
    await tb.abort() // marker 4
    await tc.commit() // marker 5
    await ta.abort() // marker 6
    await a.send({ topic, messages: [{ value: 'plain' }] }) // 7, outside any transaction
    await Promise.all(producers.map((p) => p.disconnect()))

    const read = async (fromOffset?: string) => {
      const groupId = unique('tx-order')
      // Starting at offset 2, both aborted transactions began before the first record fetched.
      if (fromOffset !== undefined) await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: fromOffset }] })
      const seen: string[] = []
      const consumer = kafka.consumer({ groupId, readUncommitted: false, maxWaitTimeInMs: 100 })
      await consumer.connect()
      await consumer.subscribe({ topic, fromBeginning: true })
      await consumer.run({ eachMessage: async ({ message }) => void seen.push(message.value!.toString()) })
      await waitFor(() => seen.includes('plain'), 20_000, 'the last record')
      await consumer.disconnect()
      return seen
    }
    assert.deepEqual(await read(), ['c-1 committed', 'plain'])
    assert.deepEqual(await read('2'), ['c-1 committed', 'plain'])
  })
})

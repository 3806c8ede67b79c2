import type { EachBatchPayload, Kafka, Message, Producer } from 'kafkajs'
import { canonicalJson } from '../../services/shared/canonical-json.ts'
import type { EventCodec } from '../../services/shared/event-codec.ts'
import { createStoppableConsumer, readToEnd, type StoppableConsumer } from '../../services/shared/kafka.ts'
import type { Logger } from '../../services/shared/log.ts'
import { ChangeloggingStore, InMemoryStore, type ChangelogRecord } from '../runtime/store.ts'
import type { DigestRecord, Signer } from './domain/digest.ts'
import { Notary, type NotaryState } from './domain/notary.ts'

export interface NotaryRunnerOptions {
  kafka: Kafka
  codec: Pick<EventCodec, 'decode'>
  eventsTopic: string
  chainTopic: string
  digestsTopic: string
  changelogTopic: string
  deadLetterTopic: string
  groupId: string
  transactionalId: string
  signer: Signer
  /** The signer's public key (SPKI PEM), announced on the digests topic at start. */
  publicKeyPem: string
  /** How often moved chain heads are signed. */
  digestIntervalMs: number
  sessionTimeoutMs?: number
  restoreTimeoutMs?: number
  logger: Logger
  /** The clock of `issued_at` (tests). */
  now?: () => number
  /** Called when the consumer stopped for good (a failure kafkajs does not retry); a deployable exits so it is restarted. */
  onFatal?: (error: Error) => void
}

export interface NotaryRunnerStats {
  events: number
  links: number
  digests: number
  deadLettered: number
  restored: number
  transactions: number
}

export interface NotaryRunner {
  start(): Promise<void>
  /** Stops consuming (the open batch finishes its transaction), signs what moved, then disconnects. */
  stop(): Promise<void>
  /** Signs every head that moved now, in its own transaction (tests and shutdown). */
  signNow(): Promise<DigestRecord[]>
  readonly store: ChangeloggingStore<NotaryState>
  readonly stats: NotaryRunnerStats
  readonly movedRuns: number
}

/**
 * The notary's own thin runner: the domain (`domain/notary.ts`) over a changelogged store, and
 * per batch one Kafka transaction holding the chain links, any digests that fell due, dead
 * letters, the store's changelog records and the consumed offsets. A timer signs moved heads when
 * no events arrive. A crash anywhere aborts the open transaction, so after a restart the store,
 * the chain topic and the offsets agree: the chain continues from the last committed link, with
 * no link written twice and no fork. It is its own runner, not `runtime/kafka-runner.ts`, because
 * digests are emitted by time as well as by events and their transaction has no input offsets.
 */
export function createNotaryRunner(options: NotaryRunnerOptions): NotaryRunner {
  const { kafka, logger, signer } = options
  const log = logger.child({ component: 'notary' })
  const now = options.now ?? Date.now
  const store = new ChangeloggingStore<NotaryState>(new InMemoryStore<NotaryState>())
  let notary = new Notary(store)
  const stats: NotaryRunnerStats = { events: 0, links: 0, digests: 0, deadLettered: 0, restored: 0, transactions: 0 }
  let consumer: StoppableConsumer | undefined
  let producer: Producer | undefined
  let chainPartitions = 1
  let timer: NodeJS.Timeout | undefined
  let lastDigestAt = 0
  // One transaction at a time: batches and timed digests share the producer and the store.
  let queue: Promise<unknown> = Promise.resolve()
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = queue.then(fn, fn)
    queue = next.catch(() => undefined)
    return next
  }

  const digestMessages = (digests: DigestRecord[]): Message[] => digests.map((d) => ({ key: `digest/${d.body.tenant}/${d.body.seq}`, value: canonicalJson(d) }))

  async function commit(parts: { links?: Message[]; digests?: DigestRecord[]; deadLetters?: Message[]; offsets?: { topic: string; partition: number; offset: string } }): Promise<void> {
    const txn = await producer!.transaction()
    try {
      // In slices: kafkajs sends a partition's messages as one record batch, and links (each carrying its
      // event as JSON) are several times the Avro they come from; a batch over the broker's
      // message.max.bytes (1 MiB by default) would be refused for good.
      for (const slice of slices(parts.links ?? [], MAX_SEND_BYTES)) await txn.send({ topic: options.chainTopic, messages: slice })
      if (parts.digests && parts.digests.length > 0) await txn.send({ topic: options.digestsTopic, messages: digestMessages(parts.digests) })
      if (parts.deadLetters && parts.deadLetters.length > 0) await txn.send({ topic: options.deadLetterTopic, messages: parts.deadLetters })
      const changelog = store.drain()
      if (changelog.length > 0) await txn.send({ topic: options.changelogTopic, messages: changelog.map((r) => ({ key: r.key, value: r.value === null ? null : JSON.stringify(r.value) })) })
      if (parts.offsets) await txn.sendOffsets({ consumerGroupId: options.groupId, topics: [{ topic: parts.offsets.topic, partitions: [{ partition: parts.offsets.partition, offset: parts.offsets.offset }] }] })
      await txn.commit()
    } catch (err) {
      // The batch is read again from the last committed offset: the store must forget it, and
      // which runs moved is recomputed from what the store holds now.
      store.rollback()
      notary.recover()
      await txn.abort().catch(() => undefined)
      throw err
    }
    store.commit()
    stats.transactions += 1
    stats.digests += parts.digests?.length ?? 0
  }

  function signDue(force: boolean): DigestRecord[] {
    const at = now()
    if (!force && at - lastDigestAt < options.digestIntervalMs) return []
    if (notary.movedRuns === 0) return []
    lastDigestAt = at
    return notary.digest(at, signer)
  }

  async function handleBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (producer === undefined || batch.messages.length === 0) return
    await exclusive(async () => {
      const links: Message[] = []
      const deadLetters: Message[] = []
      let last: (typeof batch.messages)[number] | undefined
      for (const message of batch.messages) {
        if (!isRunning() || isStale()) break
        last = message
        try {
          const decoded = await options.codec.decode(message.value ?? Buffer.alloc(0))
          const link = notary.append(decoded.json, { partition: batch.partition, offset: message.offset })
          // Same partition number as the event, so one run's links stay in order on one partition.
          links.push({ key: `${link.tenant}/${link.run_id}/${link.seq}`, value: canonicalJson(link), partition: batch.partition % chainPartitions })
        } catch (err) {
          // Never dropped: the record goes to the dead-letter topic with its reason, unchained.
          deadLetters.push({
            key: message.key,
            value: message.value,
            headers: { ...message.headers, 'ledger-dlq-reason': (err as Error).message.slice(0, 1_000), 'ledger-dlq-source': `${batch.topic}/${batch.partition}/${message.offset}`, 'ledger-dlq-processor': 'notary' },
          })
        }
      }
      if (last === undefined) return
      const digests = signDue(false)
      await commit({ links, digests, deadLetters, offsets: { topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() } })
      stats.events += Number(BigInt(last.offset) - BigInt(batch.messages[0]!.offset)) + 1
      stats.links += links.length
      stats.deadLettered += deadLetters.length
      resolveOffset(last.offset)
    })
    await heartbeat()
  }

  async function signNow(): Promise<DigestRecord[]> {
    return exclusive(async () => {
      const digests = signDue(true)
      if (digests.length > 0) await commit({ digests })
      return digests
    })
  }

  return {
    store,
    stats,
    get movedRuns() {
      return notary.movedRuns
    },
    signNow,
    async start() {
      // Fence first: InitProducerId bumps our transactional id's epoch, which fences an earlier
      // instance and makes the coordinator finish its last transaction; only then is the
      // changelog's committed end final. (kafkajs sends InitProducerId on the first transaction.)
      producer = kafka.producer({ transactionalId: options.transactionalId, idempotent: true, maxInFlightRequests: 1, retry: { initialRetryTime: 20, maxRetryTime: 2_000, retries: 12 } })
      await producer.connect()
      await (await producer.transaction()).abort()
      const admin = kafka.admin()
      await admin.connect()
      try {
        const meta = await admin.fetchTopicMetadata({ topics: [options.chainTopic] })
        chainPartitions = Math.max(1, meta.topics[0]?.partitions.length ?? 1)
      } finally {
        await admin.disconnect()
      }
      const records: ChangelogRecord<NotaryState>[] = []
      await readToEnd(kafka, {
        topic: options.changelogTopic,
        groupId: `${options.groupId}.restore.${Date.now()}`,
        readCommitted: true,
        timeoutMs: options.restoreTimeoutMs ?? 120_000,
        onMessage: (message) => {
          if (message.key !== null) records.push({ key: message.key.toString('utf8'), value: message.value === null ? null : (JSON.parse(message.value.toString('utf8')) as NotaryState) })
        },
      })
      store.restore(records)
      notary = new Notary(store)
      stats.restored = records.length
      log.info('notary state restored from the changelog', { records: records.length, keys: store.size, movedRuns: notary.movedRuns, fingerprint: signer.fingerprint })
      // The public key, so readers can find it by the fingerprint in each digest (compacted by key).
      await exclusive(async () => {
        const txn = await producer!.transaction()
        try {
          const announcement = { kind: 'agent-ledger/notary-key', v: 1, algorithm: 'Ed25519', fingerprint: signer.fingerprint, public_key_pem: options.publicKeyPem, announced_at: now() }
          await txn.send({ topic: options.digestsTopic, messages: [{ key: `key/${signer.fingerprint}`, value: canonicalJson(announcement) }] })
          await txn.commit()
        } catch (err) {
          await txn.abort().catch(() => undefined)
          throw err
        }
      })
      lastDigestAt = now()
      const sessionTimeout = options.sessionTimeoutMs ?? 10_000
      consumer = createStoppableConsumer(kafka, { groupId: options.groupId, readUncommitted: false, maxWaitTimeInMs: 50, sessionTimeout, heartbeatInterval: Math.floor(sessionTimeout / 5) })
      consumer.consumer.on(consumer.consumer.events.CRASH, ({ payload }) => {
        if (payload.restart) return
        log.error('the notary stopped consuming after a failure kafkajs does not retry', { error: payload.error.message })
        options.onFatal?.(payload.error)
      })
      await consumer.consumer.connect()
      await consumer.consumer.subscribe({ topic: options.eventsTopic, fromBeginning: true })
      await consumer.consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: handleBatch })
      timer = setInterval(() => {
        if (notary.movedRuns === 0) return
        void exclusive(async () => {
          const digests = signDue(false)
          if (digests.length > 0) await commit({ digests })
        }).catch((err: unknown) => log.error('signing a digest failed; the heads stay moved and are signed next time', { error: (err as Error).message }))
      }, Math.max(50, Math.floor(options.digestIntervalMs / 4)))
    },
    async stop() {
      if (timer) clearInterval(timer)
      await consumer?.stop()
      // What moved before the stop is signed now rather than by the next instance.
      await signNow().catch((err: unknown) => log.warn('final digest failed; the next instance signs those heads', { error: (err as Error).message }))
      await producer?.disconnect()
    },
  }
}

/** The most bytes of links sent in one request (well under the broker's default 1 MiB batch limit). */
const MAX_SEND_BYTES = 512 * 1024

function* slices(messages: Message[], maxBytes: number): Generator<Message[]> {
  let slice: Message[] = []
  let bytes = 0
  for (const m of messages) {
    const size = (typeof m.value === 'string' ? Buffer.byteLength(m.value) : (m.value?.length ?? 0)) + 64
    if (slice.length > 0 && bytes + size > maxBytes) {
      yield slice
      slice = []
      bytes = 0
    }
    slice.push(m)
    bytes += size
  }
  if (slice.length > 0) yield slice
}

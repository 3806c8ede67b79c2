import type { Kafka } from 'kafkajs'
import { TOPICS, topicName } from '../../infra/kafka/topics.ts'
import { createEventCodec } from '../../services/shared/event-codec.ts'
import type { Logger } from '../../services/shared/log.ts'
import type { SinkSource } from '../lineage/lineage-sink.ts'
import { createNotaryRunner, type NotaryRunner } from './notary-runner.ts'
import { notarySinkSources } from './notary-sink.ts'
import type { NotaryKey } from './signing-key.ts'

export interface NotaryHostOptions {
  kafka: Kafka
  registryUrl: string
  topicPrefix: string
  key: NotaryKey
  digestIntervalMs: number
  sessionTimeoutMs?: number
  logger: Logger
  onFatal?: (error: Error) => void
}

/**
 * Starts the notary on the events topic (read_committed): one instance per group, fenced by its
 * transactional id, its state restored from its changelog.
 */
export async function startNotary(options: NotaryHostOptions): Promise<NotaryRunner> {
  const t = (def: (typeof TOPICS)[keyof typeof TOPICS]) => topicName(def, options.topicPrefix)
  const codec = await createEventCodec({ registryUrl: options.registryUrl, topic: t(TOPICS.events), register: false })
  const runner = createNotaryRunner({
    kafka: options.kafka,
    codec,
    eventsTopic: t(TOPICS.events),
    chainTopic: t(TOPICS.notaryChain),
    digestsTopic: t(TOPICS.notaryDigests),
    changelogTopic: t(TOPICS.notaryChangelog),
    deadLetterTopic: t(TOPICS.deadLetter),
    groupId: `${options.topicPrefix}ledger.notary`,
    transactionalId: `${options.topicPrefix}ledger.notary`,
    signer: options.key.signer,
    publicKeyPem: options.key.publicKeyPem,
    digestIntervalMs: options.digestIntervalMs,
    ...(options.sessionTimeoutMs !== undefined ? { sessionTimeoutMs: options.sessionTimeoutMs } : {}),
    logger: options.logger,
    ...(options.onFatal ? { onFatal: options.onFatal } : {}),
  })
  await runner.start()
  return runner
}

/** The notary's chain and digest topics as sources for the lineage sink (`extraSources`). */
export function notarySinkSourcesFor(topicPrefix: string): SinkSource[] {
  return notarySinkSources({ chain: topicName(TOPICS.notaryChain, topicPrefix), digests: topicName(TOPICS.notaryDigests, topicPrefix) })
}

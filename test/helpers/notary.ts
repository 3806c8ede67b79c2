import { ensureTopics, TOPICS } from '../../infra/kafka/topics.ts'
import type { LedgerClickHouse } from '../../services/shared/clickhouse.ts'
import { startLineageSink } from '../../stream-processors/lineage/host.ts'
import type { LineageSink } from '../../stream-processors/lineage/lineage-sink.ts'
import { notarySinkSourcesFor, startNotary } from '../../stream-processors/notary/host.ts'
import type { NotaryRunner } from '../../stream-processors/notary/notary-runner.ts'
import { loadNotaryKey, type NotaryKey } from '../../stream-processors/notary/signing-key.ts'
import type { TestGateway } from './gateway.ts'
import { scratchDir, testLogger } from './stack.ts'

/** Creates the topics the notary and the sink use under a test gateway's prefix. */
export async function ensureNotaryTopics(gw: TestGateway): Promise<void> {
  const admin = gw.kafka.admin()
  await admin.connect()
  await ensureTopics(admin, [TOPICS.notaryChain, TOPICS.notaryDigests, TOPICS.notaryChangelog, TOPICS.deadLetter, TOPICS.control], gw.prefix)
  await admin.disconnect()
}

/** A fresh dev signing key in its own scratch directory. */
export function testNotaryKey(): NotaryKey {
  return loadNotaryKey({}, scratchDir('notary-key'), testLogger)
}

/** The notary on a test gateway's events topic. */
export async function startTestNotary(gw: TestGateway, key: NotaryKey, options: { digestIntervalMs?: number } = {}): Promise<NotaryRunner> {
  await ensureNotaryTopics(gw)
  return startNotary({ kafka: gw.kafka, registryUrl: gw.registryUrl, topicPrefix: gw.prefix, key, digestIntervalMs: options.digestIntervalMs ?? 300, sessionTimeoutMs: 6_000, logger: testLogger })
}

/** The lineage sink with the notary's topics too, writing to `ch`. */
export async function startTestSinkWithNotary(gw: TestGateway, ch: LedgerClickHouse): Promise<LineageSink> {
  await ensureNotaryTopics(gw)
  return startLineageSink({
    kafka: gw.kafka,
    clickhouse: ch,
    registryUrl: gw.registryUrl,
    topicPrefix: gw.prefix,
    maxBatchRecords: 5_000,
    lingerMs: 100,
    sessionTimeoutMs: 10_000,
    logger: testLogger,
    extraSources: notarySinkSourcesFor(gw.prefix),
  })
}

import { migrate } from '../../infra/clickhouse/migrate.ts'
import { ensureTopics, TOPICS } from '../../infra/kafka/topics.ts'
import { createLedgerClickHouse, type LedgerClickHouse } from '../../services/shared/clickhouse.ts'
import { clickhouseEnv, commonEnv, parseConfig } from '../../services/shared/config.ts'
import { startLineageSink } from '../../stream-processors/lineage/host.ts'
import type { LineageSink } from '../../stream-processors/lineage/lineage-sink.ts'
import type { TestGateway } from './gateway.ts'
import { scratchDir, testLogger, unique } from './stack.ts'

let engine: LedgerClickHouse | undefined

/**
 * Embedded chDB for a test: chDB binds one data directory per process, so the tests of a file
 * share one engine, and each gets a migrated database of its own.
 */
export async function testClickHouse(): Promise<LedgerClickHouse> {
  if (engine === undefined) {
    engine = await createLedgerClickHouse(parseConfig(commonEnv.extend(clickhouseEnv.shape), { LEDGER_DATA_DIR: scratchDir('chdb') }))
  }
  const ch = engine.withDatabase(unique('ledger').replace(/-/g, '_'))
  await migrate(ch, testLogger)
  return ch
}

export async function closeTestClickHouse(): Promise<void> {
  await engine?.close()
  engine = undefined
}

/** The lineage sink on a test gateway's topics, writing to `ch`. */
export async function startTestSink(gw: TestGateway, ch: LedgerClickHouse, options: { maxBatchRecords?: number; lingerMs?: number } = {}): Promise<LineageSink> {
  const admin = gw.kafka.admin()
  await admin.connect()
  await ensureTopics(admin, [TOPICS.deadLetter], gw.prefix)
  await admin.disconnect()
  return startLineageSink({
    kafka: gw.kafka,
    clickhouse: ch,
    registryUrl: gw.registryUrl,
    topicPrefix: gw.prefix,
    maxBatchRecords: options.maxBatchRecords ?? 5_000,
    lingerMs: options.lingerMs ?? 100,
    sessionTimeoutMs: 10_000,
    logger: testLogger,
  })
}

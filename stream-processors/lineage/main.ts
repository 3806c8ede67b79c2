import { migrate } from '../../infra/clickhouse/migrate.ts'
import { ensureTopics, TOPICS } from '../../infra/kafka/topics.ts'
import { createLedgerClickHouse } from '../../services/shared/clickhouse.ts'
import { parseConfig, sinkConfigSchema } from '../../services/shared/config.ts'
import { createKafka } from '../../services/shared/kafka.ts'
import { createLogger } from '../../services/shared/log.ts'
import { stopOnSignals } from '../../services/shared/shutdown.ts'
import { startTelemetry } from '../../services/shared/telemetry.ts'
import { resolveDataDir } from '../../infra/paths.ts'
import { lineageSinkOptionsFrom, startLineageSink } from './host.ts'

/**
 * The lineage sink as its own deployable (`npm run sink`): Kafka → ClickHouse. Needs
 * LEDGER_KAFKA_BROKERS and LEDGER_REGISTRY_URL; without LEDGER_CLICKHOUSE_URL it writes to
 * embedded chDB under LEDGER_DATA_DIR. `npm start` runs the same sink in-process.
 */
let config
try {
  config = parseConfig(sinkConfigSchema)
} catch (err) {
  console.error((err as Error).message)
  process.exit(1)
}
const logger = createLogger(config.LEDGER_LOG_LEVEL, { service: 'lineage-sink' })
if (config.LEDGER_KAFKA_BROKERS === undefined || config.LEDGER_REGISTRY_URL === undefined) {
  logger.error('LEDGER_KAFKA_BROKERS and LEDGER_REGISTRY_URL are required to run the sink on its own (npm start embeds it)')
  process.exit(1)
}
const telemetry = await startTelemetry('agent-ledger-lineage-sink')
const kafka = createKafka({ brokers: config.LEDGER_KAFKA_BROKERS.split(','), clientId: `${config.LEDGER_KAFKA_CLIENT_ID}-lineage-sink`, logger })
const admin = kafka.admin()
await admin.connect()
await ensureTopics(admin, Object.values(TOPICS), config.LEDGER_TOPIC_PREFIX, logger)
await admin.disconnect()
const clickhouse = await createLedgerClickHouse(config, resolveDataDir(config.LEDGER_DATA_DIR))
await migrate(clickhouse, logger)
const sink = await startLineageSink(lineageSinkOptionsFrom(config, { kafka, clickhouse, registryUrl: config.LEDGER_REGISTRY_URL, logger }))
logger.info('lineage sink running', { clickhouse: clickhouse.mode })

stopOnSignals(async () => {
  await sink.stop()
  await clickhouse.close()
  await telemetry.shutdown()
}, logger)

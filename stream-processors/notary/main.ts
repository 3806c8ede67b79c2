import { ensureTopics, TOPICS } from '../../infra/kafka/topics.ts'
import { resolveDataDir } from '../../infra/paths.ts'
import { notaryConfigSchema, parseConfig } from '../../services/shared/config.ts'
import { createKafka } from '../../services/shared/kafka.ts'
import { createLogger } from '../../services/shared/log.ts'
import { stopOnSignals } from '../../services/shared/shutdown.ts'
import { startTelemetry } from '../../services/shared/telemetry.ts'
import { startNotary } from './host.ts'
import { loadNotaryKey } from './signing-key.ts'

/**
 * The notary as its own deployable (`npm run notary`): hash chains and signed digests from the
 * events topic. Needs LEDGER_KAFKA_BROKERS and LEDGER_REGISTRY_URL, and in production
 * LEDGER_NOTARY_SIGNING_KEY or LEDGER_NOTARY_SIGNING_KEY_FILE. Run one instance: its
 * transactional id fences any other. `npm start` runs the same notary in-process.
 */
let config
try {
  config = parseConfig(notaryConfigSchema)
} catch (err) {
  console.error((err as Error).message)
  process.exit(1)
}
const logger = createLogger(config.LEDGER_LOG_LEVEL, { service: 'notary' })
if (config.LEDGER_KAFKA_BROKERS === undefined || config.LEDGER_REGISTRY_URL === undefined) {
  logger.error('LEDGER_KAFKA_BROKERS and LEDGER_REGISTRY_URL are required to run the notary on its own (npm start embeds it)')
  process.exit(1)
}
const key = loadNotaryKey(config, resolveDataDir(config.LEDGER_DATA_DIR), logger)
const telemetry = await startTelemetry('agent-ledger-notary')
const kafka = createKafka({ brokers: config.LEDGER_KAFKA_BROKERS.split(','), clientId: `${config.LEDGER_KAFKA_CLIENT_ID}-notary`, logger })
const admin = kafka.admin()
await admin.connect()
await ensureTopics(admin, Object.values(TOPICS), config.LEDGER_TOPIC_PREFIX, logger)
await admin.disconnect()
const notary = await startNotary({
  kafka,
  registryUrl: config.LEDGER_REGISTRY_URL,
  topicPrefix: config.LEDGER_TOPIC_PREFIX,
  key,
  digestIntervalMs: config.LEDGER_NOTARY_DIGEST_INTERVAL_MS,
  sessionTimeoutMs: config.LEDGER_PROCESSOR_SESSION_TIMEOUT_MS,
  logger,
  // Consuming stopped for good: exit, so the supervisor starts a fresh instance from the changelog.
  onFatal: () => process.exit(1),
})
logger.info('notary running', { fingerprint: key.signer.fingerprint, keySource: key.source, digestIntervalMs: config.LEDGER_NOTARY_DIGEST_INTERVAL_MS, restoredRecords: notary.stats.restored })

stopOnSignals(async () => {
  await notary.stop()
  await telemetry.shutdown()
}, logger)

import { ensureTopics, TOPICS } from '../infra/kafka/topics.ts'
import { parseConfig, processorsConfigSchema } from '../services/shared/config.ts'
import { createKafka } from '../services/shared/kafka.ts'
import { createLogger } from '../services/shared/log.ts'
import { stopOnSignals } from '../services/shared/shutdown.ts'
import { startTelemetry } from '../services/shared/telemetry.ts'
import { controlProcessorsOptionsFrom, startControlProcessors } from './host.ts'

/**
 * The budget and kill-switch processors as their own deployable (`npm run processors`). Needs
 * LEDGER_KAFKA_BROKERS and LEDGER_REGISTRY_URL; `npm start` runs the same processors in-process.
 */
const config = parseConfig(processorsConfigSchema)
const logger = createLogger(config.LEDGER_LOG_LEVEL, { service: 'processors' })
if (config.LEDGER_KAFKA_BROKERS === undefined || config.LEDGER_REGISTRY_URL === undefined) {
  logger.error('LEDGER_KAFKA_BROKERS and LEDGER_REGISTRY_URL are required to run the processors on their own (npm start embeds them)')
  process.exit(1)
}
const telemetry = await startTelemetry('agent-ledger-processors')
const kafka = createKafka({ brokers: config.LEDGER_KAFKA_BROKERS.split(','), clientId: `${config.LEDGER_KAFKA_CLIENT_ID}-processors`, logger })
const admin = kafka.admin()
await admin.connect()
await ensureTopics(admin, Object.values(TOPICS), config.LEDGER_TOPIC_PREFIX, logger)
await admin.disconnect()
const processors = await startControlProcessors(controlProcessorsOptionsFrom(config, { kafka, registryUrl: config.LEDGER_REGISTRY_URL, logger }))
logger.info('processors running', { processors: Object.keys(processors.runners) })

stopOnSignals(async () => {
  await processors.stop()
  await telemetry.shutdown()
}, logger)

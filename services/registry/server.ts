import { registryConfigSchema, parseConfig } from '../shared/config.ts'
import { createKafka } from '../shared/kafka.ts'
import { createLogger } from '../shared/log.ts'
import { stopOnSignals } from '../shared/shutdown.ts'
import { startTelemetry } from '../shared/telemetry.ts'
import { createRegistryRuntime } from './runtime.ts'

/**
 * The schema registry as its own deployable (`tsx services/registry/server.ts`). Needs
 * LEDGER_KAFKA_BROKERS; the all-in-one `npm start` embeds the same runtime instead.
 */
const config = parseConfig(registryConfigSchema)
const logger = createLogger(config.LEDGER_LOG_LEVEL, { service: 'schema-registry' })
if (config.LEDGER_KAFKA_BROKERS === undefined) {
  logger.error('LEDGER_KAFKA_BROKERS is required to run the registry on its own (npm start embeds it with a local broker)')
  process.exit(1)
}
const telemetry = await startTelemetry('agent-ledger-schema-registry')
const kafka = createKafka({ brokers: config.LEDGER_KAFKA_BROKERS.split(','), clientId: `${config.LEDGER_KAFKA_CLIENT_ID}-registry`, logger })
const runtime = await createRegistryRuntime({ kafka, topic: `${config.LEDGER_TOPIC_PREFIX}${config.LEDGER_REGISTRY_TOPIC}`, logger })
const url = await runtime.listen(config.LEDGER_REGISTRY_HOST, config.LEDGER_REGISTRY_PORT)
logger.info('schema registry listening', { url })

stopOnSignals(async () => {
  await runtime.stop()
  await telemetry.shutdown()
}, logger)

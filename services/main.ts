import { backboneConfigSchema, parseConfig } from './shared/config.ts'
import { isLedgerError } from './shared/errors.ts'
import { createLogger } from './shared/log.ts'
import { stopOnSignals } from './shared/shutdown.ts'
import { startTelemetry } from './shared/telemetry.ts'
import { startBackbone } from './backbone.ts'

/** `npm start`: the whole backbone on its embedded defaults; Ctrl-C or SIGTERM stops it in order. */
const startedAt = Date.now()
let config
try {
  config = parseConfig(backboneConfigSchema)
} catch (err) {
  console.error((err as Error).message)
  process.exit(1)
}
const logger = createLogger(config.LEDGER_LOG_LEVEL, { service: 'agent-ledger' })
const telemetry = await startTelemetry('agent-ledger')

let backbone
try {
  backbone = await startBackbone(config, logger)
} catch (err) {
  logger.error('start-up failed', { code: isLedgerError(err) ? err.code : undefined, error: (err as Error).message })
  await telemetry.shutdown()
  process.exit(1)
}

const banner = [
  '',
  `Agent Ledger is up in ${((Date.now() - startedAt) / 1000).toFixed(1)} s`,
  ...Object.entries(backbone.endpoints).map(([name, where]) => `  ${name.padEnd(11)} ${where}`),
  ...(backbone.devCredentials
    ? ['', 'Dev API keys for tenant "dev" (shown once; also in LEDGER_DATA_DIR/dev-credentials.txt):', ...Object.entries(backbone.devCredentials).map(([role, key]) => `  ${role.padEnd(6)} ${key}`)]
    : []),
  'Press Ctrl-C to stop.',
  '',
]
process.stdout.write(banner.join('\n') + '\n')

stopOnSignals(async () => {
  await backbone.stop()
  await telemetry.shutdown()
}, logger)

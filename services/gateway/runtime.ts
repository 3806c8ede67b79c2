import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import type { Kafka } from 'kafkajs'
import { TOPICS, topicName } from '../../infra/kafka/topics.ts'
import type { GatewayConfig } from '../shared/config.ts'
import { createEventCodec } from '../shared/event-codec.ts'
import type { Logger } from '../shared/log.ts'
import { addKey, ApiKeyStore, ROLES } from './api-keys.ts'
import { DedupCache } from './dedup-cache.ts'
import { createEventProducer, type EventProducer } from './event-producer.ts'
import type { ContractDeps } from './contract-routes.ts'
import type { ControlDeps } from './control-routes.ts'
import { createControlView } from './control-view.ts'
import { RunControl } from './run-control.ts'
import { createControlCodec } from '../shared/control-codec.ts'
import { createContractsView } from '../../stream-processors/contracts/contracts-view.ts'
import type { IngestDeps } from './ingest-routes.ts'
import { TenantRateLimiter } from './rate-limit.ts'
import { createRedactor } from './redaction.ts'

export type GatewayDeps = IngestDeps & { contracts: ContractDeps; control: ControlDeps }

export interface GatewayRuntime {
  deps: GatewayDeps
  producer: EventProducer
  /** Plaintext dev keys when this start created the key file; shown once. */
  devCredentials?: Record<string, string>
  stop(): Promise<void>
}

/** Loads keys and the redaction key, registers the event schemas, connects the producer. */
export async function createGatewayRuntime(options: { config: GatewayConfig; kafka: Kafka; registryUrl: string; dataDir: string; logger: Logger }): Promise<GatewayRuntime> {
  const { config, dataDir, logger } = options
  const keysFile = config.LEDGER_API_KEYS_FILE ?? path.join(dataDir, 'api-keys.json')
  let devCredentials: Record<string, string> | undefined
  if (!existsSync(keysFile)) {
    if (config.LEDGER_API_KEYS_FILE !== undefined) {
      throw new Error(`LEDGER_API_KEYS_FILE points at ${keysFile}, which does not exist`)
    }
    devCredentials = {}
    for (const role of ROLES) devCredentials[role] = addKey(keysFile, 'dev', role, 'created by the first npm start').key
    const credentialsFile = path.join(dataDir, 'dev-credentials.txt')
    writeFileSync(credentialsFile, Object.entries(devCredentials).map(([r, k]) => `${r}\t${k}`).join('\n') + '\n', { mode: 0o600 })
    logger.warn('created dev API keys for tenant "dev"', { keysFile, credentialsFile })
  }
  const keys = ApiKeyStore.load(keysFile)
  const redactor = createRedactor(redactionKey(config.LEDGER_REDACTION_KEY, dataDir))
  const topic = topicName(TOPICS.events, config.LEDGER_TOPIC_PREFIX)
  const codec = await createEventCodec({ registryUrl: options.registryUrl, topic })
  const producer = createEventProducer({
    kafka: options.kafka,
    topic,
    logger,
    lingerMs: config.LEDGER_INGEST_LINGER_MS,
    maxBatchMessages: 5_000,
    ackTimeoutMs: config.LEDGER_INGEST_ACK_TIMEOUT_MS,
  })
  await producer.start()
  const contractProducer = options.kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await contractProducer.connect()
  // Enforcement: the published contracts and the control topic, read live.
  const contractsView = await createContractsView({ kafka: options.kafka, topic: topicName(TOPICS.contracts, config.LEDGER_TOPIC_PREFIX), logger })
  const controlTopic = topicName(TOPICS.control, config.LEDGER_TOPIC_PREFIX)
  const controlCodec = await createControlCodec({ registryUrl: options.registryUrl, controlTopic, budgetStateTopic: topicName(TOPICS.budgetState, config.LEDGER_TOPIC_PREFIX) })
  const view = await createControlView({ kafka: options.kafka, topic: controlTopic, codec: controlCodec, logger })
  await Promise.all([contractsView.ready(), view.ready()])
  const runControl = new RunControl({ view, contracts: contractsView })
  const deps: GatewayDeps = {
    contracts: { keys, producer: contractProducer, topic: topicName(TOPICS.contracts, config.LEDGER_TOPIC_PREFIX) },
    control: { keys, runControl, view, codec: controlCodec, producer: contractProducer, controlTopic },
    runControl,
    keys,
    codec,
    producer,
    dedup: new DedupCache(config.LEDGER_INGEST_DEDUP_CAPACITY),
    rateLimiter: new TenantRateLimiter((tenant) => keys.tenantSettings(tenant).rate_limit_rps ?? config.LEDGER_RATE_LIMIT_RPS),
    redactor,
    defaultRedaction: config.LEDGER_REDACTION_DEFAULT,
    maxBatch: config.LEDGER_INGEST_MAX_BATCH,
  }
  return {
    deps,
    producer,
    ...(devCredentials ? { devCredentials } : {}),
    stop: async () => {
      await producer.stop()
      await view.stop()
      await contractsView.stop()
      await contractProducer.disconnect()
    },
  }
}

function redactionKey(configured: string | undefined, dataDir: string): Buffer {
  if (configured !== undefined) return Buffer.from(configured, 'hex')
  const file = path.join(dataDir, 'redaction.key')
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true })
    writeFileSync(file, randomBytes(32).toString('hex') + '\n', { mode: 0o600 })
    chmodSync(file, 0o600)
  }
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex')
}

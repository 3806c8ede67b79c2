import path from 'node:path'
import type { Kafka } from 'kafkajs'
import { ensureTopics, TOPICS, topicName } from '../../infra/kafka/topics.ts'
import { addKey, type Role } from '../../services/gateway/api-keys.ts'
import { gatewayPlugin } from '../../services/gateway/gateway-plugin.ts'
import { createGatewayRuntime, type GatewayRuntime } from '../../services/gateway/runtime.ts'
import { createRegistryRuntime, type RegistryRuntime } from '../../services/registry/runtime.ts'
import { gatewayEnv, commonEnv, kafkaEnv, parseConfig, queryEnv } from '../../services/shared/config.ts'
import type { LedgerClickHouse } from '../../services/shared/clickhouse.ts'
import { createLineageStore } from '../../services/query/lineage-store.ts'
import { queryOpenApiPaths } from '../../services/query/query-openapi.ts'
import { queryRoutes } from '../../services/query/query-routes.ts'
import { reportOpenApiPaths } from '../../services/report/report-openapi.ts'
import { reportRoutes } from '../../services/report/report-routes.ts'
import { createReportStore } from '../../services/report/report-store.ts'
import { createEventCodec, type EventCodec } from '../../services/shared/event-codec.ts'
import { closeGracefully, createHttpApp } from '../../services/shared/http-app.ts'
import { writeFileSync, readFileSync } from 'node:fs'
import { ulid } from '../../client/src/ulid.ts'
import { startControlProcessors, type ControlProcessors } from '../../stream-processors/host.ts'
import { scratchDir, testKafka, testLogger, unique } from './stack.ts'

export interface TestGateway {
  url: string
  registryUrl: string
  topic: string
  prefix: string
  kafka: Kafka
  keys: Record<string, string>
  codec: EventCodec
  runtime: GatewayRuntime
  /** The budget and kill-switch processors, when started with `processors: true`. */
  processors?: ControlProcessors
  /** Every `METHOD /path` the app registered, for the OpenAPI check. */
  routes: string[]
  stop(): Promise<void>
}

export interface TestGatewayOptions {
  env?: Record<string, string>
  tenants?: Record<string, { redaction?: 'strict' | 'off'; rate_limit_rps?: number }>
  /** Produce to another cluster than the registry's (fault tests). */
  producerKafka?: Kafka
  /** Also run the budget and kill-switch processors on this prefix. */
  processors?: boolean
  /** Also serve the query API over this ClickHouse (the lineage sink is started separately). */
  query?: LedgerClickHouse
  /** Also serve the report routes over the `query` ClickHouse (the notary is started separately). */
  report?: { digestIntervalMs: number }
}

/** The topics a gateway reads or writes (the processors' own topics are created when they run). */
const GATEWAY_TOPICS = [TOPICS.events, TOPICS.contracts, TOPICS.control, TOPICS.budgetState]

/**
 * A gateway on the real stack: our registry on the test broker, a unique topic prefix, a key
 * file with keys for tenants `acme` and `globex`, listening on a free port.
 */
export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const kafka = testKafka('gateway-test')
  const prefix = `${unique('t')}.`
  const admin = kafka.admin()
  await admin.connect()
  await ensureTopics(admin, options.processors ? Object.values(TOPICS) : GATEWAY_TOPICS, prefix)
  await admin.disconnect()
  if (options.producerKafka) {
    const other = options.producerKafka.admin()
    await other.connect()
    await ensureTopics(other, GATEWAY_TOPICS, prefix)
    await other.disconnect()
  }
  const registry: RegistryRuntime = await createRegistryRuntime({ kafka, topic: `${prefix}_schemas`, logger: testLogger })
  const registryUrl = await registry.listen('127.0.0.1', 0)
  const dir = scratchDir('gateway')
  const keysFile = path.join(dir, 'api-keys.json')
  const keys: Record<string, string> = {}
  const grants: [string, Role][] = [['acme', 'emit'], ['acme', 'read'], ['acme', 'audit'], ['acme', 'admin'], ['globex', 'emit'], ['globex', 'read']]
  for (const [tenant, role] of grants) keys[`${tenant}:${role}`] = addKey(keysFile, tenant, role).key
  if (options.tenants) {
    const file = JSON.parse(readFileSync(keysFile, 'utf8')) as { tenants: Record<string, unknown> }
    file.tenants = options.tenants
    writeFileSync(keysFile, JSON.stringify(file))
  }
  const config = parseConfig(commonEnv.extend(kafkaEnv.shape).extend(gatewayEnv.shape), {
    LEDGER_DATA_DIR: dir,
    LEDGER_TOPIC_PREFIX: prefix,
    LEDGER_API_KEYS_FILE: keysFile,
    LEDGER_REDACTION_KEY: 'ab'.repeat(32),
    ...options.env,
  })
  const processors = options.processors
    ? await startControlProcessors({ kafka, registryUrl, topicPrefix: prefix, tenantLimits: {}, sessionTimeoutMs: 6_000, logger: testLogger, contractWaitMs: 2_000 })
    : undefined
  const runtime = await createGatewayRuntime({ config, kafka: options.producerKafka ?? kafka, registryUrl, dataDir: dir, logger: testLogger })
  const app = createHttpApp({ bodyLimitBytes: config.LEDGER_INGEST_MAX_BODY_BYTES })
  const routes: string[] = []
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) if (m !== 'HEAD') routes.push(`${m} ${r.url}`)
  })
  const openApiPaths = options.query && options.report ? (error: (d: string) => unknown) => ({ ...queryOpenApiPaths(error), ...reportOpenApiPaths(error) }) : queryOpenApiPaths
  await app.register(gatewayPlugin, { ...runtime.deps, ...(options.query ? { openApiPaths } : {}) })
  if (options.query) {
    const store = createLineageStore(options.query, { timeoutMs: 10_000, maxRunEvents: 200_000 })
    await app.register(queryRoutes, { keys: runtime.deps.keys, store, config: parseConfig(queryEnv, options.env ?? {}) })
    if (options.report) {
      const reports = createReportStore(options.query, { timeoutMs: 10_000, maxEvents: 200_000 })
      await app.register(reportRoutes, { keys: runtime.deps.keys, store: reports, lineage: store, digestIntervalMs: options.report.digestIntervalMs })
    }
  }
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  const topic = topicName(TOPICS.events, prefix)
  const codec = await createEventCodec({ registryUrl, topic, register: false })
  return {
    url,
    registryUrl,
    topic,
    prefix,
    kafka,
    keys,
    codec,
    runtime,
    ...(processors ? { processors } : {}),
    routes,
    async stop() {
      await closeGracefully(app, 2_000)
      await runtime.stop()
      await processors?.stop()
      await registry.stop()
    },
  }
}

/**
 * Reads a topic from the beginning (unique group) until `count` records (with `key`, when given)
 * arrived or `timeoutMs` passed, then waits a moment more so a duplicate would show up too.
 */
export async function readTopic(kafka: Kafka, topic: string, count: number, timeoutMs = 20_000, key?: string) {
  const records: { key: string; value: Buffer; headers: Record<string, string>; partition: number; offset: string }[] = []
  const consumer = kafka.consumer({ groupId: unique('reader'), maxWaitTimeInMs: 100 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  let done: () => void
  const finished = new Promise<void>((resolve) => (done = resolve))
  await consumer.run({
    eachMessage: async ({ message, partition }) => {
      if (key !== undefined && message.key?.toString() !== key) return
      records.push({
        key: message.key?.toString() ?? '',
        value: message.value!,
        headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)])),
        partition,
        offset: message.offset,
      })
      if (records.length >= count) done()
    },
  })
  const timer = setTimeout(() => done(), timeoutMs)
  await finished
  clearTimeout(timer)
  // Let a duplicate, if any, arrive too before we stop looking.
  await new Promise((r) => setTimeout(r, 300))
  await consumer.disconnect()
  return records
}

export const validEvent = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  type: 'model.call',
  event_id: ulid(),
  run_id: 'run-test-1',
  step: 1,
  occurred_at: '2026-11-22T10:00:00.000Z',
  agent_name: 'refund-assistant',
  agent_version: '1.4.2',
  principal: { type: 'user', id: 'u-1' },
  provider: 'openai',
  model: 'gpt-4.1',
  input_tokens: 1420,
  output_tokens: 310,
  cost_usd: 0.0123,
  latency_ms: 820,
  ...overrides,
})

export { ulid as ulidLike } from '../../client/src/ulid.ts'

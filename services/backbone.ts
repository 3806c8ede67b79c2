import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Admin, Kafka } from 'kafkajs'
import { migrate } from '../infra/clickhouse/migrate.ts'
import { createEmbeddedKafka, type EmbeddedKafka } from '../infra/kafka/broker.ts'
import { ensureTopics, TOPICS } from '../infra/kafka/topics.ts'
import { resolveDataDir } from '../infra/paths.ts'
import { controlProcessorsOptionsFrom, startControlProcessors } from '../stream-processors/host.ts'
import { lineageSinkOptionsFrom, startLineageSink } from '../stream-processors/lineage/host.ts'
import { startNotary } from '../stream-processors/notary/host.ts'
import { loadNotaryKey } from '../stream-processors/notary/signing-key.ts'
import type { LineageSink } from '../stream-processors/lineage/lineage-sink.ts'
import { queryOpenApiPaths } from './query/query-openapi.ts'
import { createLineageStore } from './query/lineage-store.ts'
import { queryRoutes } from './query/query-routes.ts'
import { reportOpenApiPaths } from './report/report-openapi.ts'
import { reportRoutes } from './report/report-routes.ts'
import { createReportStore } from './report/report-store.ts'
import { gatewayPlugin } from './gateway/gateway-plugin.ts'
import { createGatewayRuntime } from './gateway/runtime.ts'
import { createRegistryRuntime, type RegistryRuntime } from './registry/runtime.ts'
import { closeGracefully, createHttpApp } from './shared/http-app.ts'
import { createLedgerClickHouse, type LedgerClickHouse } from './shared/clickhouse.ts'
import type { BackboneConfig } from './shared/config.ts'
import { healthPlugin } from './shared/health.ts'
import { metricsPlugin, type MetricSample } from './shared/metrics.ts'
import { requireRole } from './gateway/auth.ts'
import { createKafka } from './shared/kafka.ts'
import type { Logger } from './shared/log.ts'

export interface Backbone {
  readonly kafka: Kafka
  readonly brokers: string[]
  readonly registryUrl: string
  readonly clickhouse: LedgerClickHouse
  readonly app: FastifyInstance
  readonly httpUrl: string
  /** Where each part listens or lives, for the start-up banner. */
  readonly endpoints: Record<string, string>
  /** Dev API keys, when this start created the key file. */
  readonly devCredentials?: Record<string, string>
  /** Stops in order: HTTP, consumers, producers, registry, ClickHouse, broker. */
  stop(): Promise<void>
}

/**
 * The whole backbone in one process: each of Kafka, the registry and ClickHouse is embedded
 * unless its variable points elsewhere. Everything started is stopped again if a later step fails.
 */
export async function startBackbone(config: BackboneConfig, logger: Logger): Promise<Backbone> {
  const stack: { name: string; stop: () => Promise<unknown> }[] = []
  const stopAll = async (): Promise<void> => {
    while (stack.length > 0) {
      const part = stack.pop()!
      try {
        await part.stop()
        logger.info('stopped', { part: part.name })
      } catch (err) {
        logger.error('failed to stop cleanly', { part: part.name, error: err })
      }
    }
  }
  const dataDir = resolveDataDir(config.LEDGER_DATA_DIR)
  const endpoints: Record<string, string> = {}
  try {
    // 1. Kafka.
    let brokers: string[]
    let embedded: EmbeddedKafka | undefined
    if (config.LEDGER_KAFKA_BROKERS === undefined) {
      embedded = createEmbeddedKafka({
        dataDir: path.join(dataDir, 'kafka'),
        port: config.LEDGER_EMBEDDED_KAFKA_PORT,
        controllerPort: config.LEDGER_EMBEDDED_KAFKA_CONTROLLER_PORT,
        heap: config.LEDGER_EMBEDDED_KAFKA_HEAP,
        logger,
      })
      await embedded.start()
      stack.push({ name: 'embedded Kafka', stop: () => embedded!.stop() })
      brokers = embedded.brokers
      endpoints.kafka = `${brokers.join(',')} (embedded Apache Kafka, KRaft)`
    } else {
      brokers = config.LEDGER_KAFKA_BROKERS.split(',').map((b) => b.trim())
      endpoints.kafka = `${brokers.join(',')} (external)`
    }
    const kafka = createKafka({ brokers, clientId: config.LEDGER_KAFKA_CLIENT_ID, logger })
    const admin: Admin = kafka.admin()
    await admin.connect()
    stack.push({ name: 'Kafka admin', stop: () => admin.disconnect() })
    await ensureTopics(admin, Object.values(TOPICS), config.LEDGER_TOPIC_PREFIX, logger)

    // 2. Schema registry.
    let registryUrl: string
    let registry: RegistryRuntime | undefined
    if (config.LEDGER_REGISTRY_URL === undefined) {
      registry = await createRegistryRuntime({ kafka, topic: `${config.LEDGER_TOPIC_PREFIX}${config.LEDGER_REGISTRY_TOPIC}`, logger })
      stack.push({ name: 'schema registry', stop: () => registry!.stop() })
      registryUrl = await registry.listen(config.LEDGER_REGISTRY_HOST, config.LEDGER_REGISTRY_PORT)
      endpoints.registry = `${registryUrl} (embedded, topic ${config.LEDGER_TOPIC_PREFIX}${config.LEDGER_REGISTRY_TOPIC})`
    } else {
      registryUrl = config.LEDGER_REGISTRY_URL.replace(/\/$/, '')
      endpoints.registry = `${registryUrl} (external)`
    }

    // 3. ClickHouse.
    const clickhouse = await createLedgerClickHouse(config, dataDir)
    stack.push({ name: 'ClickHouse', stop: () => clickhouse.close() })
    await migrate(clickhouse, logger)
    endpoints.clickhouse =
      clickhouse.mode === 'embedded' ? `chDB at ${path.join(dataDir, 'clickhouse')} (embedded), database ${clickhouse.database}` : `${config.LEDGER_CLICKHOUSE_URL} (server)`

    // 4. Budget and kill-switch processors (unless they run as their own deployment).
    let processors: Awaited<ReturnType<typeof startControlProcessors>> | undefined
    if (config.LEDGER_PROCESSORS_ENABLED) {
      processors = await startControlProcessors(controlProcessorsOptionsFrom(config, { kafka, registryUrl, logger }))
      stack.push({ name: 'budget and kill-switch processors', stop: () => processors!.stop() })
      endpoints.processors = `${Object.keys(processors.runners).join(', ')} (in-process)`
    }

    // 4b. The notary: per-run hash chains and signed digests (unless it runs as its own deployment).
    let notaryFailure: Error | undefined
    if (config.LEDGER_NOTARY_ENABLED) {
      const key = loadNotaryKey(config, dataDir, logger)
      const notary = await startNotary({
        kafka,
        registryUrl,
        topicPrefix: config.LEDGER_TOPIC_PREFIX,
        key,
        digestIntervalMs: config.LEDGER_NOTARY_DIGEST_INTERVAL_MS,
        sessionTimeoutMs: config.LEDGER_PROCESSOR_SESSION_TIMEOUT_MS,
        logger,
        onFatal: (err) => (notaryFailure = err),
      })
      stack.push({ name: 'notary', stop: () => notary.stop() })
      endpoints.notary = `signing key ${key.signer.fingerprint} (${key.file ?? key.source}), a digest every ${config.LEDGER_NOTARY_DIGEST_INTERVAL_MS} ms`
    }

    // 5. Ingest gateway: keys, redaction, schemas registered, idempotent producer.
    const gateway = await createGatewayRuntime({ config, kafka, registryUrl, dataDir, logger })
    stack.push({ name: 'ingest gateway', stop: () => gateway.stop() })

    // 6. The lineage sink: every audit and control record into ClickHouse (after the gateway
    // registered the schemas it decodes with). Stopped before ClickHouse closes.
    let sink: LineageSink | undefined
    if (config.LEDGER_SINK_ENABLED) {
      sink = await startLineageSink(lineageSinkOptionsFrom(config, { kafka, clickhouse, registryUrl, logger }))
      stack.push({ name: 'lineage sink', stop: () => sink!.stop() })
      endpoints.sink = `Kafka → ClickHouse (in-process, batches of up to ${config.LEDGER_SINK_MAX_BATCH}, linger ${config.LEDGER_SINK_LINGER_MS} ms)`
    }

    // 7. HTTP: health, the gateway's and the query API's routes.
    const app = createHttpApp({ bodyLimitBytes: config.LEDGER_INGEST_MAX_BODY_BYTES })
    await app.register(gatewayPlugin, { ...gateway.deps, openApiPaths: (error) => ({ ...queryOpenApiPaths(error), ...reportOpenApiPaths(error) }) })
    const store = createLineageStore(clickhouse, { timeoutMs: config.LEDGER_QUERY_TIMEOUT_MS, maxRunEvents: 200_000 })
    await app.register(queryRoutes, { keys: gateway.deps.keys, store, config })
    const reports = createReportStore(clickhouse, { timeoutMs: config.LEDGER_QUERY_TIMEOUT_MS, maxEvents: 200_000 })
    await app.register(reportRoutes, { keys: gateway.deps.keys, store: reports, lineage: store, digestIntervalMs: config.LEDGER_NOTARY_DIGEST_INTERVAL_MS })
    await app.register(healthPlugin, {
      checks: {
        kafka: async () => {
          const cluster = await admin.describeCluster()
          return { ok: cluster.brokers.length > 0, target: brokers.join(',') }
        },
        schemaRegistry: async () => {
          const res = await fetch(`${registryUrl}/subjects`, { signal: AbortSignal.timeout(1_500) })
          return { ok: res.ok, target: registryUrl, ...(res.ok ? {} : { error: `HTTP ${res.status}` }) }
        },
        ...(config.LEDGER_NOTARY_ENABLED
          ? { notary: async () => ({ ok: notaryFailure === undefined, target: 'hash chains and signed digests', ...(notaryFailure ? { error: `stopped consuming: ${notaryFailure.message}; restart the backbone` } : {}) }) }
          : {}),
        clickhouse: async () => ({ ok: await clickhouse.ping(), target: clickhouse.mode === 'embedded' ? 'chDB (embedded)' : String(config.LEDGER_CLICKHOUSE_URL) }),
        ...(sink
          ? {
              lineageSink: async () => {
                const lag = Object.values(sink!.stats.lag).reduce((a, b) => a + b, 0)
                const failing = sink!.stats.failingSince
                return {
                  ok: failing === undefined,
                  target: `lag ${lag} records, ${sink!.stats.rows} rows written`,
                  ...(failing !== undefined ? { error: `ClickHouse writes failing for ${Math.round((Date.now() - failing) / 1000)} s (retrying; nothing is dropped)` } : {}),
                }
              },
            }
          : {}),
      },
    })
    await app.register(metricsPlugin, {
      authorize: requireRole(gateway.deps.keys, ['admin']),
      collectors: [
        () => [
          { name: 'ledger_ingest_produce_requests_total', help: 'Produce requests the gateway sent to Kafka (acks=all)', type: 'counter', value: gateway.producer.stats.sends },
          { name: 'ledger_ingest_events_total', help: 'Events Kafka acknowledged through the gateway', type: 'counter', value: gateway.producer.stats.messages },
          { name: 'ledger_ingest_produce_failures_total', help: 'Produce requests that failed (answered 503)', type: 'counter', value: gateway.producer.stats.failures },
        ],
        () =>
          Object.entries(processors?.runners ?? {}).flatMap(([name, r]): MetricSample[] => [
            { name: 'ledger_processor_events_total', help: 'Events a processor applied', type: 'counter', value: r.stats.processed, labels: { processor: name } },
            { name: 'ledger_processor_emits_total', help: 'Records a processor emitted (decisions, alerts, state)', type: 'counter', value: r.stats.emitted, labels: { processor: name } },
            { name: 'ledger_processor_dead_letters_total', help: 'Poison records a processor sent to the dead-letter topic', type: 'counter', value: r.stats.deadLettered, labels: { processor: name } },
          ]),
        () => {
          if (sink === undefined) return []
          const s = sink.stats
          return [
            { name: 'ledger_sink_records_total', help: 'Records the lineage sink read', type: 'counter', value: s.records },
            { name: 'ledger_sink_rows_total', help: 'Rows the lineage sink inserted into ClickHouse', type: 'counter', value: s.rows },
            { name: 'ledger_sink_flushes_total', help: 'Flushes (inserts then offset commits)', type: 'counter', value: s.flushes },
            { name: 'ledger_sink_redone_flushes_total', help: 'Logged flushes found unfinished after a restart or rebalance and redone', type: 'counter', value: s.redoneFlushes },
            { name: 'ledger_sink_dead_letters_total', help: 'Records the sink sent to the dead-letter topic', type: 'counter', value: s.deadLettered },
            { name: 'ledger_sink_write_failures_total', help: 'ClickHouse or Kafka writes that failed and were retried', type: 'counter', value: s.insertFailures },
            { name: 'ledger_sink_last_flush_seconds', help: 'Duration of the last flush', type: 'gauge', value: s.lastFlushMs / 1000 },
            { name: 'ledger_sink_last_flush_age_seconds', help: 'Seconds since the last flush', type: 'gauge', value: s.lastFlushAt === undefined ? -1 : (Date.now() - s.lastFlushAt) / 1000 },
            ...Object.entries(s.lag).map(([tp, lag]): MetricSample => ({ name: 'ledger_sink_lag_records', help: 'High watermark minus the next offset to read, per topic partition', type: 'gauge', value: lag, labels: { partition: tp } })),
          ]
        },
      ],
    })
    const httpUrl = await app.listen({ host: config.LEDGER_HTTP_HOST, port: config.LEDGER_HTTP_PORT })
    stack.push({ name: 'HTTP', stop: () => closeGracefully(app, 10_000) })
    endpoints.http = `${httpUrl} (health: ${httpUrl}/healthz)`

    endpoints.ingest = `POST ${httpUrl}/v1/events (OpenAPI: ${httpUrl}/v1/openapi.json)`
    endpoints.query = `GET ${httpUrl}/v1/runs, /v1/actions/{eventId}/lineage, /v1/usage/agent-versions, ...`
    endpoints.reports = `GET ${httpUrl}/v1/runs/{id}/report?format=json|csv|html; public key: GET ${httpUrl}/v1/notary/public-key`
    return { kafka, brokers, registryUrl, clickhouse, app, httpUrl, endpoints, ...(gateway.devCredentials ? { devCredentials: gateway.devCredentials } : {}), stop: stopAll }
  } catch (err) {
    await stopAll()
    throw err
  }
}

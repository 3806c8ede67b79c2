import { z } from 'zod'
import { LedgerError } from './errors.ts'

/**
 * Configuration: every variable shares the `LEDGER_` prefix, each deployable has one zod schema
 * composed from the blocks below, parsed once at start-up and frozen. Each of
 * LEDGER_KAFKA_BROKERS, LEDGER_REGISTRY_URL and LEDGER_CLICKHOUSE_URL switches that part from
 * its embedded default to an external one. The README lists every variable.
 */

const port = z.coerce.number().int().min(0).max(65535)
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()))

export const commonEnv = z.object({
  LEDGER_LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
  LEDGER_DATA_DIR: z.string().min(1).default('.data'),
})

export const kafkaEnv = z.object({
  /** Comma-separated `host:port` list. Unset: the embedded broker is started and used. */
  LEDGER_KAFKA_BROKERS: optionalString,
  LEDGER_KAFKA_CLIENT_ID: z.string().min(1).default('agent-ledger'),
  LEDGER_TOPIC_PREFIX: z.string().regex(/^[a-zA-Z0-9._-]*$/, 'letters, digits, ".", "_" and "-" only').default(''),
  LEDGER_EMBEDDED_KAFKA_PORT: port.default(9092),
  LEDGER_EMBEDDED_KAFKA_CONTROLLER_PORT: port.default(9093),
  LEDGER_EMBEDDED_KAFKA_HEAP: z.string().regex(/^\d+[mg]$/, 'a JVM heap size such as 512m or 1g').default('768m'),
})

export const registryEnv = z.object({
  /** A Confluent-compatible registry. Unset: the embedded registry is started and used. */
  LEDGER_REGISTRY_URL: optionalString,
  LEDGER_REGISTRY_HOST: z.string().min(1).default('127.0.0.1'),
  LEDGER_REGISTRY_PORT: port.default(8081),
  LEDGER_REGISTRY_TOPIC: z.string().min(1).default('_ledger_schemas'),
})

export const clickhouseEnv = z.object({
  /** A ClickHouse server, e.g. http://localhost:8123. Unset: embedded chDB under LEDGER_DATA_DIR/clickhouse. */
  LEDGER_CLICKHOUSE_URL: optionalString,
  LEDGER_CLICKHOUSE_USER: z.string().default('default'),
  LEDGER_CLICKHOUSE_PASSWORD: z.string().default(''),
  LEDGER_CLICKHOUSE_DATABASE: z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'a plain identifier').default('ledger'),
})

export const httpEnv = z.object({
  LEDGER_HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  LEDGER_HTTP_PORT: port.default(8080),
})

export const gatewayEnv = z.object({
  /** JSON file of hashed API keys and tenant settings. Unset: LEDGER_DATA_DIR/api-keys.json, created with dev keys if missing. */
  LEDGER_API_KEYS_FILE: optionalString,
  LEDGER_REDACTION_DEFAULT: z.enum(['strict', 'off']).default('strict'),
  /** Hex (64+ characters) key for redaction hashes. Unset: generated once into LEDGER_DATA_DIR/redaction.key. */
  LEDGER_REDACTION_KEY: optionalString.refine((v) => v === undefined || /^[0-9a-fA-F]{32,}$/.test(v), 'at least 32 hex characters'),
  LEDGER_INGEST_MAX_BODY_BYTES: z.coerce.number().int().min(1024).default(1_048_576),
  LEDGER_INGEST_MAX_BATCH: z.coerce.number().int().min(1).max(10_000).default(1_000),
  LEDGER_INGEST_ACK_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
  LEDGER_INGEST_LINGER_MS: z.coerce.number().min(0).max(1_000).default(2),
  LEDGER_INGEST_DEDUP_CAPACITY: z.coerce.number().int().min(0).default(1_000_000),
  LEDGER_RATE_LIMIT_RPS: z.coerce.number().positive().default(5_000),
})

/** A positive number, or unset (an empty string counts as unset, as compose files write it). */
const optionalPositive = z.preprocess((v) => (v === '' ? undefined : v), z.coerce.number().positive().optional())

export const processorsEnv = z.object({
  /** Run the budget and kill-switch processors inside `npm start`. Off when they run as their own deployment (`npm run processors`). */
  LEDGER_PROCESSORS_ENABLED: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
  /** Tenant-wide cost limits (USD per UTC day and month); unset means none. A breach kills the tenant scope. */
  LEDGER_TENANT_MAX_COST_USD_PER_DAY: optionalPositive,
  LEDGER_TENANT_MAX_COST_USD_PER_MONTH: optionalPositive,
  /** How long a killed processor instance holds its partitions before another takes over. */
  LEDGER_PROCESSOR_SESSION_TIMEOUT_MS: z.coerce.number().int().min(6_000).max(300_000).default(10_000),
})

export const sinkEnv = z.object({
  /** Run the lineage sink inside `npm start`. Off when it runs as its own deployment (`npm run sink`). */
  LEDGER_SINK_ENABLED: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
  /** Records buffered before the sink flushes to ClickHouse (larger: more rows/s; smaller: shorter query stalls in embedded mode). */
  LEDGER_SINK_MAX_BATCH: z.coerce.number().int().min(1).max(1_000_000).default(20_000),
  /** The longest a record waits in the sink's buffer before it is flushed. */
  LEDGER_SINK_LINGER_MS: z.coerce.number().int().min(10).max(60_000).default(250),
  /** How long a killed sink instance holds its partitions before another takes over. */
  LEDGER_SINK_SESSION_TIMEOUT_MS: z.coerce.number().int().min(6_000).max(300_000).default(10_000),
})

export const notaryEnv = z.object({
  /** Run the notary (hash chains and signed digests) inside `npm start`. Off when it runs as its own deployment (`npm run notary`). */
  LEDGER_NOTARY_ENABLED: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
  /** How often the notary signs a digest of the chain heads that moved. */
  LEDGER_NOTARY_DIGEST_INTERVAL_MS: z.coerce.number().int().min(100).max(3_600_000).default(5_000),
  /** The Ed25519 signing key: PKCS#8 PEM, or the 32-byte seed as 64 hex characters. */
  LEDGER_NOTARY_SIGNING_KEY: optionalString,
  /** A file holding the signing key. With neither set, a dev key is generated once into LEDGER_DATA_DIR. */
  LEDGER_NOTARY_SIGNING_KEY_FILE: optionalString,
})

export const queryEnv = z.object({
  /** Server-side time limit of one query API call's ClickHouse queries. */
  LEDGER_QUERY_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(10_000),
  /** The largest page a list or search may ask for (`limit`). */
  LEDGER_QUERY_MAX_LIMIT: z.coerce.number().int().min(1).max(100_000).default(1_000),
  /** The widest time range a search may span, in days. */
  LEDGER_QUERY_MAX_RANGE_DAYS: z.coerce.number().int().min(1).max(3_660).default(400),
})

/** `npm start`: the whole backbone in one process. */
export const backboneConfigSchema = commonEnv
  .extend(kafkaEnv.shape)
  .extend(registryEnv.shape)
  .extend(clickhouseEnv.shape)
  .extend(httpEnv.shape)
  .extend(gatewayEnv.shape)
  .extend(processorsEnv.shape)
  .extend(sinkEnv.shape)
  .extend(queryEnv.shape)
  .extend(notaryEnv.shape)
export type BackboneConfig = Readonly<z.infer<typeof backboneConfigSchema>>

/** `stream-processors/main.ts`: the budget and kill-switch processors on their own. */
export const processorsConfigSchema = commonEnv.extend(kafkaEnv.shape).extend(registryEnv.shape).extend(processorsEnv.shape)
export type ProcessorsConfig = Readonly<z.infer<typeof processorsConfigSchema>>

/** `stream-processors/lineage/main.ts`: the lineage sink on its own. */
export const sinkConfigSchema = commonEnv.extend(kafkaEnv.shape).extend(registryEnv.shape).extend(clickhouseEnv.shape).extend(sinkEnv.shape)
export type SinkConfig = Readonly<z.infer<typeof sinkConfigSchema>>

/** `stream-processors/notary/main.ts`: the notary on its own. */
export const notaryConfigSchema = commonEnv
  .extend(kafkaEnv.shape)
  .extend(registryEnv.shape)
  .extend(notaryEnv.shape)
  .extend(processorsEnv.pick({ LEDGER_PROCESSOR_SESSION_TIMEOUT_MS: true }).shape)
export type NotaryConfig = Readonly<z.infer<typeof notaryConfigSchema>>

/** `services/registry/server.ts`: the schema registry on its own. */
export const registryConfigSchema = commonEnv.extend(kafkaEnv.shape).extend(registryEnv.shape)
export type RegistryConfig = Readonly<z.infer<typeof registryConfigSchema>>

export type KafkaConfig = Readonly<z.infer<typeof kafkaEnv>>
export type GatewayConfig = Readonly<z.infer<typeof gatewayEnv> & z.infer<typeof commonEnv> & z.infer<typeof kafkaEnv>>
export type QueryConfig = Readonly<z.infer<typeof queryEnv>>
export type ClickHouseConfig = Readonly<z.infer<typeof clickhouseEnv> & z.infer<typeof commonEnv>>

/** Parses `env` once against `schema`; throws LEDGER_ERR_CONFIG naming every bad variable. */
export function parseConfig<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): Readonly<z.infer<S>> {
  const result = schema.safeParse(env)
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')
    throw new LedgerError('LEDGER_ERR_CONFIG', `invalid configuration: ${problems}`)
  }
  return Object.freeze(result.data) as Readonly<z.infer<S>>
}

/** Variables that only configure embedded parts; an external deployment has no use for them. */
export const EMBEDDED_ONLY_VARIABLES = [
  'LEDGER_EMBEDDED_KAFKA_PORT',
  'LEDGER_EMBEDDED_KAFKA_CONTROLLER_PORT',
  'LEDGER_EMBEDDED_KAFKA_HEAP',
  'LEDGER_REGISTRY_HOST',
  'LEDGER_REGISTRY_PORT',
] as const

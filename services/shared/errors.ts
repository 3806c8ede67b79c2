/**
 * One base error for the whole backbone. Retry logic reads only `retriable`;
 * HTTP layers read only `statusCode`. Every code lives in {@link ERROR_CATALOG}
 * and a unit test checks that each one is documented in the README.
 */
export const ERROR_CATALOG = {
  LEDGER_ERR_CONFIG: { status: 500, retriable: false, doc: 'A configuration variable is missing or invalid; the process refuses to start.' },
  LEDGER_ERR_KAFKA_UNAVAILABLE: { status: 503, retriable: true, doc: 'Kafka did not acknowledge in time; nothing was acknowledged to the caller.' },
  LEDGER_ERR_BROKER_FETCH: { status: 500, retriable: false, doc: 'The embedded Kafka broker could not be fetched with Maven.' },
  LEDGER_ERR_BROKER_START: { status: 500, retriable: false, doc: 'The embedded Kafka broker did not start or did not answer in time.' },
  LEDGER_ERR_CLICKHOUSE: { status: 503, retriable: true, doc: 'ClickHouse (server or chDB) failed a query; classified at the adapter edge.' },
  LEDGER_ERR_CLICKHOUSE_TIMEOUT: { status: 503, retriable: true, doc: 'A ClickHouse query exceeded its time limit.' },
  LEDGER_ERR_MIGRATION: { status: 500, retriable: false, doc: 'A ClickHouse migration failed to apply.' },
  LEDGER_ERR_REGISTRY_UNAVAILABLE: { status: 503, retriable: true, doc: 'The schema registry could not be reached or did not answer.' },
  LEDGER_ERR_SCHEMA_INCOMPATIBLE: { status: 409, retriable: false, doc: 'A schema is incompatible with earlier versions under the subject compatibility level.' },
  LEDGER_ERR_AUTH_MISSING: { status: 401, retriable: false, doc: 'No API key was sent (header `authorization: Bearer <key>`).' },
  LEDGER_ERR_AUTH_INVALID: { status: 401, retriable: false, doc: 'The API key is unknown or revoked.' },
  LEDGER_ERR_FORBIDDEN: { status: 403, retriable: false, doc: 'The key is valid but its role or tenant does not allow this request.' },
  LEDGER_ERR_INGEST_VALIDATION: { status: 400, retriable: false, doc: 'An event failed validation; the message names the event index and field path.' },
  LEDGER_ERR_INGEST_BODY: { status: 400, retriable: false, doc: 'The request body is not valid JSON or not an event / array of events.' },
  LEDGER_ERR_INGEST_TOO_LARGE: { status: 413, retriable: false, doc: 'The request body or batch is larger than the configured limit.' },
  LEDGER_ERR_INGEST_MEDIA_TYPE: { status: 415, retriable: false, doc: 'The request body is not `application/json`.' },
  LEDGER_ERR_INGEST_DUPLICATE: { status: 409, retriable: false, doc: 'The same event id appears twice in one batch with different content.' },
  LEDGER_ERR_CONTRACT_INVALID: { status: 400, retriable: false, doc: 'An agent contract failed validation; the message names the line and field of each problem.' },
  LEDGER_ERR_RATE_LIMITED: { status: 429, retriable: true, doc: 'The tenant exceeded its request rate; retry after the `retry-after` seconds.' },
  LEDGER_ERR_NOT_FOUND: { status: 404, retriable: false, doc: 'No such route or object for this tenant.' },
  LEDGER_ERR_INTERNAL: { status: 500, retriable: true, doc: 'An unexpected failure inside the backbone; logged with its cause. No user input should reach it.' },
  LEDGER_ERR_QUERY_LIMIT: { status: 422, retriable: false, doc: 'A valid query exceeded its time or size limit; narrow the time range or add filters.' },
  LEDGER_ERR_REPORT_NOT_READY: { status: 503, retriable: true, doc: 'The run exists but no signed digest covers its chain yet (the notary signs every LEDGER_NOTARY_DIGEST_INTERVAL_MS); retry after `retry-after` seconds.' },
  LEDGER_ERR_BAD_REQUEST: { status: 400, retriable: false, doc: 'A query parameter or path parameter is invalid; the message names it.' },
} as const satisfies Record<string, { status: number; retriable: boolean; doc: string }>

export type LedgerErrorCode = keyof typeof ERROR_CATALOG

export interface LedgerErrorContext {
  topic?: string
  partition?: number
  runId?: string
  tenant?: string
  field?: string
  [key: string]: unknown
}

export interface LedgerErrorOptions {
  cause?: unknown
  context?: LedgerErrorContext
  /** Overrides the catalog's default for this one error. */
  retriable?: boolean
}

export class LedgerError extends Error {
  readonly code: LedgerErrorCode
  readonly retriable: boolean
  readonly statusCode: number
  readonly context: LedgerErrorContext

  constructor(code: LedgerErrorCode, message: string, options: LedgerErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'LedgerError'
    this.code = code
    this.statusCode = ERROR_CATALOG[code].status
    this.retriable = options.retriable ?? ERROR_CATALOG[code].retriable
    this.context = options.context ?? {}
  }
}

export function isLedgerError(err: unknown): err is LedgerError {
  return err instanceof LedgerError
}

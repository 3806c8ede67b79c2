import { mkdirSync } from 'node:fs'
import { Readable } from 'node:stream'
import path from 'node:path'
import { createClient, type ClickHouseClient } from '@clickhouse/client'
import { LedgerError } from './errors.ts'
import type { ClickHouseConfig } from './config.ts'

/**
 * The one access layer over ClickHouse. With LEDGER_CLICKHOUSE_URL set it talks to a server;
 * without it, to embedded chDB (data on disk under LEDGER_DATA_DIR/clickhouse) through
 * `@clickhouse/client`'s connection hook, so the same SQL runs in both. Table names are always
 * qualified with `database` because chDB ignores the client's default-database setting.
 */
export interface LedgerClickHouse {
  readonly mode: 'embedded' | 'server'
  readonly database: string
  readonly client: ClickHouseClient
  query<T>(sql: string, params?: Record<string, unknown>, options?: QueryOptions): Promise<T[]>
  command(sql: string, params?: Record<string, unknown>): Promise<void>
  insert(table: string, rows: readonly Record<string, unknown>[], settings?: Record<string, string | number>): Promise<void>
  ping(): Promise<boolean>
  /** The same engine and connection, addressing another database (closing it closes nothing). */
  withDatabase(database: string): LedgerClickHouse
  close(): Promise<void>
}

export interface QueryOptions {
  /** Server-side limit on execution time, in seconds. */
  maxExecutionTimeSec?: number
  /** Server-side limit on rows read. */
  maxResultRows?: number
}

type RawInsert = (params: { table: string; values: string; format: 'TabSeparated'; columns: readonly string[]; settings?: Record<string, string | number | boolean> }) => Promise<unknown>

/**
 * Rows as ClickHouse TabSeparated text: the union of the rows' keys as the column list; strings
 * escaped (backslash, tab, newline, carriage return); null and absent values as \N. Only
 * strings, numbers, bigints, booleans and null are accepted: anything else is a bug upstream.
 */
export function toTabSeparated(rows: readonly Record<string, unknown>[]): { columns: string[]; text: string } {
  const index = new Map<string, number>()
  for (const row of rows) for (const k in row) if (!index.has(k)) index.set(k, index.size)
  const columns = [...index.keys()]
  const cells: string[] = new Array(columns.length)
  let text = ''
  for (const row of rows) {
    cells.fill('\\N')
    for (const k in row) cells[index.get(k)!] = tsvValue(row[k], k)
    text += cells.join('\t') + '\n'
  }
  return { columns, text }
}

const TSV_SPECIAL = /[\\\t\n\r]/
function tsvValue(v: unknown, column: string): string {
  switch (typeof v) {
    case 'string':
      return TSV_SPECIAL.test(v) ? v.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r') : v
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError(`${column}: ${v} cannot be stored`)
      return String(v)
    case 'bigint':
      return String(v)
    case 'boolean':
      return v ? '1' : '0'
    case 'undefined':
      return '\\N'
    default:
      if (v === null) return '\\N'
      throw new TypeError(`${column}: a ${Array.isArray(v) ? 'array' : typeof v} cannot be stored as a column value`)
  }
}

export async function createLedgerClickHouse(config: ClickHouseConfig, baseDir?: string): Promise<LedgerClickHouse> {
  const database = config.LEDGER_CLICKHOUSE_DATABASE
  let client: ClickHouseClient
  let mode: 'embedded' | 'server'
  let rawInsert: RawInsert | undefined
  if (config.LEDGER_CLICKHOUSE_URL !== undefined) {
    mode = 'server'
    client = createClient({
      url: config.LEDGER_CLICKHOUSE_URL,
      username: config.LEDGER_CLICKHOUSE_USER,
      password: config.LEDGER_CLICKHOUSE_PASSWORD,
      request_timeout: 30_000,
      clickhouse_settings: { date_time_input_format: 'best_effort' },
    })
  } else {
    mode = 'embedded'
    const dataPath = path.resolve(baseDir ?? config.LEDGER_DATA_DIR, 'clickhouse')
    mkdirSync(dataPath, { recursive: true })
    // chDB binds one data directory per process; imported lazily so a server deployment never loads it.
    const { createChdbConnection } = await import('chdb/connection')
    const connection = createChdbConnection({ path: dataPath })
    client = createClient({ connection } as unknown as Parameters<typeof createClient>[0])
    // The client's insert path re-serializes rows and inlines them into the statement text; chDB's
    // raw insert hands one buffer to its parallel parser instead (about 1.5× the rows per second).
    rawInsert = (params) => connection.chdb.rawInsert(params)
  }
  return bind(client, mode, database, rawInsert, () => client.close())
}

function bind(client: ClickHouseClient, mode: 'embedded' | 'server', database: string, rawInsert: RawInsert | undefined, close: () => Promise<void>): LedgerClickHouse {
  const ch: LedgerClickHouse = {
    mode,
    database,
    client,
    async query<T>(sql: string, params: Record<string, unknown> = {}, options: QueryOptions = {}): Promise<T[]> {
      const settings: Record<string, string | number> = {}
      if (options.maxExecutionTimeSec !== undefined) settings.max_execution_time = options.maxExecutionTimeSec
      if (options.maxResultRows !== undefined) {
        settings.max_result_rows = options.maxResultRows
        settings.result_overflow_mode = 'throw'
      }
      try {
        const rs = await client.query({ query: sql, query_params: params, format: 'JSONEachRow', clickhouse_settings: settings })
        return await rs.json<T>()
      } catch (err) {
        throw classifyClickHouseError(err, sql)
      }
    },
    async command(sql: string, params: Record<string, unknown> = {}): Promise<void> {
      try {
        await client.command({ query: sql, query_params: params })
      } catch (err) {
        throw classifyClickHouseError(err, sql)
      }
    },
    async insert(table: string, rows: readonly Record<string, unknown>[], settings: Record<string, string | number> = {}): Promise<void> {
      if (rows.length === 0) return
      // Tab-separated text with a column list: about half the bytes of JSONEachRow (no key per
      // value, JSON inside strings needs no quoting) and twice the rows/s into ClickHouse.
      // A column a row leaves out is \N, which ClickHouse reads as the column's default.
      const { columns, text } = toTabSeparated(rows)
      try {
        if (rawInsert !== undefined) {
          await rawInsert({ table: `${database}.${table}`, values: text, format: 'TabSeparated', columns, settings })
        } else {
          await client.insert({ table: `${database}.${table}`, values: Readable.from([Buffer.from(text)], { objectMode: false }), format: 'TabSeparated', columns: columns as [string, ...string[]], clickhouse_settings: settings })
        }
      } catch (err) {
        throw classifyClickHouseError(err, `INSERT INTO ${database}.${table}`)
      }
    },
    async ping(): Promise<boolean> {
      try {
        const rows = await ch.query<{ ok: number }>('SELECT 1 AS ok')
        return rows[0]?.ok === 1
      } catch {
        return false
      }
    },
    withDatabase(other: string): LedgerClickHouse {
      return bind(client, mode, other, rawInsert, async () => undefined)
    },
    close,
  }
  return ch
}

/** ClickHouse error codes after which the same statement may succeed later. */
const RETRIABLE_CODES = new Set([159, 209, 210, 241, 242, 252, 285, 319, 425, 999, 1000])

export function classifyClickHouseError(err: unknown, sql: string): LedgerError {
  if (err instanceof LedgerError) return err
  const e = err as { code?: string | number; clickhouseCode?: number; message?: string; type?: string }
  const message = e.message ?? String(err)
  const numeric = Number(e.clickhouseCode ?? e.code)
  const statement = sql.replace(/\s+/g, ' ').slice(0, 120)
  if (numeric === 159 || /timeout|timed out/i.test(message)) {
    return new LedgerError('LEDGER_ERR_CLICKHOUSE_TIMEOUT', `ClickHouse query timed out: ${message}`, { cause: err, context: { statement } })
  }
  const network = /ECONNRESET|ECONNREFUSED|socket hang up|EPIPE/i.test(message)
  const retriable = network || (Number.isFinite(numeric) && RETRIABLE_CODES.has(numeric))
  return new LedgerError('LEDGER_ERR_CLICKHOUSE', `ClickHouse: ${message}`, { cause: err, retriable, context: { statement } })
}

import type { LedgerClickHouse, QueryOptions } from '../shared/clickhouse.ts'
import { LedgerError } from '../shared/errors.ts'
import type { DigestBody, DigestHead } from '../../stream-processors/notary/domain/digest.ts'
import type { ChainedEvent, StoredDigest } from './run-report.ts'

/**
 * The report's ClickHouse reads (the notary's tables, written by the lineage sink), each scoped to
 * one tenant, parameterized, under the query time limit. Reads use FINAL: a link or digest the
 * sink wrote twice is one row.
 */
export interface ReportStoreOptions {
  timeoutMs: number
  /** The most events one report carries. */
  maxEvents: number
}

export interface NotaryPublicKey {
  fingerprint: string
  algorithm: string
  public_key_pem: string
  announced_at: number
}

export function createReportStore(ch: LedgerClickHouse, options: ReportStoreOptions) {
  const db = ch.database
  const limits: QueryOptions = { maxExecutionTimeSec: Math.max(1, Math.ceil(options.timeoutMs / 1000)) }
  const query = <T>(sql: string, params: Record<string, unknown>) =>
    ch.query<T>(sql, params, limits).catch((err: unknown) => {
      if (err instanceof LedgerError && err.code === 'LEDGER_ERR_CLICKHOUSE_TIMEOUT') throw new LedgerError('LEDGER_ERR_QUERY_LIMIT', 'the report query exceeded its time limit', { cause: err })
      throw err
    })

  return {
    /** The run's chain in seq order, as far as it is contiguous from seq 0, with each event's stored canonical JSON. */
    async chain(tenant: string, runId: string): Promise<{ events: ChainedEvent[]; canonical: string[] }> {
      const rows = await query<{ seq: string | number; event_hash: string; chain_hash: string; payload: string }>(
        `SELECT seq, event_hash, chain_hash, payload FROM ${db}.notary_chain FINAL WHERE tenant = {tenant:String} AND run_id = {run:String} ORDER BY seq LIMIT {n:UInt32}`,
        { tenant, run: runId, n: options.maxEvents + 1 },
      )
      if (rows.length > options.maxEvents) throw new LedgerError('LEDGER_ERR_QUERY_LIMIT', `the run has more than ${options.maxEvents} events, more than one report carries`)
      const events: ChainedEvent[] = []
      const canonical: string[] = []
      for (const r of rows) {
        const seq = Number(r.seq)
        // A gap means the sink has not written every link yet: the report stops before it.
        if (seq !== events.length) break
        events.push({ seq, event_hash: r.event_hash, chain_hash: r.chain_hash, event: JSON.parse(r.payload) as Record<string, unknown> })
        canonical.push(r.payload)
      }
      return { events, canonical }
    },

    /** The digests that covered a head of the run: digest seq and covered chain seq. */
    async coveringDigests(tenant: string, runId: string): Promise<{ digest_seq: number; seq: number }[]> {
      const rows = await query<{ digest_seq: string | number; seq: string | number }>(
        `SELECT digest_seq, seq FROM ${db}.notary_digest_heads FINAL WHERE tenant = {tenant:String} AND run_id = {run:String} ORDER BY digest_seq LIMIT 1000000`,
        { tenant, run: runId },
      )
      return rows.map((r) => ({ digest_seq: Number(r.digest_seq), seq: Number(r.seq) }))
    },

    /** The tenant's digests from..to (inclusive), in seq order; heads only for those in `withHeads`. */
    async digests(tenant: string, from: number, to: number, withHeads: readonly number[]): Promise<StoredDigest[]> {
      const rows = await query<{ seq: string | number; body: string; signature: string; heads: string }>(
        `SELECT seq, body, signature, if(seq IN {wh:Array(UInt64)}, heads, '') AS heads FROM ${db}.notary_digests FINAL
         WHERE tenant = {tenant:String} AND seq >= {from:UInt64} AND seq <= {to:UInt64} ORDER BY seq LIMIT 1000000`,
        { tenant, from, to, wh: withHeads },
      )
      return rows.map((r) => ({ body: JSON.parse(r.body) as DigestBody, signature: r.signature, heads: r.heads === '' ? null : (JSON.parse(r.heads) as DigestHead[]) }))
    },

    /** Whether the tenant has any event of the run (a run the notary has not chained yet). */
    async runExists(tenant: string, runId: string): Promise<boolean> {
      const rows = await query<{ n: string | number }>(`SELECT count() AS n FROM ${db}.events WHERE tenant = {tenant:String} AND run_id = {run:String} LIMIT 1`, { tenant, run: runId })
      return Number(rows[0]?.n ?? 0) > 0
    },

    async publicKeys(): Promise<NotaryPublicKey[]> {
      const rows = await query<{ fingerprint: string; algorithm: string; public_key_pem: string; announced_ms: string | number }>(
        `SELECT fingerprint, algorithm, public_key_pem, toUnixTimestamp64Milli(announced_at) AS announced_ms FROM ${db}.notary_keys FINAL ORDER BY announced_at DESC LIMIT 100`,
        {},
      )
      return rows.map((r) => ({ fingerprint: r.fingerprint, algorithm: r.algorithm, public_key_pem: r.public_key_pem, announced_at: Number(r.announced_ms) }))
    },
  }
}

export type ReportStore = ReturnType<typeof createReportStore>

import type { LedgerClickHouse, QueryOptions } from '../shared/clickhouse.ts'
import { LedgerError } from '../shared/errors.ts'
import type { EventRef } from './action-lineage.ts'
import type { TimeRange } from './query-params.ts'

/**
 * Every ClickHouse query of the query API, parameterized (values are bound, never spliced), each
 * scoped to one tenant, each under the configured time and size limits. Times go in and come out
 * as epoch milliseconds.
 *
 * Reading ReplacingMergeTree correctly: a row delivered twice (should the sink's insert tokens
 * ever miss) sits in two parts until a merge, and both copies are identical. Reads collapse them
 * with `LIMIT 1 BY <id>` rather than FINAL: the same answer, without FINAL's merge of every part
 * the key range touches (measured at 100M events: FINAL doubled a run timeline's median).
 */
export interface LineageStoreOptions {
  timeoutMs: number
  /** The most events of one run lineage reads (every other query has its own LIMIT). */
  maxRunEvents: number
}

type Row = Record<string, unknown>
const ms = (v: unknown) => Number(v)

export interface RunRow {
  run_id: string
  started_at: number
  agent_name: string
  agent_version: string
  principal: { type: string; id: string }
  owner: string
  autonomy_mode: string
  contract_version: string
  trace_id: string
  started_event_id: string
}

export interface RunFilters {
  agent?: string | undefined
  version?: string | undefined
  principal?: string | undefined
  principal_type?: string | undefined
  outcome?: string | undefined
}

export interface ActionFilters {
  principal?: string | undefined
  tool?: string | undefined
  policy?: string | undefined
  decision?: string | undefined
  status?: string | undefined
  action_class?: string | undefined
  agent?: string | undefined
  version?: string | undefined
}

export function createLineageStore(ch: LedgerClickHouse, options: LineageStoreOptions) {
  const db = ch.database
  // Result size is bounded by a LIMIT in every statement (max_result_rows would also count the
  // rows of IN subqueries, which may rightly be many); time by max_execution_time.
  const limits: QueryOptions = { maxExecutionTimeSec: Math.max(1, Math.ceil(options.timeoutMs / 1000)) }
  const query = <T = Row>(sql: string, params: Record<string, unknown>) => ch.query<T>(sql, params, limits).catch((err: unknown) => Promise.reject(toQueryError(err)))

  const runColumns = `run_id, toUnixTimestamp64Milli(started_at) AS started_ms, agent_name, agent_version, principal_type, principal_id, owner, autonomy_mode, contract_version, trace_id, started_event_id`
  const toRun = (r: Row): RunRow => ({
    run_id: String(r.run_id),
    started_at: ms(r.started_ms),
    agent_name: String(r.agent_name),
    agent_version: String(r.agent_version),
    principal: { type: String(r.principal_type), id: String(r.principal_id) },
    owner: String(r.owner),
    autonomy_mode: String(r.autonomy_mode),
    contract_version: String(r.contract_version),
    trace_id: String(r.trace_id),
    started_event_id: String(r.started_event_id),
  })

  return {
    /** Runs started in the range, newest first, after the cursor (started_at, run_id). */
    async listRuns(tenant: string, filters: RunFilters, range: TimeRange, limit: number, after?: [number, string]): Promise<RunRow[]> {
      const where = ['tenant = {tenant:String}', 'started_at >= fromUnixTimestamp64Milli({from:Int64})', 'started_at < fromUnixTimestamp64Milli({to:Int64})']
      const params: Record<string, unknown> = { tenant, from: range.from, to: range.to, limit }
      if (filters.agent !== undefined) (where.push('agent_name = {agent:String}'), (params.agent = filters.agent))
      if (filters.version !== undefined) (where.push('agent_version = {version:String}'), (params.version = filters.version))
      if (filters.principal !== undefined) (where.push('principal_id = {principal:String}'), (params.principal = filters.principal))
      if (filters.principal_type !== undefined) (where.push('principal_type = {ptype:String}'), (params.ptype = filters.principal_type))
      if (filters.outcome === 'running') where.push(`run_id NOT IN (SELECT run_id FROM ${db}.run_endings WHERE tenant = {tenant:String})`)
      else if (filters.outcome !== undefined) (where.push(`run_id IN (SELECT run_id FROM ${db}.run_endings WHERE tenant = {tenant:String} AND outcome = {outcome:String})`), (params.outcome = filters.outcome))
      if (after !== undefined) (where.push('(started_at, run_id) < (fromUnixTimestamp64Milli({ct:Int64}), {cr:String})'), (params.ct = after[0]), (params.cr = after[1]))
      const rows = await query(`SELECT ${runColumns} FROM ${db}.runs WHERE ${where.join(' AND ')} ORDER BY started_at DESC, run_id DESC LIMIT 1 BY run_id LIMIT {limit:UInt32}`, params)
      return rows.map(toRun)
    },

    async getRun(tenant: string, runId: string): Promise<RunRow | undefined> {
      const rows = await query(`SELECT ${runColumns} FROM ${db}.runs WHERE tenant = {tenant:String} AND run_id = {run:String} LIMIT 1`, { tenant, run: runId })
      return rows[0] === undefined ? undefined : toRun(rows[0])
    },

    /** How the runs ended, by run id. */
    async endings(tenant: string, runIds: readonly string[]): Promise<Map<string, { outcome: string; ended_at: number; ended_event_id: string }>> {
      if (runIds.length === 0) return new Map()
      const rows = await query(
        `SELECT run_id, outcome, toUnixTimestamp64Milli(ended_at) AS ended_ms, ended_event_id FROM ${db}.run_endings WHERE tenant = {tenant:String} AND run_id IN {runs:Array(String)} ORDER BY ended_at LIMIT 1 BY run_id`,
        { tenant, runs: runIds },
      )
      return new Map(rows.map((r) => [String(r.run_id), { outcome: String(r.outcome), ended_at: ms(r.ended_ms), ended_event_id: String(r.ended_event_id) }]))
    },

    /** Totals from each run's events (not from the client's own run.ended totals). */
    async usage(tenant: string, runIds: readonly string[]): Promise<Map<string, Row>> {
      if (runIds.length === 0) return new Map()
      const rows = await query(
        `SELECT run_id, sum(events) AS n_events, sum(model_calls) AS n_model_calls, sum(tool_calls) AS n_tool_calls, sum(tool_errors) AS n_tool_errors,
                sum(input_tokens) AS n_input_tokens, sum(output_tokens) AS n_output_tokens, sum(cost_usd) AS total_cost, sum(amount_usd) AS total_amount,
                toUnixTimestamp64Milli(min(first_at)) AS first_ms, toUnixTimestamp64Milli(max(last_at)) AS last_ms
         FROM ${db}.run_usage WHERE tenant = {tenant:String} AND run_id IN {runs:Array(String)} GROUP BY run_id`,
        { tenant, runs: runIds },
      )
      return new Map(
        rows.map((r) => [
          String(r.run_id),
          {
            events: Number(r.n_events),
            model_calls: Number(r.n_model_calls),
            tool_calls: Number(r.n_tool_calls),
            tool_errors: Number(r.n_tool_errors),
            input_tokens: Number(r.n_input_tokens),
            output_tokens: Number(r.n_output_tokens),
            cost_usd: Number(r.total_cost),
            amount_usd: Number(r.total_amount),
            first_at: ms(r.first_ms),
            last_at: ms(r.last_ms),
          },
        ]),
      )
    },

    /** A run's events in (step, event id) order after the cursor, as their stored JSON. */
    async timeline(tenant: string, runId: string, limit: number, after?: [number, string], type?: string): Promise<{ step: number; event_id: string; event: Row }[]> {
      const where = ['tenant = {tenant:String}', 'run_id = {run:String}']
      const params: Record<string, unknown> = { tenant, run: runId, limit }
      if (type !== undefined) (where.push('event_type = {type:String}'), (params.type = type))
      if (after !== undefined) (where.push('(step, event_id) > ({cs:UInt32}, {ce:String})'), (params.cs = after[0]), (params.ce = after[1]))
      const rows = await query<{ step: number; event_id: string; payload: string }>(
        `SELECT step, event_id, payload FROM ${db}.events WHERE ${where.join(' AND ')} ORDER BY step, event_id LIMIT 1 BY event_id LIMIT {limit:UInt32}`,
        params,
      )
      return rows.map((r) => ({ step: Number(r.step), event_id: r.event_id, event: JSON.parse(r.payload) as Row }))
    },

    /**
     * Everything lineage needs of the run an event belongs to, in one round trip: the run is found
     * through event_locator (a primary-key look-up), then every event of the run with the
     * lineage-relevant columns, and the stored JSON of all but the run's other tool calls (the
     * bulk of a long run, which the document never shows). Empty when the event is not the
     * tenant's.
     */
    async lineageEvents(tenant: string, eventId: string): Promise<{ refs: EventRef[]; payloads: Map<string, Row> }> {
      const rows = await query<Row>(
        `SELECT event_id, parent_event_id, step, event_type, action_digest, subject_event_id, approval_id,
                if(event_type = 'tool.call' AND event_id != {id:String}, '', payload) AS json
         FROM ${db}.events
         WHERE tenant = {tenant:String} AND run_id = (SELECT run_id FROM ${db}.event_locator WHERE tenant = {tenant:String} AND event_id = {id:String} LIMIT 1)
         LIMIT 1 BY event_id
         LIMIT {max:UInt32}`,
        { tenant, id: eventId, max: options.maxRunEvents + 1 },
      )
      if (rows.length > options.maxRunEvents) throw new LedgerError('LEDGER_ERR_QUERY_LIMIT', `the run has more than ${options.maxRunEvents} events, more than lineage reads; use the timeline`)
      const payloads = new Map<string, Row>()
      const refs = rows.map((r): EventRef => {
        if (r.json !== '') payloads.set(String(r.event_id), JSON.parse(String(r.json)) as Row)
        return {
          event_id: String(r.event_id),
          parent_event_id: String(r.parent_event_id),
          step: Number(r.step),
          event_type: String(r.event_type),
          action_digest: String(r.action_digest),
          subject_event_id: String(r.subject_event_id),
          approval_id: String(r.approval_id),
        }
      })
      return { refs, payloads }
    },

    /** Tool calls in the range, newest first, with the filters; policy filters go through the decisions table. */
    async searchActions(tenant: string, filters: ActionFilters, range: TimeRange, limit: number, after?: [number, string]): Promise<Row[]> {
      const where = ['tenant = {tenant:String}', 'occurred_at >= fromUnixTimestamp64Milli({from:Int64})', 'occurred_at < fromUnixTimestamp64Milli({to:Int64})']
      const params: Record<string, unknown> = { tenant, from: range.from, to: range.to, limit }
      const eq = (column: string, name: string, value: string | undefined) => {
        if (value === undefined) return
        where.push(`${column} = {${name}:String}`)
        params[name] = value
      }
      eq('principal_id', 'principal', filters.principal)
      eq('tool', 'tool', filters.tool)
      eq('status', 'status', filters.status)
      eq('action_class', 'aclass', filters.action_class)
      eq('agent_name', 'agent', filters.agent)
      eq('agent_version', 'version', filters.version)
      if (filters.policy !== undefined || filters.decision !== undefined) {
        // A decision is made before its action: look back a day before the range for it.
        const pw = ['tenant = {tenant:String}', 'occurred_at >= fromUnixTimestamp64Milli({from:Int64}) - INTERVAL 1 DAY', 'occurred_at < fromUnixTimestamp64Milli({to:Int64})']
        if (filters.policy !== undefined) (pw.push('policy_id = {policy:String}'), (params.policy = filters.policy))
        if (filters.decision !== undefined) (pw.push('decision = {decision:String}'), (params.decision = filters.decision))
        where.push(`(run_id, action_digest) IN (SELECT run_id, action_digest FROM ${db}.policy_decisions WHERE ${pw.join(' AND ')} AND action_digest != '')`)
      }
      if (after !== undefined) (where.push('(occurred_at, event_id) < (fromUnixTimestamp64Milli({ct:Int64}), {ce:String})'), (params.ct = after[0]), (params.ce = after[1]))
      return query(
        `SELECT event_id, run_id, step, toUnixTimestamp64Milli(occurred_at) AS occurred_ms, agent_name, agent_version, principal_type, principal_id, tool, action_class, status, action_digest, amount_usd, parent_event_id
         FROM ${db}.actions WHERE ${where.join(' AND ')} ORDER BY occurred_at DESC, event_id DESC LIMIT 1 BY event_id LIMIT {limit:UInt32}`,
        params,
      )
    },

    /** Policy decisions and approvals bound to these (run, digest) pairs. */
    async authorizations(tenant: string, runIds: readonly string[], digests: readonly string[]): Promise<Row[]> {
      if (runIds.length === 0 || digests.length === 0) return []
      return query(
        `SELECT event_id, run_id, step, event_type, action_digest, subject_event_id, policy_id, decision, decision_id, approval_id, principal_type, principal_id
         FROM ${db}.events
         WHERE tenant = {tenant:String} AND run_id IN {runs:Array(String)} AND action_digest IN {digests:Array(String)}
           AND event_type IN ('policy.decision', 'approval.decided')
         ORDER BY run_id, step LIMIT 1 BY event_id LIMIT {n:UInt32}`,
        { tenant, runs: runIds, digests, n: 10_000 },
      )
    },

    /** Cost and counts per agent version per hour or day. */
    async usageByVersion(tenant: string, filters: { agent?: string | undefined; version?: string | undefined; tool?: string | undefined; event_type?: string | undefined }, range: TimeRange, granularity: 'hour' | 'day'): Promise<Row[]> {
      const where = ['tenant = {tenant:String}', 'hour >= toStartOfHour(fromUnixTimestamp64Milli({from:Int64}))', 'hour < fromUnixTimestamp64Milli({to:Int64})']
      const params: Record<string, unknown> = { tenant, from: range.from, to: range.to }
      if (filters.agent !== undefined) (where.push('agent_name = {agent:String}'), (params.agent = filters.agent))
      if (filters.version !== undefined) (where.push('agent_version = {version:String}'), (params.version = filters.version))
      if (filters.tool !== undefined) (where.push('tool = {tool:String}'), (params.tool = filters.tool))
      if (filters.event_type !== undefined) (where.push('event_type = {etype:String}'), (params.etype = filters.event_type))
      const bucket = granularity === 'hour' ? 'hour' : 'toStartOfDay(hour)'
      const rows = await query(
        `SELECT toUnixTimestamp(${bucket}) * 1000 AS bucket_ms, agent_name, agent_version,
                sum(events) AS n_events, sumIf(events, event_type = 'tool.call') AS n_tool_calls, sumIf(events, event_type = 'model.call') AS n_model_calls,
                sum(errors) AS n_errors, sum(denials) AS n_denials, sum(input_tokens) AS n_input_tokens, sum(output_tokens) AS n_output_tokens,
                sum(cost_usd) AS total_cost, sum(amount_usd) AS total_amount, uniqMerge(runs) AS n_runs
         FROM ${db}.usage_hourly WHERE ${where.join(' AND ')}
         GROUP BY bucket_ms, agent_name, agent_version ORDER BY bucket_ms, agent_name, agent_version LIMIT 100000`,
        params,
      )
      return rows.map((r) => ({
        bucket: new Date(Number(r.bucket_ms)).toISOString(),
        agent_name: r.agent_name,
        agent_version: r.agent_version,
        runs: Number(r.n_runs),
        events: Number(r.n_events),
        tool_calls: Number(r.n_tool_calls),
        model_calls: Number(r.n_model_calls),
        errors: Number(r.n_errors),
        denials: Number(r.n_denials),
        input_tokens: Number(r.n_input_tokens),
        output_tokens: Number(r.n_output_tokens),
        cost_usd: Number(r.total_cost),
        amount_usd: Number(r.total_amount),
      }))
    },

    /** Cost and counts per principal and agent over the range (daily rollup). */
    async usageByPrincipal(tenant: string, filters: { principal?: string | undefined; agent?: string | undefined }, range: TimeRange, limit: number): Promise<Row[]> {
      const where = ['tenant = {tenant:String}', 'day >= toDate(fromUnixTimestamp64Milli({from:Int64}))', 'day <= toDate(fromUnixTimestamp64Milli({to:Int64}))']
      const params: Record<string, unknown> = { tenant, from: range.from, to: range.to, limit }
      if (filters.principal !== undefined) (where.push('principal_id = {principal:String}'), (params.principal = filters.principal))
      if (filters.agent !== undefined) (where.push('agent_name = {agent:String}'), (params.agent = filters.agent))
      const rows = await query(
        `SELECT principal_type, principal_id, agent_name, sum(events) AS n_events, sum(tool_calls) AS n_tool_calls, sum(cost_usd) AS cost, sum(amount_usd) AS amount
         FROM ${db}.usage_principal_daily WHERE ${where.join(' AND ')}
         GROUP BY principal_type, principal_id, agent_name ORDER BY cost DESC, principal_id LIMIT {limit:UInt32}`,
        params,
      )
      return rows.map((r) => ({ principal: { type: r.principal_type, id: r.principal_id }, agent_name: r.agent_name, events: Number(r.n_events), tool_calls: Number(r.n_tool_calls), cost_usd: Number(r.cost), amount_usd: Number(r.amount) }))
    },

    /** Kill-switch decisions and budget alerts, newest first. */
    async controlHistory(
      tenant: string,
      filters: { run_id?: string | undefined; kind?: string | undefined; scope?: string | undefined; trigger?: string | undefined },
      range: TimeRange,
      limit: number,
      after?: [number, string],
    ): Promise<Row[]> {
      const where = ['tenant = {tenant:String}', 'occurred_at >= fromUnixTimestamp64Milli({from:Int64})', 'occurred_at < fromUnixTimestamp64Milli({to:Int64})']
      const params: Record<string, unknown> = { tenant, from: range.from, to: range.to, limit }
      if (filters.run_id !== undefined) (where.push('run_id = {run:String}'), (params.run = filters.run_id))
      if (filters.kind !== undefined) (where.push('kind = {kind:String}'), (params.kind = filters.kind))
      if (filters.scope !== undefined) (where.push('scope = {scope:String}'), (params.scope = filters.scope))
      if (filters.trigger !== undefined) (where.push('trigger = {trigger:String}'), (params.trigger = filters.trigger))
      if (after !== undefined) (where.push('(occurred_at, record_id) < (fromUnixTimestamp64Milli({ct:Int64}), {cr:String})'), (params.ct = after[0]), (params.cr = after[1]))
      const rows = await query(
        `SELECT kind, record_id, toUnixTimestamp64Milli(occurred_at) AS occurred_ms, payload FROM ${db}.control_events
         WHERE ${where.join(' AND ')} ORDER BY occurred_at DESC, record_id DESC LIMIT 1 BY kind, record_id LIMIT {limit:UInt32}`,
        params,
      )
      return rows.map((r) => ({ kind: r.kind, record_id: r.record_id, occurred_at: ms(r.occurred_ms), record: JSON.parse(String(r.payload)) as Row }))
    },

    /** Kill-switch decisions an event tripped. */
    async killsTrippedBy(tenant: string, runId: string, eventId: string): Promise<Row[]> {
      const rows = await query(
        `SELECT payload FROM ${db}.control_events WHERE tenant = {tenant:String} AND run_id = {run:String} AND tripping_event_id = {id:String} ORDER BY occurred_at, record_id LIMIT 1 BY kind, record_id LIMIT 100`,
        { tenant, run: runId, id: eventId },
      )
      return rows.map((r) => JSON.parse(String(r.payload)) as Row)
    },
  }
}

export type LineageStore = ReturnType<typeof createLineageStore>

/**
 * A query that hit its time or size limit is the caller's to narrow, not a server fault: 422 with
 * what to do. Other ClickHouse failures stay 503 (retriable).
 */
function toQueryError(err: unknown): unknown {
  if (err instanceof LedgerError && err.code === 'LEDGER_ERR_CLICKHOUSE_TIMEOUT') {
    return new LedgerError('LEDGER_ERR_QUERY_LIMIT', 'the query exceeded its time limit; narrow the time range or add filters', { cause: err })
  }
  if (err instanceof LedgerError && /TOO_MANY_ROWS|Limit for result exceeded|max_result_rows/i.test(err.message)) {
    return new LedgerError('LEDGER_ERR_QUERY_LIMIT', 'the query would return more rows than allowed; narrow the time range or add filters', { cause: err })
  }
  return err
}

import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { ApiKeyStore } from '../gateway/api-keys.ts'
import { requireRole } from '../gateway/auth.ts'
import type { QueryConfig } from '../shared/config.ts'
import { LedgerError } from '../shared/errors.ts'
import { parseInput, sendError } from '../shared/http.ts'
import { buildLineage, planLineage } from './action-lineage.ts'
import type { LineageStore, RunRow } from './lineage-store.ts'
import {
  controlHistoryQuery,
  decodeCursor,
  eventIdParam,
  limitOf,
  listRunsQuery,
  pageOf,
  runIdParam,
  searchActionsQuery,
  timelineQuery,
  timeRange,
  usageByPrincipalQuery,
  usageByVersionQuery,
} from './query-params.ts'

export interface QueryDeps {
  keys: ApiKeyStore
  store: LineageStore
  config: QueryConfig
}

const iso = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? null : new Date(ms).toISOString())

/** A stored control record with its times (epoch ms in Avro) as ISO-8601. */
function controlRecord(kind: unknown, record: unknown): Record<string, unknown> {
  const r: Record<string, unknown> = { kind, ...(record as Record<string, unknown>) }
  for (const f of ['decided_at', 'retry_at', 'occurred_at']) if (typeof r[f] === 'number') r[f] = iso(r[f] as number)
  return r
}

/**
 * The query API compliance and auditors use (read, audit and admin keys). Every object is looked
 * up inside the caller's tenant, so another tenant's run or event id is a 404 exactly like an id
 * that does not exist. Lists page with opaque cursors over a stable sort key.
 */
export const queryRoutes: FastifyPluginAsync<QueryDeps> = async (app, deps) => {
  app.setErrorHandler((err, req, reply) => sendError(reply, err, req))
  const readers = requireRole(deps.keys, ['read', 'audit'])
  const { store, config } = deps
  const tenantOf = (req: FastifyRequest) => req.principal!.tenant

  const notFound = (what: string, id: string) => new LedgerError('LEDGER_ERR_NOT_FOUND', `${what} ${id} was not found`)

  async function runSummaries(tenant: string, runs: RunRow[]) {
    const ids = runs.map((r) => r.run_id)
    const [endings, usage] = await Promise.all([store.endings(tenant, ids), store.usage(tenant, ids)])
    return runs.map((r) => {
      const end = endings.get(r.run_id)
      return {
        run_id: r.run_id,
        agent: { name: r.agent_name, version: r.agent_version },
        principal: r.principal,
        owner: r.owner,
        autonomy_mode: r.autonomy_mode,
        contract_version: r.contract_version || null,
        trace_id: r.trace_id || null,
        started_at: iso(r.started_at),
        ended_at: iso(end?.ended_at),
        outcome: end?.outcome ?? 'running',
        usage: usage.get(r.run_id) ?? null,
      }
    })
  }

  /** `GET /v1/runs`: runs started in a time range (default the last 30 days), newest first. */
  app.get('/v1/runs', { preHandler: readers }, async (req) => {
    const q = parseInput(listRunsQuery, req.query, 'query')
    const range = timeRange(q, config, 30)
    const limit = limitOf(q.limit, config, 50)
    const after = decodeCursor('runs', q.cursor, ['number', 'string']) as [number, string] | undefined
    const rows = await store.listRuns(tenantOf(req), q, range, limit + 1, after)
    const { page, next_cursor } = pageOf('runs', rows, limit, (r) => [r.started_at, r.run_id])
    return {
      runs: await runSummaries(tenantOf(req), page),
      next_cursor,
    }
  })

  /** `GET /v1/runs/{id}`: the run's header, how it ended, its totals from its events, its kill-switch and budget events. */
  app.get('/v1/runs/:id', { preHandler: readers }, async (req) => {
    const tenant = tenantOf(req)
    const runId = runIdParam((req.params as { id: string }).id)
    const run = await store.getRun(tenant, runId)
    if (run === undefined) throw notFound('run', runId)
    const [summary] = await runSummaries(tenant, [run])
    const control = await store.controlHistory(tenant, { run_id: runId }, { from: 0, to: 253_402_300_799_999 }, 1_000)
    return { ...summary, started_event_id: run.started_event_id, control: control.map((c) => controlRecord(c.kind, c.record)) }
  })

  /** `GET /v1/runs/{id}/timeline`: the run's events in step order, paged. */
  app.get('/v1/runs/:id/timeline', { preHandler: readers }, async (req) => {
    const tenant = tenantOf(req)
    const runId = runIdParam((req.params as { id: string }).id)
    const q = parseInput(timelineQuery, req.query, 'query')
    const limit = limitOf(q.limit, config, 500)
    const after = decodeCursor('timeline', q.cursor, ['number', 'string']) as [number, string] | undefined
    const rows = await store.timeline(tenant, runId, limit + 1, after, q.type)
    if (rows.length === 0 && after === undefined && (await store.getRun(tenant, runId)) === undefined) throw notFound('run', runId)
    const { page, next_cursor } = pageOf('timeline', rows, limit, (r) => [r.step, r.event_id])
    return {
      run_id: runId,
      events: page.map((r) => ({ ...r.event, occurred_at: iso(r.event.occurred_at as number), received_at: iso(r.event.received_at as number) })),
      next_cursor,
    }
  })

  /** `GET /v1/actions/{eventId}/lineage`: who authorized the action, which policy and approval permitted it, what evidence proves what happened. */
  app.get('/v1/actions/:eventId/lineage', { preHandler: readers }, async (req) => {
    const tenant = tenantOf(req)
    const eventId = eventIdParam((req.params as { eventId: string }).eventId)
    const { refs, payloads } = await store.lineageEvents(tenant, eventId)
    const target = refs.find((r) => r.event_id === eventId)
    if (target === undefined) throw notFound('event', eventId)
    if (target.event_type !== 'tool.call') {
      throw new LedgerError('LEDGER_ERR_BAD_REQUEST', `eventId: ${eventId} is a ${target.event_type} event; lineage is for actions (tool.call events)`, { context: { field: 'eventId' } })
    }
    const plan = planLineage(refs, eventId)!
    const runId = String(payloads.get(eventId)?.run_id ?? '')
    const ended = refs.find((r) => r.event_type === 'run.ended')
    const outcome = ended === undefined ? 'running' : String(payloads.get(ended.event_id)?.outcome ?? 'running')
    return buildLineage(plan, payloads, { outcome, killSwitch: await store.killsTrippedBy(tenant, runId, eventId) })
  })

  /** `GET /v1/actions`: search actions by principal, tool, policy, decision, status and time, newest first. */
  app.get('/v1/actions', { preHandler: readers }, async (req) => {
    const tenant = tenantOf(req)
    const q = parseInput(searchActionsQuery, req.query, 'query')
    const range = timeRange(q, config, 7)
    const limit = limitOf(q.limit, config, 100)
    const after = decodeCursor('actions', q.cursor, ['number', 'string']) as [number, string] | undefined
    const rows = await store.searchActions(tenant, q, range, limit + 1, after)
    const { page, next_cursor } = pageOf('actions', rows, limit, (r) => [Number(r.occurred_at), String(r.event_id)])
    const auth = await store.authorizations(
      tenant,
      [...new Set(page.map((r) => String(r.run_id)))],
      [...new Set(page.map((r) => String(r.action_digest)).filter((d) => d !== ''))],
    )
    const actions = page.map((r) => {
      const mine = auth.filter((a) => a.run_id === r.run_id && a.action_digest === r.action_digest && Number(a.step) < Number(r.step))
      const decision = mine.filter((a) => a.event_type === 'policy.decision').at(-1)
      const approval = mine.filter((a) => a.event_type === 'approval.decided').at(-1)
      return {
        event_id: r.event_id,
        run_id: r.run_id,
        step: Number(r.step),
        occurred_at: iso(Number(r.occurred_at)),
        agent: { name: r.agent_name, version: r.agent_version },
        principal: { type: r.principal_type, id: r.principal_id },
        tool: r.tool,
        action_class: r.action_class,
        status: r.status,
        action_digest: r.action_digest,
        amount_usd: r.amount_usd ?? null,
        policy: decision ? { event_id: decision.event_id, policy_id: decision.policy_id, decision: decision.decision, decision_id: decision.decision_id } : null,
        approval: approval ? { event_id: approval.event_id, approval_id: approval.approval_id, decision: approval.decision, approver: { type: approval.principal_type, id: approval.principal_id } } : null,
      }
    })
    return { actions, next_cursor }
  })

  /** `GET /v1/usage/agent-versions`: cost and action counts per agent version per hour or day. */
  app.get('/v1/usage/agent-versions', { preHandler: readers }, async (req) => {
    const q = parseInput(usageByVersionQuery, req.query, 'query')
    const range = timeRange(q, config, 7)
    if (q.granularity === 'hour' && range.to - range.from > 31 * 86_400_000) {
      throw new LedgerError('LEDGER_ERR_BAD_REQUEST', 'granularity: hourly buckets span at most 31 days; use granularity=day', { context: { field: 'granularity' } })
    }
    const series = await store.usageByVersion(tenantOf(req), q, range, q.granularity)
    return { from: iso(range.from), to: iso(range.to), granularity: q.granularity, series }
  })

  /** `GET /v1/usage/principals`: cost and counts per principal and agent over a range of days. */
  app.get('/v1/usage/principals', { preHandler: readers }, async (req) => {
    const q = parseInput(usageByPrincipalQuery, req.query, 'query')
    const range = timeRange(q, config, 30)
    const rows = await store.usageByPrincipal(tenantOf(req), q, range, limitOf(q.limit, config, 100))
    return { from: iso(range.from), to: iso(range.to), principals: rows }
  })

  /** `GET /v1/control/history`: kill-switch decisions and budget alerts, newest first. */
  app.get('/v1/control/history', { preHandler: readers }, async (req) => {
    const q = parseInput(controlHistoryQuery, req.query, 'query')
    const range = timeRange(q, config, 30)
    const limit = limitOf(q.limit, config, 100)
    const after = decodeCursor('control', q.cursor, ['number', 'string']) as [number, string] | undefined
    const rows = await store.controlHistory(tenantOf(req), q, range, limit + 1, after)
    const { page, next_cursor } = pageOf('control', rows, limit, (r) => [Number(r.occurred_at), String(r.record_id)])
    return {
      records: page.map((r) => controlRecord(r.kind, r.record)),
      next_cursor,
    }
  })
}

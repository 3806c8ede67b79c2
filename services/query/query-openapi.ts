import { z } from 'zod'
import { controlHistoryQuery, listRunsQuery, RUN_ID, searchActionsQuery, timelineQuery, ULID, usageByPrincipalQuery, usageByVersionQuery } from './query-params.ts'

/**
 * OpenAPI paths of the query API (`query-routes.ts`), merged into the document the backbone
 * serves at `/v1/openapi.json`. Query parameters are generated from the same zod schemas the
 * routes parse with.
 */
export function queryOpenApiPaths(error: (description: string) => unknown): Record<string, unknown> {
  const params = (schema: z.ZodObject) => {
    const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as { properties?: Record<string, Record<string, unknown>> }
    return Object.entries(json.properties ?? {}).map(([name, s]) => ({ name, in: 'query', required: false, schema: s, ...(docs[name] ? { description: docs[name] } : {}) }))
  }
  const runId = { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: RUN_ID.source } }
  const eventId = { name: 'eventId', in: 'path', required: true, schema: { type: 'string', pattern: ULID.source }, description: 'the tool.call event id (a ULID)' }
  const common = {
    '400': error('A bad path or query parameter; the message names it'),
    '401': error('No or unknown API key'),
    '403': error('The key cannot read (emit keys cannot)'),
    '422': error('The query exceeded its time or size limit; narrow it'),
    '503': error('ClickHouse did not answer; retry'),
  }
  const ok = (description: string, required: string[]) => ({ description, content: { 'application/json': { schema: { type: 'object', required } } } })
  const notFound = error("Not found in the caller's tenant (another tenant's ids look exactly like ids that do not exist)")
  return {
    '/v1/runs': {
      get: { summary: 'Runs started in a time range (default the last 30 days), newest first, by agent, version, principal and outcome', parameters: params(listRunsQuery), responses: { '200': ok('A page of runs and the cursor of the next', ['runs', 'next_cursor']), ...common } },
    },
    '/v1/runs/{id}': {
      get: { summary: "A run: header, outcome, totals from its events, its kill-switch and budget events", parameters: [runId], responses: { '200': ok('The run', ['run_id', 'agent', 'principal', 'outcome', 'control']), '404': notFound, ...common } },
    },
    '/v1/runs/{id}/timeline': {
      get: { summary: "The run's events in step order", parameters: [runId, ...params(timelineQuery)], responses: { '200': ok('A page of events and the cursor of the next', ['run_id', 'events', 'next_cursor']), '404': notFound, ...common } },
    },
    '/v1/actions/{eventId}/lineage': {
      get: {
        summary: 'Who authorized an action, which policy and approval permitted it, and what evidence proves what happened',
        parameters: [eventId],
        responses: { '200': ok('The lineage document: action, run, who, policy, evidence', ['action', 'run', 'who', 'policy', 'evidence']), '404': notFound, ...common },
      },
    },
    '/v1/actions': {
      get: { summary: 'Search actions by principal, tool, policy, decision, status and time (default the last 7 days), newest first', parameters: params(searchActionsQuery), responses: { '200': ok('A page of actions with their decision and approval', ['actions', 'next_cursor']), ...common } },
    },
    '/v1/usage/agent-versions': {
      get: { summary: 'Cost and action counts per agent version per hour or day (default the last 7 days)', parameters: params(usageByVersionQuery), responses: { '200': ok('One row per bucket, agent and version', ['series']), ...common } },
    },
    '/v1/usage/principals': {
      get: { summary: 'Cost and counts per principal and agent over a range of days (default 30)', parameters: params(usageByPrincipalQuery), responses: { '200': ok('Principals by cost', ['principals']), ...common } },
    },
    '/v1/control/history': {
      get: { summary: 'Kill-switch decisions and budget alerts, newest first (default the last 30 days)', parameters: params(controlHistoryQuery), responses: { '200': ok('A page of records and the cursor of the next', ['records', 'next_cursor']), ...common } },
    },
  }
}

const docs: Record<string, string> = {
  from: 'start of the range, inclusive: ISO-8601 with a zone, a date, or epoch milliseconds',
  to: 'end of the range, exclusive (default now)',
  limit: 'page size (at most LEDGER_QUERY_MAX_LIMIT)',
  cursor: 'next_cursor of the previous page',
  principal: 'the principal id the agent acted for',
  outcome: 'how the run ended; `running` for runs with no run.ended yet',
}

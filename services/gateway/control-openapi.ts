import { z } from 'zod'
import { guardBody, manualBody } from './control-routes.ts'

/** OpenAPI paths of the enforcement routes (`control-routes.ts`), merged into the gateway's document. */
export function controlOpenApiPaths(error: (description: string) => unknown): Record<string, unknown> {
  const json = (schema: z.ZodType) => z.toJSONSchema(schema, { io: 'input', target: 'draft-2020-12' })
  const runId = { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' } }
  const hints = [
    { name: 'agent_name', in: 'query', required: false, schema: { type: 'string' }, description: 'for a run this gateway has not seen: its agent, to apply agent-version kills' },
    { name: 'agent_version', in: 'query', required: false, schema: { type: 'string' } },
  ]
  const status = { type: 'object', description: 'RunStatus: `status` active | killed | unknown, `killed` (the refusal: scope, trigger, reason, tripping_event_id, decision_id), `circuits`, `budget`' }
  const common = { '400': error('A bad path, query or body field; the message names it'), '401': error('No or unknown API key'), '403': error("The key's role cannot do this") }
  return {
    '/v1/runs/{id}/status': {
      get: { summary: "A run's status: killed or active, the decision and event behind a kill, open circuits, cost", parameters: [runId, ...hints], responses: { '200': { description: 'The status', content: { 'application/json': { schema: status } } }, ...common } },
    },
    '/v1/runs/{id}/guard': {
      post: {
        summary: 'May the run take its next action? Optionally reserves an estimated cost (emit keys)',
        parameters: [runId],
        requestBody: { required: false, content: { 'application/json': { schema: json(guardBody) } } },
        responses: {
          '200': { description: '`allowed: true` (with a reservation when an estimate was sent) or `allowed: false` with the refusal: run_killed, circuit_open or budget_exceeded', content: { 'application/json': { schema: { type: 'object', required: ['allowed', 'run_id', 'status'] } } } },
          ...common,
        },
      },
    },
    '/v1/runs/{id}/status/stream': {
      get: { summary: "Server-sent events: the run's status, then every decision that concerns it", parameters: [runId, ...hints], responses: { '200': { description: '`event: status` then `event: decision` records', content: { 'text/event-stream': {} } }, ...common } },
    },
    '/v1/agents/{name}/status/stream': {
      get: {
        summary: "Server-sent events: every decision about the agent's runs, versions, tools and tenant",
        parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }, { name: 'version', in: 'query', required: false, schema: { type: 'string' } }],
        responses: { '200': { description: '`event: decision` records', content: { 'text/event-stream': {} } }, ...common },
      },
    },
    '/v1/control/decisions': {
      post: {
        summary: 'An operator kills or releases a run, agent version, tool or tenant (admin keys); audited on the control topic',
        requestBody: { required: true, content: { 'application/json': { schema: json(manualBody) } } },
        responses: { '202': { description: 'The decision, after Kafka acknowledged it' }, ...common, '503': error('Kafka did not acknowledge') },
      },
    },
  }
}

import { z } from 'zod'
import { controlOpenApiPaths } from './control-openapi.ts'
import { eventValidators } from './event-validation.ts'

const errorBody = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', example: 'LEDGER_ERR_INGEST_VALIDATION' },
        message: { type: 'string', example: 'events[0].principal.id: is required' },
        problems: { type: 'array', items: { type: 'object', properties: { index: { type: 'integer' }, path: { type: 'string' }, message: { type: 'string' } } } },
      },
    },
  },
}
const error = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } })

/** An example the spec shows and a test posts, so the example cannot rot. */
export const EXAMPLE_EVENT = {
  type: 'tool.call',
  event_id: '01JDQ0ZK4N8W2Y3X5V6T7R8S9A',
  run_id: 'run-2026-11-22-0001',
  step: 3,
  occurred_at: '2026-11-22T10:15:30.250Z',
  agent_name: 'refund-assistant',
  agent_version: '1.4.2',
  principal: { type: 'user', id: 'u-1042' },
  trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
  span_id: '00f067aa0ba902b7',
  tool: 'zendesk.read_ticket',
  action_class: 'read',
  argument_digest: 'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
  arguments: '{"ticket_id":"ZD-8812"}',
  status: 'ok',
  latency_ms: 190,
}

/**
 * The gateway's OpenAPI 3.1 document. Event bodies are generated from the same zod validators
 * the route uses (which come from the Avro schemas). `test/integration/gateway.test.ts` checks
 * every route is in it and everything in it is a route.
 */
export function gatewayOpenApi(extraPaths: (error: (description: string) => unknown) => Record<string, unknown> = () => ({})): Record<string, unknown> {
  const eventSchemas: Record<string, unknown> = {}
  for (const [type, validator] of eventValidators()) {
    eventSchemas[type.replace('.', '_')] = z.toJSONSchema(validator, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' })
  }
  const oneOf = Object.keys(eventSchemas).map((k) => ({ $ref: `#/components/schemas/${k}` }))
  return {
    openapi: '3.1.0',
    info: { title: 'Agent Ledger API', version: '1' },
    components: {
      securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'An API key: `authorization: Bearer led_<role>_...`' } },
      schemas: { ...eventSchemas, Event: { oneOf }, Error: errorBody },
    },
    security: [{ apiKey: [] }],
    paths: {
      '/v1/events': {
        post: {
          summary: 'Emit one event or a batch (all or nothing)',
          parameters: [{ name: 'traceparent', in: 'header', required: false, schema: { type: 'string' }, description: 'W3C trace context; fills trace_id/span_id of events that have none' }],
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: { oneOf: [{ $ref: '#/components/schemas/Event' }, { type: 'array', items: { $ref: '#/components/schemas/Event' }, minItems: 1 }] },
                example: [EXAMPLE_EVENT],
              },
            },
          },
          responses: {
            '202': {
              description: 'Kafka acknowledged every event (acks=all)',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    required: ['accepted', 'duplicates', 'event_ids'],
                    properties: {
                      accepted: { type: 'integer' },
                      duplicates: { type: 'integer', description: 'events already stored earlier: acknowledged, not written again' },
                      event_ids: { type: 'array', items: { type: 'string' } },
                      redactions: { type: 'object', additionalProperties: { type: 'integer' } },
                      runs: { type: 'object', additionalProperties: true, description: "each run's status" },
                    },
                  },
                },
              },
            },
            '400': error('Invalid JSON or an invalid event; names the index and field path of every problem'),
            '401': error('No or unknown API key'),
            '403': error("The key's role cannot emit, or an event names another tenant"),
            '409': error('An event id repeats in the batch, or was stored before with other content'),
            '413': error('Body or batch too large'),
            '415': error('Not application/json'),
            '429': error('Tenant rate limit; see retry-after'),
            '503': error('Kafka did not acknowledge; nothing was acknowledged. Retry with the same event ids (retry-after)'),
          },
        },
      },
      '/v1/contracts': {
        post: {
          summary: 'Publish an agent contract (admin keys): validated, stored on the compacted contracts topic',
          requestBody: { required: true, content: { 'application/yaml': { schema: { type: 'string' } } } },
          responses: {
            '201': {
              description: 'Stored',
              content: { 'application/json': { schema: { type: 'object', required: ['tenant', 'name', 'version', 'key'], properties: { tenant: { type: 'string' }, name: { type: 'string' }, version: { type: 'string' }, key: { type: 'string' } } } } },
            },
            '400': error('Invalid contract: every problem with its line and field'),
            '401': error('No or unknown API key'),
            '403': error('Not an admin key'),
            '503': error('Kafka did not acknowledge'),
          },
        },
      },
      ...controlOpenApiPaths(error),
      ...extraPaths(error),
      '/v1/openapi.json': { get: { summary: 'This document', security: [], responses: { '200': { description: 'OpenAPI 3.1' } } } },
      '/healthz': { get: { summary: 'Dependency health', security: [], responses: { '200': { description: 'healthy' }, '503': { description: 'a dependency is down' } } } },
      '/metrics': { get: { summary: 'Prometheus metrics: ingest, processors, lineage sink (admin keys)', responses: { '200': { description: 'text/plain; version=0.0.4' }, '401': error('No or unknown API key'), '403': error('Not an admin key') } } },
    },
  }
}

import { RUN_ID } from '../query/query-params.ts'

/** OpenAPI paths of the report routes (`report-routes.ts`), merged into `/v1/openapi.json`. */
export function reportOpenApiPaths(error: (description: string) => unknown): Record<string, unknown> {
  const common = {
    '400': error('A bad path or query parameter; the message names it'),
    '401': error('No or unknown API key'),
    '403': error('The key cannot read (emit keys cannot)'),
  }
  return {
    '/v1/runs/{id}/report': {
      get: {
        summary: "The run's audit report: header, timeline, actions with their policy decision, approval and evidence, cost against budget, budget and kill-switch events, and the integrity section (chain, head, covering digests and signatures)",
        parameters: [
          { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: RUN_ID.source } },
          { name: 'format', in: 'query', required: false, schema: { type: 'string', enum: ['json', 'csv', 'html'], default: 'json' }, description: 'json: RFC 8785 canonical JSON, verifiable offline with `npm run verify`; csv: one row per chained event; html: for people' },
        ],
        responses: {
          '200': {
            description: 'The report',
            content: {
              'application/json': { schema: { type: 'object', required: ['format', 'version', 'run', 'timeline', 'actions', 'cost', 'control', 'integrity'] } },
              'text/csv': { schema: { type: 'string' } },
              'text/html': { schema: { type: 'string' } },
            },
          },
          '404': error("Not found in the caller's tenant (another tenant's runs look exactly like runs that do not exist)"),
          '422': error('The run has more events than one report carries, or the query exceeded its time limit'),
          '503': error('The run is not yet covered by a signed digest (LEDGER_ERR_REPORT_NOT_READY), or ClickHouse did not answer; retry after retry-after'),
          ...common,
        },
      },
    },
    '/v1/notary/public-key': {
      get: {
        summary: "The notary's Ed25519 public keys (PEM) by fingerprint. Auditors should obtain the key out of band as well",
        responses: { '200': { description: 'The keys', content: { 'application/json': { schema: { type: 'object', required: ['algorithm', 'keys'] } } } }, ...common },
      },
    },
  }
}

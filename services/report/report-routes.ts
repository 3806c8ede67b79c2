import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { ApiKeyStore } from '../gateway/api-keys.ts'
import { requireRole } from '../gateway/auth.ts'
import type { LineageStore } from '../query/lineage-store.ts'
import { runIdParam } from '../query/query-params.ts'
import { LedgerError } from '../shared/errors.ts'
import { parseInput, sendError } from '../shared/http.ts'
import { renderReportCsv } from './report-csv.ts'
import { renderReportHtml } from './report-html.ts'
import type { ReportStore } from './report-store.ts'
import { assembleRunReport, canonicalReportJson, controlEntryOf, digestTrail, type RunReport } from './run-report.ts'

export interface ReportDeps {
  keys: ApiKeyStore
  store: ReportStore
  lineage: LineageStore
  /** The notary's digest interval, for `retry-after` while a run is not yet signed. */
  digestIntervalMs: number
}

export const reportQuery = z.strictObject({ format: z.enum(['json', 'csv', 'html']).default('json') })

const ALL_TIME = { from: 0, to: 253_402_300_799_999 }

/**
 * Builds a run's report from ClickHouse: the chain as far as the sink wrote it contiguously, the
 * digests from the first that covered the run to the last that covers a head the chain reaches,
 * and the run's control records. Throws 404 for a run the tenant does not have, and
 * LEDGER_ERR_REPORT_NOT_READY while no signed digest covers the run yet.
 */
export async function loadRunReport(deps: Pick<ReportDeps, 'store' | 'lineage' | 'digestIntervalMs'>, tenant: string, runId: string, now = Date.now()): Promise<{ report: RunReport; canonical: string[] }> {
  const notReady = (why: string) =>
    new LedgerError('LEDGER_ERR_REPORT_NOT_READY', `run ${runId}: ${why}; retry shortly`, { context: { runId, retryAfterSec: Math.max(1, Math.ceil(deps.digestIntervalMs / 1000)) } })
  const [{ events: chain, canonical }, covering] = await Promise.all([deps.store.chain(tenant, runId), deps.store.coveringDigests(tenant, runId)])
  if (chain.length === 0) {
    if (await deps.store.runExists(tenant, runId)) throw notReady('the notary has not chained its events yet')
    throw new LedgerError('LEDGER_ERR_NOT_FOUND', `run ${runId} was not found`)
  }
  const usable = covering.filter((c) => c.seq < chain.length)
  if (usable.length === 0) throw notReady('no signed digest covers its chain yet')
  const first = covering[0]!.digest_seq
  const last = usable.at(-1)!.digest_seq
  const stored = await deps.store.digests(tenant, first, last, covering.filter((c) => c.digest_seq <= last).map((c) => c.digest_seq))
  const trail = digestTrail(stored, runId, chain.length - 1)
  if (trail === undefined) throw notReady('its signed digests are not readable yet')
  const control = await deps.lineage.controlHistory(tenant, { run_id: runId }, ALL_TIME, 1_000)
  const report = assembleRunReport({
    tenant,
    runId,
    chain: chain.slice(0, trail.coveredThrough + 1),
    digests: trail.digests,
    pendingEvents: chain.length - trail.coveredThrough - 1,
    control: control.map((c) => controlEntryOf(String(c.kind), String(c.record_id), Number(c.occurred_at), c.record as Record<string, unknown>)),
    generatedAt: now,
  })
  return { report, canonical }
}

/**
 * `GET /v1/runs/{id}/report?format=json|csv|html` (read and audit keys): the run's audit report.
 * JSON is RFC 8785 canonical, the form `npm run verify` checks offline. `GET /v1/notary/public-key`:
 * the notary's public keys as it announced them; auditors should obtain the key out of band too.
 */
export const reportRoutes: FastifyPluginAsync<ReportDeps> = async (app, deps) => {
  app.setErrorHandler((err, req, reply) => sendError(reply, err, req))
  const readers = requireRole(deps.keys, ['read', 'audit'])
  const tenantOf = (req: FastifyRequest) => req.principal!.tenant

  app.get('/v1/runs/:id/report', { preHandler: readers }, async (req, reply) => {
    const runId = runIdParam((req.params as { id: string }).id)
    const q = parseInput(reportQuery, req.query, 'query')
    const { report, canonical } = await loadRunReport(deps, tenantOf(req), runId)
    const name = `run-report-${runId}`
    if (q.format === 'csv') return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${name}.csv"`).send(renderReportCsv(report))
    if (q.format === 'html') {
      // The report has no script and no external asset; the policy keeps it that way in a browser.
      return reply.type('text/html; charset=utf-8').header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; img-src data:").send(renderReportHtml(report))
    }
    return reply.type('application/json; charset=utf-8').header('content-disposition', `inline; filename="${name}.json"`).send(canonicalReportJson(report, canonical))
  })

  app.get('/v1/notary/public-key', { preHandler: readers }, async () => {
    const keys = await deps.store.publicKeys()
    return {
      algorithm: 'Ed25519',
      keys,
      note: 'Verify reports with a key you obtained out of band (from the operator, not only from this API): a report and a key from the same source prove only that they agree.',
    }
  })
}

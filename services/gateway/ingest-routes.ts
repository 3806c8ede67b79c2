import { createHash } from 'node:crypto'
import type { FastifyPluginAsync } from 'fastify'
import type { IHeaders, Message } from 'kafkajs'
import { eventSchemas } from '../../schemas/event-schemas.ts'
import { fromAvroRecord, toAvroRecord } from '../../schemas/json-form.ts'
import type { LedgerEventView } from '../../stream-processors/domain-event.ts'
import { LedgerError } from '../shared/errors.ts'
import type { EventCodec } from '../shared/event-codec.ts'
import { withSpan } from '../shared/telemetry.ts'
import type { ApiKeyStore } from './api-keys.ts'
import { requireRole } from './auth.ts'
import type { DedupCache } from './dedup-cache.ts'
import { redactEvent, type RedactionMode } from './event-redaction.ts'
import type { EventProducer } from './event-producer.ts'
import { validateEvent, type EventProblem } from './event-validation.ts'
import type { TenantRateLimiter } from './rate-limit.ts'
import type { RunControl } from './run-control.ts'
import type { Findings, Redactor } from './redaction.ts'

export interface IngestDeps {
  keys: ApiKeyStore
  codec: EventCodec
  producer: EventProducer
  dedup: DedupCache
  rateLimiter: TenantRateLimiter
  redactor: Redactor
  defaultRedaction: RedactionMode
  maxBatch: number
  /** Enforcement: stamps contract versions, tallies cost, releases reservations, reports run status. */
  runControl?: Pick<RunControl, 'stamp' | 'accepted' | 'status'>
}

export interface IngestResponse {
  accepted: number
  duplicates: number
  event_ids: string[]
  redactions?: Findings
  runs?: Record<string, unknown>
}

/** Reservation ids (from `POST /v1/runs/{id}/guard`) the emitter releases with this request. */
export const RELEASE_HEADER = 'x-ledger-release'
const RESERVATION_ID = /^[0-9a-f-]{36}$/

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/

/**
 * `POST /v1/events`: one event or an array. All or nothing per request: every event is checked
 * before any is produced, and a 400 lists every problem with its index and field path. 202 only
 * after Kafka acknowledged every event (acks=all). A retry of an acknowledged event id is
 * acknowledged again without a second write.
 */
export const ingestRoutes: FastifyPluginAsync<IngestDeps> = async (app, deps) => {
  const schemas = eventSchemas()

  app.post('/v1/events', { preHandler: requireRole(deps.keys, ['emit']) }, async (req, reply) => {
    const principal = req.principal!
    const wait = deps.rateLimiter.take(principal.tenant)
    if (wait > 0) {
      throw new LedgerError('LEDGER_ERR_RATE_LIMITED', `tenant ${principal.tenant} exceeded its request rate; retry after ${wait} s`, { context: { retryAfterSec: wait } })
    }
    const body = req.body
    const items = Array.isArray(body) ? body : [body]
    if (body === undefined || body === null || typeof body !== 'object') {
      throw new LedgerError('LEDGER_ERR_INGEST_BODY', 'body: must be an event object or an array of events')
    }
    if (items.length === 0) throw new LedgerError('LEDGER_ERR_INGEST_BODY', 'body: the array holds no events')
    if (items.length > deps.maxBatch) {
      throw new LedgerError('LEDGER_ERR_INGEST_TOO_LARGE', `body: ${items.length} events in one request; at most ${deps.maxBatch}`)
    }

    const releaseHeader = req.headers[RELEASE_HEADER]
    const releases = typeof releaseHeader === 'string' && releaseHeader.trim() !== '' ? releaseHeader.split(',').map((r) => r.trim()) : []
    const badRelease = releases.findIndex((r) => !RESERVATION_ID.test(r))
    if (badRelease >= 0 || releases.length > 1_000) {
      throw new LedgerError('LEDGER_ERR_INGEST_BODY', `header ${RELEASE_HEADER}: ${badRelease >= 0 ? `item ${badRelease} is not a reservation id` : 'at most 1000 reservation ids'}`)
    }

    const headerTrace = TRACEPARENT.exec(String(req.headers.traceparent ?? ''))
    const problems: EventProblem[] = []
    const valid: { eventType: string; value: Record<string, unknown> }[] = []
    const seen = new Map<string, number>()
    items.forEach((raw, index) => {
      const result = validateEvent(raw, index)
      if (!result.ok) {
        problems.push(...result.problems)
        return
      }
      const id = result.value.event_id as string
      const first = seen.get(id)
      if (first !== undefined) problems.push({ index, path: `[${index}].event_id`, message: `duplicates events[${first}].event_id ${id}` })
      else seen.set(id, index)
      valid.push(result)
    })
    const foreign = valid.findIndex((v) => v.value.tenant !== undefined && v.value.tenant !== principal.tenant)
    if (foreign >= 0) {
      throw new LedgerError('LEDGER_ERR_FORBIDDEN', `events[${foreign}].tenant: this key emits for tenant "${principal.tenant}" only, not "${String(valid[foreign]!.value.tenant)}"`)
    }
    if (problems.length > 0) {
      const onlyDuplicates = problems.every((p) => p.message.startsWith('duplicates '))
      const summary = problems.slice(0, 10).map((p) => `events${p.path}: ${p.message}`).join('; ')
      const more = problems.length > 10 ? ` (and ${problems.length - 10} more)` : ''
      throw new LedgerError(onlyDuplicates ? 'LEDGER_ERR_INGEST_DUPLICATE' : 'LEDGER_ERR_INGEST_VALIDATION', `${summary}${more}`, {
        context: { problems: problems.map((p) => ({ ...p, path: `events${p.path}` })) },
      })
    }

    return withSpan('ingest events', { 'ledger.tenant': principal.tenant, 'ledger.events': valid.length }, async () => {
      const receivedAt = Date.now()
      const mode = deps.keys.tenantSettings(principal.tenant).redaction ?? deps.defaultRedaction
      const findings: Findings = {}
      const messages: Message[] = []
      const fresh: { id: string; digest: string; view: LedgerEventView }[] = []
      let duplicates = 0
      valid.forEach(({ eventType, value }, index) => {
        const id = value.event_id as string
        const digest = createHash('sha256').update(JSON.stringify(value)).digest('base64')
        const stored = deps.dedup.get(principal.tenant, id)
        if (stored !== undefined) {
          if (stored !== digest) {
            throw new LedgerError('LEDGER_ERR_INGEST_DUPLICATE', `events[${index}].event_id: ${id} was already stored with different content`, {
              context: { problems: [{ index, path: `events[${index}].event_id`, message: 'already stored with different content' }] },
            })
          }
          duplicates += 1
          return
        }
        if (value.trace_id === undefined && headerTrace) {
          value.trace_id = headerTrace[1]
          value.span_id ??= headerTrace[2]
        }
        deps.runControl?.stamp(principal.tenant, value)
        const schema = schemas.get(eventType)!
        const event = mode === 'strict' ? redactEvent(schema, value, deps.redactor, findings) : value
        const record = toAvroRecord(schema, event, principal.tenant, receivedAt)
        const headers: IHeaders = { 'ledger-event-type': eventType, 'ledger-tenant': principal.tenant, 'ledger-event-id': id }
        if (typeof value.trace_id === 'string' && typeof value.span_id === 'string') headers.traceparent = `00-${value.trace_id}-${value.span_id}-01`
        messages.push({ key: value.run_id as string, value: deps.codec.encode(eventType, record), headers, timestamp: String(receivedAt) })
        // The event as the processors will decode it, for the edge run guard (services/gateway/run-control.ts).
        fresh.push({ id, digest, view: fromAvroRecord(schema, record) as LedgerEventView })
      })
      if (messages.length > 0) await deps.producer.send(messages)
      for (const f of fresh) deps.dedup.remember(principal.tenant, f.id, f.digest)
      const response: IngestResponse = { accepted: valid.length, duplicates, event_ids: valid.map((v) => v.value.event_id as string) }
      if (Object.keys(findings).length > 0) response.redactions = findings
      if (deps.runControl) {
        // Only events written now, in the order written: a retried event was counted when it was first accepted.
        deps.runControl.accepted(principal.tenant, fresh.map((f) => f.view), releases)
        const runs = [...new Set(valid.map((v) => v.value.run_id as string))]
        response.runs = Object.fromEntries(runs.map((r) => [r, deps.runControl!.status(principal.tenant, r)]))
      }
      return reply.status(202).send(response)
    })
  })
}

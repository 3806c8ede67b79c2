import { z } from 'zod'
import { LedgerError } from '../shared/errors.ts'
import type { QueryConfig } from '../shared/config.ts'

/**
 * The query API's inputs: path ids, filters, time ranges, limits and cursors, each checked here
 * so a bad one is a 400 naming the field before any SQL runs. Every value reaches ClickHouse as a
 * bound parameter, never as SQL text.
 */

export const RUN_ID = /^[A-Za-z0-9._:-]{1,128}$/
export const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/
const NAME = /^[A-Za-z0-9._:@/ -]{1,200}$/

const name = (what: string) => z.string().regex(NAME, `must be a ${what}: 1-200 letters, digits, spaces or ._:@/-`)

export function runIdParam(value: string): string {
  if (!RUN_ID.test(value)) throw new LedgerError('LEDGER_ERR_BAD_REQUEST', 'id: a run id is 1-128 characters of letters, digits, ".", "_", ":" or "-"', { context: { field: 'id' } })
  return value
}

export function eventIdParam(value: string): string {
  if (!ULID.test(value)) throw new LedgerError('LEDGER_ERR_BAD_REQUEST', 'eventId: an event id is a ULID (26 Crockford base32 characters)', { context: { field: 'eventId' } })
  return value
}

/** An instant: ISO-8601 with a time zone, or epoch milliseconds. */
const instant = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = typeof v === 'number' || /^\d{1,16}$/.test(v) ? Number(v) : /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2}))?$/.test(v) ? Date.parse(v) : Number.NaN
  if (!Number.isFinite(ms) || ms < 0 || ms > 253_402_300_799_999) {
    ctx.addIssue({ code: 'custom', message: 'must be an ISO-8601 time with a zone (2026-11-22T10:00:00Z), a date (2026-11-22) or epoch milliseconds' })
    return z.NEVER
  }
  return ms
})

const DAY = 86_400_000

export interface TimeRange {
  from: number
  to: number
}

/** `from`/`to` with defaults (the last `defaultDays`), in order, no wider than the configured maximum. */
export function timeRange(q: { from?: number | undefined; to?: number | undefined }, config: QueryConfig, defaultDays: number, now = Date.now()): TimeRange {
  const to = q.to ?? now
  const from = q.from ?? to - defaultDays * DAY
  if (from >= to) throw new LedgerError('LEDGER_ERR_BAD_REQUEST', 'from: must be before to', { context: { field: 'from' } })
  if (to - from > config.LEDGER_QUERY_MAX_RANGE_DAYS * DAY) {
    throw new LedgerError('LEDGER_ERR_BAD_REQUEST', `from: the range from..to spans ${Math.ceil((to - from) / DAY)} days; at most ${config.LEDGER_QUERY_MAX_RANGE_DAYS} are allowed`, { context: { field: 'from' } })
  }
  return { from, to }
}

export function limitOf(value: number | undefined, config: QueryConfig, fallback = 100): number {
  const limit = value ?? Math.min(fallback, config.LEDGER_QUERY_MAX_LIMIT)
  if (limit > config.LEDGER_QUERY_MAX_LIMIT) throw new LedgerError('LEDGER_ERR_BAD_REQUEST', `limit: at most ${config.LEDGER_QUERY_MAX_LIMIT}`, { context: { field: 'limit' } })
  return limit
}

const limit = z.coerce.number({ message: 'must be a whole number' }).int('must be a whole number').min(1, 'must be at least 1').optional()
const cursor = z.string().max(1_000, 'is not a cursor this API issued').optional()

export const listRunsQuery = z.strictObject({
  agent: name('agent name').optional(),
  version: name('agent version').optional(),
  principal: name('principal id').optional(),
  principal_type: name('principal type').optional(),
  outcome: z.enum(['succeeded', 'failed', 'escalated', 'killed', 'running']).optional(),
  from: instant.optional(),
  to: instant.optional(),
  limit,
  cursor,
})

export const timelineQuery = z.strictObject({
  type: z.enum(['run.started', 'run.ended', 'model.call', 'tool.call', 'policy.decision', 'approval.requested', 'approval.decided', 'evidence.retrieved', 'human.override']).optional(),
  limit,
  cursor,
})

export const searchActionsQuery = z.strictObject({
  principal: name('principal id').optional(),
  tool: name('tool name').optional(),
  policy: name('policy id').optional(),
  decision: z.enum(['allow', 'deny', 'require_approval']).optional(),
  status: z.enum(['ok', 'error', 'denied', 'skipped']).optional(),
  action_class: z.enum(['read', 'write', 'irreversible']).optional(),
  agent: name('agent name').optional(),
  version: name('agent version').optional(),
  from: instant.optional(),
  to: instant.optional(),
  limit,
  cursor,
})

export const usageByVersionQuery = z.strictObject({
  agent: name('agent name').optional(),
  version: name('agent version').optional(),
  tool: name('tool name').optional(),
  event_type: timelineQuery.shape.type,
  granularity: z.enum(['hour', 'day']).default('day'),
  from: instant.optional(),
  to: instant.optional(),
})

export const usageByPrincipalQuery = z.strictObject({
  principal: name('principal id').optional(),
  agent: name('agent name').optional(),
  from: instant.optional(),
  to: instant.optional(),
  limit,
})

export const controlHistoryQuery = z.strictObject({
  run_id: z.string().regex(RUN_ID, 'must be 1-128 characters of letters, digits, ".", "_", ":" or "-"').optional(),
  kind: z.enum(['kill_switch.decision', 'budget.alert']).optional(),
  scope: z.enum(['run', 'agent_version', 'tool', 'tenant', 'principal']).optional(),
  trigger: name('trigger').optional(),
  from: instant.optional(),
  to: instant.optional(),
  limit,
  cursor,
})

/**
 * Opaque, stable cursors: the sort key of the last row served, in base64url JSON. A cursor names
 * the list it belongs to, so one list's cursor is refused by another.
 */
export function encodeCursor(list: string, key: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify({ l: list, k: key })).toString('base64url')
}

/**
 * One page of a list read with `limit + 1` rows: the first `limit`, and a cursor after the last of
 * them when the extra row shows there is more.
 */
export function pageOf<R>(list: string, rows: readonly R[], limit: number, keyOf: (row: R) => readonly (string | number)[]): { page: R[]; next_cursor: string | null } {
  const page = rows.slice(0, limit)
  const last = page.at(-1)
  return { page, next_cursor: rows.length > limit && last !== undefined ? encodeCursor(list, keyOf(last)) : null }
}

export function decodeCursor(list: string, cursor: string | undefined, shape: readonly ('string' | 'number')[]): (string | number)[] | undefined {
  if (cursor === undefined) return undefined
  const bad = () => new LedgerError('LEDGER_ERR_BAD_REQUEST', 'cursor: not a cursor this list issued; start again without it', { context: { field: 'cursor' } })
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    throw bad()
  }
  const c = parsed as { l?: unknown; k?: unknown }
  if (c === null || typeof c !== 'object' || c.l !== list || !Array.isArray(c.k) || c.k.length !== shape.length) throw bad()
  const key = c.k as unknown[]
  if (!shape.every((t, i) => typeof key[i] === t && (t === 'string' ? (key[i] as string).length <= 200 : Number.isFinite(key[i])))) throw bad()
  return key as (string | number)[]
}

import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import type { z } from 'zod'
import { ERROR_CATALOG, LedgerError, type LedgerErrorCode } from './errors.ts'

/** The body of every error our HTTP APIs answer. */
export interface ErrorBody {
  error: { code: LedgerErrorCode; message: string; problems?: unknown[] }
}

const FASTIFY_CODES: Record<string, LedgerErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'LEDGER_ERR_INGEST_MEDIA_TYPE',
  FST_ERR_CTP_BODY_TOO_LARGE: 'LEDGER_ERR_INGEST_TOO_LARGE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'LEDGER_ERR_INGEST_BODY',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'LEDGER_ERR_INGEST_BODY',
  FST_ERR_CTP_EMPTY_TYPE: 'LEDGER_ERR_INGEST_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_TYPE: 'LEDGER_ERR_INGEST_MEDIA_TYPE',
}

/**
 * Maps any error to a status and an ErrorBody. LedgerErrors keep their status; fastify's own
 * client errors (bad JSON, wrong media type, body too large) get our codes; anything else is a
 * 500 that is logged, and a test fails if user input can reach it.
 */
export function toHttpError(err: unknown, req?: FastifyRequest): { status: number; body: ErrorBody; retryAfter?: number } {
  if (err instanceof LedgerError) {
    const problems = err.context.problems as unknown[] | undefined
    const retryAfter = err.context.retryAfterSec as number | undefined
    return {
      status: err.statusCode,
      body: { error: { code: err.code, message: err.message, ...(problems ? { problems } : {}) } },
      ...(retryAfter !== undefined ? { retryAfter } : err.statusCode === 503 ? { retryAfter: 1 } : {}),
    }
  }
  const fe = err as FastifyError
  const mapped = fe.code ? FASTIFY_CODES[fe.code] : undefined
  if (mapped) {
    const message =
      mapped === 'LEDGER_ERR_INGEST_MEDIA_TYPE'
        ? `content-type: ${String(req?.headers['content-type'] ?? 'missing')} is not supported; send application/json`
        : mapped === 'LEDGER_ERR_INGEST_TOO_LARGE'
          ? `body: larger than the request body limit (${fe.message})`
          : `body: ${fe.message}`
    return { status: ERROR_CATALOG[mapped].status, body: { error: { code: mapped, message } } }
  }
  if (fe.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || (fe.statusCode === 400 && /JSON/i.test(fe.message))) {
    return { status: 400, body: { error: { code: 'LEDGER_ERR_INGEST_BODY', message: `body: not valid JSON (${fe.message})` } } }
  }
  if (fe.statusCode !== undefined && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { status: fe.statusCode, body: { error: { code: 'LEDGER_ERR_BAD_REQUEST', message: fe.message } } }
  }
  return { status: 500, body: { error: { code: 'LEDGER_ERR_INTERNAL', message: 'internal error' } } }
}

export function sendError(reply: FastifyReply, err: unknown, req?: FastifyRequest): FastifyReply {
  const { status, body, retryAfter } = toHttpError(err, req)
  if (status >= 500 && status !== 503) req?.log.error({ err }, 'unhandled error')
  if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter))
  return reply.status(status).send(body)
}

/**
 * Parses a request part (`query`, `body`, `params`) with a zod schema; a failure is a 400 whose
 * message names every bad field as `<where>.<field>: <problem>`.
 */
export function parseInput<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const result = schema.safeParse(value ?? {})
  if (result.success) return result.data
  const problems = result.error.issues.map((i) => {
    const keys = i.code === 'unrecognized_keys' ? `.${i.keys.join(',')}` : ''
    const path = [where, ...i.path.map(String)].join('.') + keys
    return { path, message: i.code === 'unrecognized_keys' ? 'is not a known field' : i.message }
  })
  throw new LedgerError('LEDGER_ERR_BAD_REQUEST', problems.map((p) => `${p.path}: ${p.message}`).join('; '), { context: { problems } })
}

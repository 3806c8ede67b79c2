import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'

interface SpanContextLike {
  traceId: string
  spanId: string
}
interface OtelApiLike {
  trace: { getActiveSpan(): { spanContext(): SpanContextLike } | undefined }
}

let api: OtelApiLike | null | undefined

/** `@opentelemetry/api` when the agent has it installed; the client works without it. */
function otel(): OtelApiLike | null {
  if (api !== undefined) return api
  try {
    api = createRequire(import.meta.url)('@opentelemetry/api') as OtelApiLike
  } catch {
    api = null
  }
  return api
}

const INVALID_TRACE = /^0+$/

/** The active span's W3C ids, if an OpenTelemetry span is active. */
export function activeSpanIds(): { traceId: string; spanId: string } | undefined {
  const ctx = otel()?.trace.getActiveSpan()?.spanContext()
  if (!ctx || INVALID_TRACE.test(ctx.traceId) || INVALID_TRACE.test(ctx.spanId)) return undefined
  return { traceId: ctx.traceId, spanId: ctx.spanId }
}

export function newTraceId(): string {
  return randomBytes(16).toString('hex')
}

export function newSpanId(): string {
  return randomBytes(8).toString('hex')
}

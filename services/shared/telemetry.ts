import { context, propagation, SpanStatusCode, trace, type Attributes, type Context } from '@opentelemetry/api'

export const TRACER_NAME = 'agent-ledger'
const tracer = () => trace.getTracer(TRACER_NAME)

/**
 * Runs `fn` in a span. Without an SDK registered, @opentelemetry/api is a no-op and this costs
 * a function call; `startTelemetry()` registers one only when OTEL_* variables ask for export.
 */
export async function withSpan<T>(name: string, attributes: Attributes, fn: () => Promise<T>, parent?: Context): Promise<T> {
  return tracer().startActiveSpan(name, { attributes }, parent ?? context.active(), async (span) => {
    try {
      return await fn()
    } catch (err) {
      span.recordException(err as Error)
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message })
      throw err
    } finally {
      span.end()
    }
  })
}

/** Extracts a W3C `traceparent` (and `tracestate`) carrier into a context. */
export function contextFromTraceparent(carrier: Record<string, string | undefined>): Context {
  return propagation.extract(context.active(), carrier)
}

export interface TelemetryHandle {
  enabled: boolean
  shutdown(): Promise<void>
}

/**
 * Starts the OpenTelemetry Node SDK when the standard variables ask for it
 * (OTEL_TRACES_EXPORTER other than `none`, or OTEL_EXPORTER_OTLP_ENDPOINT /
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). The SDK reads every other OTEL_* variable itself.
 */
export async function startTelemetry(serviceName: string, env: NodeJS.ProcessEnv = process.env): Promise<TelemetryHandle> {
  const exporter = env.OTEL_TRACES_EXPORTER
  const wanted =
    (exporter !== undefined && exporter !== 'none') ||
    env.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined ||
    env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined
  if (!wanted || env.OTEL_SDK_DISABLED === 'true') return { enabled: false, shutdown: async () => undefined }
  const { NodeSDK } = await import('@opentelemetry/sdk-node')
  if (env.OTEL_SERVICE_NAME === undefined) env.OTEL_SERVICE_NAME = serviceName
  const sdk = new NodeSDK()
  sdk.start()
  return { enabled: true, shutdown: () => sdk.shutdown() }
}

import type { FastifyPluginAsync } from 'fastify'

export interface DependencyHealth {
  ok: boolean
  /** Where the dependency is, e.g. `embedded chDB at .data/clickhouse` or a broker list. */
  target: string
  latencyMs: number
  error?: string
}

export type HealthCheck = () => Promise<{ ok: boolean; target: string; error?: string }>

/** Runs a check with a deadline so one hung dependency cannot hang the health endpoint. */
async function timed(check: HealthCheck, timeoutMs: number): Promise<DependencyHealth> {
  const started = performance.now()
  let timer: NodeJS.Timeout | undefined
  try {
    const result = await Promise.race([
      check(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
      }),
    ])
    return { ...result, latencyMs: Math.round(performance.now() - started) }
  } catch (err) {
    return { ok: false, target: '?', error: (err as Error).message, latencyMs: Math.round(performance.now() - started) }
  } finally {
    clearTimeout(timer)
  }
}

/**
 * `GET /healthz`: 200 with every dependency's state when all answer, 503 naming the one that
 * does not. Unauthenticated by design: it reveals only reachability, for load balancers.
 */
export const healthPlugin: FastifyPluginAsync<{ checks: Record<string, HealthCheck>; timeoutMs?: number }> = async (app, opts) => {
  app.get('/healthz', async (_req, reply) => {
    const names = Object.keys(opts.checks)
    const results = await Promise.all(names.map((n) => timed(opts.checks[n]!, opts.timeoutMs ?? 2_000)))
    const dependencies = Object.fromEntries(names.map((n, i) => [n, results[i]!]))
    const ok = results.every((r) => r.ok)
    return reply.status(ok ? 200 : 503).send({ status: ok ? 'ok' : 'degraded', dependencies })
  })
}

import type { FastifyPluginAsync, FastifyRequest } from 'fastify'

/**
 * `GET /metrics` in the Prometheus text format, from collectors each part registers (the
 * gateway's producer, the processors, the lineage sink, ...). Collectors read counters the parts
 * already keep; nothing is computed per scrape but the text. No tenant data appears in labels.
 */
export interface MetricSample {
  name: string
  help: string
  type: 'counter' | 'gauge'
  value: number
  labels?: Record<string, string>
}

export type MetricsCollector = () => MetricSample[]

export function renderMetrics(samples: readonly MetricSample[]): string {
  const byName = new Map<string, MetricSample[]>()
  for (const s of samples) {
    let list = byName.get(s.name)
    if (list === undefined) byName.set(s.name, (list = []))
    list.push(s)
  }
  const lines: string[] = []
  for (const [name, list] of byName) {
    lines.push(`# HELP ${name} ${list[0]!.help}`, `# TYPE ${name} ${list[0]!.type}`)
    for (const s of list) {
      const labels = s.labels && Object.keys(s.labels).length > 0 ? `{${Object.entries(s.labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',')}}` : ''
      lines.push(`${name}${labels} ${Number.isFinite(s.value) ? s.value : 'NaN'}`)
    }
  }
  return lines.join('\n') + '\n'
}

export const metricsPlugin: FastifyPluginAsync<{ collectors: MetricsCollector[]; authorize: (req: FastifyRequest) => Promise<void> }> = async (app, opts) => {
  app.get('/metrics', { preHandler: opts.authorize }, async (_req, reply) => {
    const samples = opts.collectors.flatMap((c) => c())
    return reply.type('text/plain; version=0.0.4').send(renderMetrics(samples))
  })
}

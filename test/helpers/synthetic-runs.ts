import { actionDigest } from '../../client/src/digest.ts'

/**
 * A deterministic stream of agent runs in the flat JSON form the gateway accepts: many tenants'
 * runs interleaved, each a run.started, model and tool calls, sometimes a loop, an unapproved
 * refund, a policy-denial streak or a tool error storm, then run.ended. Same seed, same events
 * (event ids included), so a crash test can compare against a replay.
 */
export interface SyntheticOptions {
  seed: number
  runs: number
  /** Events per run, roughly (min..max). */
  minSteps?: number
  maxSteps?: number
  tenant?: string
  startAt?: number
}

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
/** A ULID from a time and a counter: sortable within a run, reproducible. */
function ulidAt(ms: number, n: number): string {
  let time = ''
  for (let i = 0, t = ms; i < 10; i++, t = Math.floor(t / 32)) time = CROCKFORD[t % 32] + time
  let rand = ''
  for (let i = 0, c = n; i < 16; i++, c = Math.floor(c / 32)) rand = CROCKFORD[c % 32] + rand
  return time + rand
}

export function syntheticRuns(options: SyntheticOptions): Record<string, unknown>[][] {
  const rnd = mulberry32(options.seed)
  const tenant = options.tenant
  const minSteps = options.minSteps ?? 4
  const maxSteps = options.maxSteps ?? 30
  const t0 = options.startAt ?? Date.parse('2026-11-22T08:00:00Z')
  let counter = 0
  const runs: Record<string, unknown>[][] = []
  for (let r = 0; r < options.runs; r++) {
    const runId = `syn-${options.seed}-${r}`
    const agentVersion = `1.${Math.floor(rnd() * 3)}.0`
    const principal = { type: 'user', id: `u-${Math.floor(rnd() * 50)}` }
    let at = t0 + Math.floor(rnd() * 3_600_000)
    let step = 0
    const events: Record<string, unknown>[] = []
    const base = () => ({
      event_id: ulidAt(at, counter++),
      run_id: runId,
      step: step++,
      occurred_at: new Date(at).toISOString(),
      agent_name: 'refund-assistant',
      agent_version: agentVersion,
      principal,
      ...(tenant !== undefined ? { tenant } : {}),
    })
    events.push({ type: 'run.started', ...base(), owner: 'finance-ops', autonomy_mode: 'execute_with_approval', budget: { max_steps: 40, max_cost_usd: 0.5 } })
    const steps = minSteps + Math.floor(rnd() * (maxSteps - minSteps))
    const mischief = rnd()
    for (let i = 0; i < steps; i++) {
      at += 50 + Math.floor(rnd() * 2_000)
      const pick = rnd()
      if (mischief < 0.05 && i >= 2 && i <= 4) {
        // A refund loop: the same call three times.
        events.push({ type: 'tool.call', ...base(), tool: 'zendesk.read_ticket', action_class: 'read', argument_digest: actionDigest('zendesk.read_ticket', { ticket_id: 'ZD-LOOP' }), arguments: '{"ticket_id":"ZD-LOOP"}', status: 'ok', latency_ms: 50 })
      } else if (mischief >= 0.05 && mischief < 0.08 && i === 3) {
        const args = { charge_id: `ch_${r}`, amount_usd: 240 }
        events.push({ type: 'tool.call', ...base(), tool: 'stripe.create_refund', action_class: 'irreversible', argument_digest: actionDigest('stripe.create_refund', args), arguments: JSON.stringify(args), status: 'ok', latency_ms: 200, amount_usd: 240 })
      } else if (pick < 0.45) {
        const input = Math.floor(200 + rnd() * 2_000)
        events.push({ type: 'model.call', ...base(), provider: 'openai', model: 'gpt-4.1', input_tokens: input, output_tokens: Math.floor(input / 6), cost_usd: Math.round(input * 0.00002 * 1e6) / 1e6, latency_ms: 300, finish_reason: 'stop' })
      } else if (pick < 0.8) {
        const tool = rnd() < 0.5 ? 'zendesk.read_ticket' : 'stripe.lookup_charge'
        const args = { id: `${r}-${i}` }
        const failed = mischief > 0.97 || rnd() < 0.03
        events.push({ type: 'tool.call', ...base(), tool, action_class: 'read', argument_digest: actionDigest(tool, args), arguments: JSON.stringify(args), status: failed ? 'error' : 'ok', latency_ms: 80, ...(failed ? { error: 'timeout' } : {}) })
      } else if (pick < 0.9) {
        const b = base()
        events.push({ type: 'policy.decision', ...b, engine: 'opa', policy_id: 'refunds/allow', decision_id: b.event_id, decision: mischief > 0.92 ? 'deny' : 'allow', reasons: [] })
      } else {
        events.push({ type: 'evidence.retrieved', ...base(), source: 'zendesk', document_ids: [`ZD-${r}`], content_hashes: [`sha256:${'c'.repeat(64)}`] })
      }
    }
    at += 100
    events.push({ type: 'run.ended', ...base(), outcome: 'succeeded', totals: { steps: step + 1, input_tokens: 0, output_tokens: 0, cost_usd: 0, tool_calls: 0, duration_ms: 0 } })
    runs.push(events)
  }
  return runs
}

/** Interleaves runs the way concurrent agents would: each run's events stay in order. */
export function interleave(runs: Record<string, unknown>[][], seed: number): Record<string, unknown>[] {
  const rnd = mulberry32(seed)
  const cursors = runs.map(() => 0)
  const live = runs.map((_, i) => i)
  const out: Record<string, unknown>[] = []
  while (live.length > 0) {
    const k = Math.floor(rnd() * Math.min(live.length, 64))
    const r = live[k]!
    out.push(runs[r]![cursors[r]!]!)
    cursors[r]! += 1
    if (cursors[r]! >= runs[r]!.length) live.splice(k, 1)
  }
  return out
}

import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { KillSwitchDecision, Scope } from '../../schemas/control-schemas.ts'
import { contractLookupOf, type ContractsView } from '../../stream-processors/contracts/contracts-view.ts'
import { createRunGuardProcessor, runLimits, type RunGuardState } from '../../stream-processors/kill-switch/domain/run-guard.ts'
import type { LedgerEventView } from '../../stream-processors/domain-event.ts'
import type { ControlView } from './control-view.ts'

/**
 * Enforcement at the gateway: what the gateway knows about the runs it ingests (agent, version,
 * contract version, cost limit, cost emitted, open reservations) joined with the live control
 * view. It answers run status (in every emit response, `GET /v1/runs/{id}/status` and the SSE
 * streams) and `guard` (may this action run now?).
 *
 * Reservations: `guard` with an estimated cost reserves it; the reservation counts against the
 * run's cost limit until the event that carries the real cost is emitted with the reservation id
 * in `x-ledger-release`, or until it expires. So parallel calls of one run can together overshoot
 * the limit by at most what was under-estimated for the calls already in flight. Reservations
 * and the cost tally live in this gateway instance: send one run's traffic to one instance.
 *
 * The run guard at the edge: for a run this instance has seen from its `run.started` on, the
 * gateway folds each acknowledged event through the same pure run guard the processor runs
 * (stream-processors/kill-switch/domain/run-guard.ts), on the same view of the event the
 * processor decodes, in the same order (one instance, one producer, one partition per run). When
 * it trips, the run is refused at once, with the very decision (same id, trigger, reason and
 * tripping event) the processor publishes on the control topic a few tens of milliseconds later.
 * The control topic stays the source of truth: once it holds any decision about the run (the
 * processor's, or an operator's kill or release), that decision is what counts. A run this
 * instance did not see start (another instance, or a restart) gets no edge verdict, only the
 * processor's.
 */
export type RefusalKind = 'run_killed' | 'circuit_open' | 'budget_exceeded'

export interface Refusal {
  error: RefusalKind
  scope: Scope
  scope_key: string
  trigger: KillSwitchDecision['trigger'] | 'reservation'
  reason: string
  tripping_event_id: string | null
  decision_id: string | null
  decided_at: number | null
}

export interface RunStatus {
  run_id: string
  status: 'active' | 'killed' | 'unknown'
  killed?: Refusal
  circuits: { tool: string; state: KillSwitchDecision['state']; reason: string; retry_at: number | null; tripping_event_id: string | null }[]
  budget?: { cost_usd_limit: number | null; cost_usd_emitted: number; cost_usd_reserved: number }
}

export interface GuardRequest {
  tool?: string
  estimated_cost_usd?: number
  agent_name?: string
  agent_version?: string
}

export type GuardResult =
  | { allowed: true; run_id: string; status: RunStatus; reservation?: { id: string; cost_usd: number; expires_at: number } }
  | { allowed: false; run_id: string; status: RunStatus; refusal: Refusal }

interface RunInfo {
  agentName: string | undefined
  agentVersion: string | undefined
  contractVersion: string | undefined
  costLimitUsd: number | undefined
  emittedUsd: number
  reservations: Map<string, { usd: number; expiresAt: number }>
  /** Events of the run this instance acknowledged. */
  accepted: number
  /** The edge run guard's state, while the run is followed from its start and not yet ended or killed. */
  guard: RunGuardState | undefined
  /** The edge run guard's kill, as the processor will publish it. */
  edgeKill: KillSwitchDecision | undefined
}

export interface RunControlOptions {
  view: ControlView
  contracts?: ContractsView
  maxRuns?: number
  reservationTtlMs?: number
  now?: () => number
}

export class RunControl {
  private readonly runs = new Map<string, RunInfo>()
  /** Half-open probes granted, per decision id: one probe per open period. */
  private readonly probes = new Set<string>()
  private readonly maxRuns: number
  private readonly ttlMs: number
  private readonly now: () => number
  private readonly runGuard: ReturnType<typeof createRunGuardProcessor>
  private readonly edgeKills = new EventEmitter()

  constructor(private readonly options: RunControlOptions) {
    this.maxRuns = options.maxRuns ?? 200_000
    this.ttlMs = options.reservationTtlMs ?? 120_000
    this.now = options.now ?? Date.now
    this.runGuard = createRunGuardProcessor(contractLookupOf(options.contracts))
  }

  /** Kills the edge run guard decides, as they happen (the SSE streams push them). */
  onEdgeKill(listener: (d: KillSwitchDecision) => void): () => void {
    this.edgeKills.on('kill', listener)
    return () => this.edgeKills.off('kill', listener)
  }

  private info(tenant: string, runId: string, create: boolean): RunInfo | undefined {
    const key = `${tenant}/${runId}`
    let info = this.runs.get(key)
    if (info !== undefined) {
      // Refresh recency: Map iteration order is insertion order, the oldest is evicted first.
      this.runs.delete(key)
      this.runs.set(key, info)
      return info
    }
    if (!create) return undefined
    info = { agentName: undefined, agentVersion: undefined, contractVersion: undefined, costLimitUsd: undefined, emittedUsd: 0, reservations: new Map(), accepted: 0, guard: undefined, edgeKill: undefined }
    this.runs.set(key, info)
    if (this.runs.size > this.maxRuns) this.runs.delete(this.runs.keys().next().value!)
    return info
  }

  /** Before encoding: every event records the contract version its run runs under. */
  stamp(tenant: string, event: Record<string, unknown>): void {
    const info = this.info(tenant, String(event.run_id), true)!
    info.agentName = String(event.agent_name)
    info.agentVersion = String(event.agent_version)
    if (typeof event.contract_version === 'string') {
      info.contractVersion ??= event.contract_version
      return
    }
    if (info.contractVersion === undefined && event.type === 'run.started') {
      const contracts = this.options.contracts
      const published = contracts?.get(tenant, info.agentName, info.agentVersion) !== undefined ? info.agentVersion : contracts?.latest(tenant, info.agentName)?.version
      info.contractVersion = published
    }
    if (info.contractVersion !== undefined) event.contract_version = info.contractVersion
  }

  /**
   * After Kafka acknowledged, in log order: tally cost, learn limits, release the reservations the
   * emitter names, and step the edge run guard. `events` are the events as the processors decode
   * them (the flat form of the Avro record written: redacted, with tenant and times in ms).
   */
  accepted(tenant: string, events: readonly LedgerEventView[], releases: readonly string[]): void {
    for (const event of events) {
      const info = this.info(tenant, String(event.run_id), true)!
      info.accepted += 1
      if (event.type === 'run.started' && info.accepted === 1) info.guard = this.runGuard.initial(event, `${tenant}/${event.run_id}`)
      if (info.guard !== undefined) {
        const { state, emits } = this.runGuard.step(info.guard, event, `${tenant}/${event.run_id}`)
        info.guard = state
        const kill = emits.find((e) => e.kind === 'kill_switch.decision')
        if (kill !== undefined) {
          info.edgeKill = kill.record as KillSwitchDecision
          info.guard = undefined
          this.edgeKills.emit('kill', info.edgeKill)
        } else if (event.type === 'run.ended') info.guard = undefined
      }
      if (event.type === 'run.started') {
        const contract = info.contractVersion !== undefined && info.agentName !== undefined ? this.options.contracts?.get(tenant, info.agentName, info.contractVersion) : undefined
        info.costLimitUsd = runLimits(event, contract).cost_usd
      }
      if (event.type === 'model.call' && typeof event.cost_usd === 'number') info.emittedUsd += event.cost_usd
      for (const id of releases) info.reservations.delete(id)
    }
  }

  status(tenant: string, runId: string, hint: { agent_name?: string; agent_version?: string } = {}): RunStatus {
    const info = this.info(tenant, runId, false)
    const view = this.options.view
    // The control topic's decision about the run wins; until it has one, the edge run guard's kill.
    const runDecision = view.get('run', tenant, runId) ?? info?.edgeKill
    const agentName = info?.agentName ?? hint.agent_name ?? runDecision?.agent_name ?? undefined
    const agentVersion = info?.agentVersion ?? hint.agent_version ?? runDecision?.agent_version ?? undefined
    const candidates = [
      runDecision,
      agentName !== undefined && agentVersion !== undefined ? view.get('agent_version', tenant, `${agentName}@${agentVersion}`) : undefined,
      view.get('tenant', tenant, tenant),
    ]
    const kill = candidates.find((d) => d?.state === 'killed')
    const now = this.now()
    const status: RunStatus = {
      run_id: runId,
      status: kill !== undefined ? 'killed' : info === undefined && runDecision === undefined ? 'unknown' : 'active',
      circuits: view.toolStates(tenant).map((d) => ({ tool: d.scope_key, state: d.state, reason: d.reason, retry_at: d.retry_at, tripping_event_id: d.tripping_event_id })),
    }
    if (kill !== undefined) status.killed = refusalOf(kill)
    if (info !== undefined) {
      let reserved = 0
      for (const [id, r] of info.reservations) {
        if (r.expiresAt <= now) info.reservations.delete(id)
        else reserved += r.usd
      }
      status.budget = { cost_usd_limit: info.costLimitUsd ?? null, cost_usd_emitted: round(info.emittedUsd), cost_usd_reserved: round(reserved) }
    }
    return status
  }

  guard(tenant: string, runId: string, request: GuardRequest): GuardResult {
    const status = this.status(tenant, runId, request)
    if (status.killed !== undefined) return { allowed: false, run_id: runId, status, refusal: status.killed }
    if (request.tool !== undefined) {
      const d = this.options.view.toolStates(tenant).find((t) => t.scope_key === request.tool)
      if (d !== undefined) {
        const probeDue = d.state === 'circuit_half_open' || (d.state === 'circuit_open' && d.retry_at !== null && this.now() >= d.retry_at)
        if (!probeDue || this.probes.has(d.decision_id)) return { allowed: false, run_id: runId, status, refusal: refusalOf(d) }
        this.probes.add(d.decision_id)
        if (this.probes.size > 100_000) this.probes.delete(this.probes.values().next().value!)
      }
    }
    const estimate = request.estimated_cost_usd
    if (estimate === undefined || estimate === 0) return { allowed: true, run_id: runId, status }
    const info = this.info(tenant, runId, true)!
    const limit = info.costLimitUsd
    const reserved = status.budget?.cost_usd_reserved ?? 0
    if (limit !== undefined && info.emittedUsd + reserved + estimate > limit) {
      return {
        allowed: false,
        run_id: runId,
        status,
        refusal: {
          error: 'budget_exceeded',
          scope: 'run',
          scope_key: runId,
          trigger: 'reservation',
          reason: `$${round(info.emittedUsd)} emitted + $${round(reserved)} reserved + $${estimate} estimated would exceed the run's limit of $${limit}`,
          tripping_event_id: null,
          decision_id: null,
          decided_at: null,
        },
      }
    }
    const reservation = { id: randomUUID(), cost_usd: estimate, expires_at: this.now() + this.ttlMs }
    info.reservations.set(reservation.id, { usd: estimate, expiresAt: reservation.expires_at })
    status.budget = { cost_usd_limit: limit ?? null, cost_usd_emitted: round(info.emittedUsd), cost_usd_reserved: round(reserved + estimate) }
    return { allowed: true, run_id: runId, status, reservation }
  }

  /** Whether a decision concerns a run (for its SSE stream). */
  concerns(tenant: string, runId: string, d: KillSwitchDecision): boolean {
    if (d.tenant !== tenant) return false
    if (d.scope === 'run') return d.scope_key === runId
    if (d.scope === 'agent_version') {
      const info = this.info(tenant, runId, false)
      return info === undefined || `${info.agentName}@${info.agentVersion}` === d.scope_key
    }
    return true
  }
}

export function refusalOf(d: KillSwitchDecision): Refusal {
  return {
    error: d.scope === 'tool' ? 'circuit_open' : d.trigger === 'budget_breach' ? 'budget_exceeded' : 'run_killed',
    scope: d.scope,
    scope_key: d.scope_key,
    trigger: d.trigger,
    reason: d.reason,
    tripping_event_id: d.tripping_event_id,
    decision_id: d.decision_id,
    decided_at: d.decided_at,
  }
}

function round(n: number): number {
  return Math.round(n * 1e6) / 1e6
}

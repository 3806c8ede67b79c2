import { actionDigest, sha256 } from './digest.ts'
import type { LedgerClientError } from './errors.ts'
import type {
  ApprovalDecidedFields,
  ApprovalRequestedFields,
  BudgetSnapshot,
  EvidenceRetrievedFields,
  HumanOverrideFields,
  ModelCallFields,
  PolicyDecisionFields,
  Principal,
  RunEndedFields,
  RunStartedFields,
  RunTotals as GeneratedRunTotals,
  ToolCallFields,
} from './generated/events.ts'
import { activeSpanIds, newSpanId, newTraceId } from './otel.ts'
import { BudgetExceededError, CircuitOpenError, LedgerGuardUnavailableError, RunKilledError, type GuardRefusal } from './errors.ts'
import { Transport, type TransportStats } from './transport.ts'
import { ulid } from './ulid.ts'

export interface LedgerClientOptions {
  /** The gateway's base URL, e.g. `http://127.0.0.1:8080`. */
  endpoint: string
  /** An `emit` API key. */
  apiKey: string
  agent: { name: string; version: string }
  /** Events per request (default 100). */
  batchSize?: number
  /** Background flush interval (default 200 ms). */
  flushIntervalMs?: number
  /**
   * Unsent events held in memory (default 10,000). When full, a new event is not queued: it is
   * counted in `stats.dropped` and reported to `onError` (thrown in strict mode). Nothing is
   * dropped silently.
   */
  maxBufferedEvents?: number
  requestTimeoutMs?: number
  maxRetryDelayMs?: number
  /** Throw transport problems into the agent (buffer full, flush time-out). Default false. */
  strict?: boolean
  /** Called for every transport problem; the default writes one line to stderr. */
  onError?: (err: LedgerClientError) => void
  /** Called with each 202 body (run status rides on it). */
  onResponse?: (body: unknown) => void
  fetch?: typeof fetch
  /** How long `guard()` waits for queued events and the gateway's answer (default 2 s). */
  guardTimeoutMs?: number
}

export interface StartRunOptions {
  principal: Principal
  owner: string
  autonomyMode?: RunStartedFields['autonomy_mode']
  budget?: BudgetSnapshot
  contractVersion?: string
  goal?: string
  /** Defaults to a new ULID. */
  runId?: string
}

/**
 * Fields every event method accepts: causation, event time, and the permit from the `guard()`
 * that cleared this action (its cost reservation is released with this event).
 */
type Common = { parentEventId?: string; occurredAt?: Date | number; permit?: Permit }

/** What `guard()` returns when the action may run. */
export interface Permit {
  /** Set when `guard()` reserved an estimated cost. */
  readonly reservationId: string | undefined
  /** Gives the reservation back without an event (the call did not happen). Idempotent. */
  release(): void
}

/** What the agent is about to do, for `guard()`. */
export interface GuardAction {
  /** The tool about to be called: refused while its circuit breaker is open. */
  tool?: string
  /** Reserve this much of the run's cost budget until the event with the real cost is emitted. */
  estimatedCostUsd?: number
}
export type ModelCallInput = ModelCallFields & Common
export type ToolCallInput = Omit<ToolCallFields, 'argument_digest' | 'arguments'> & { arguments: unknown } & Common
export type PolicyDecisionInput = Omit<PolicyDecisionFields, 'decision_id'> & { decision_id?: string } & Common
export type ApprovalRequestInput = Omit<ApprovalRequestedFields, 'approval_id'> & { approval_id?: string } & Common
export type ApprovalRecordInput = ApprovalDecidedFields & Common
export type EvidenceInput = EvidenceRetrievedFields & Common
export type OverrideInput = HumanOverrideFields & Common
export type EndInput = Pick<RunEndedFields, 'outcome' | 'reason'> & Common

/** What a run has used so far; `run.ended` adds the duration. */
export type RunTotals = Omit<GeneratedRunTotals, 'duration_ms'>

/** One agent run. Every method queues an event and returns its id at once; none blocks. */
export interface RunHandle {
  readonly runId: string
  readonly traceId: string
  /** The id of the run's `run.started` event. */
  readonly startedEventId: string
  readonly totals: Readonly<RunTotals>
  modelCall(input: ModelCallInput): string
  /** Records a tool call; computes the argument digest approvals bind to. */
  toolCall(input: ToolCallInput): { eventId: string; actionDigest: string }
  policyDecision(input: PolicyDecisionInput): string
  requestApproval(input: ApprovalRequestInput): { eventId: string; approvalId: string }
  /** Records a human's decision (actor `human`, principal = the approver). */
  recordApproval(input: ApprovalRecordInput): string
  evidence(input: EvidenceInput): string
  override(input: OverrideInput): string
  end(input: EndInput): string
  /**
   * Checks with the gateway, after sending what is queued, that the run may take its next action.
   * Resolves with a permit; pass it to the event method that records the action.
   * @throws RunKilledError the run, its agent version or the tenant was killed
   * @throws CircuitOpenError the tool's circuit breaker is open
   * @throws BudgetExceededError a budget was breached, or the estimate does not fit what is left
   * @throws LedgerGuardUnavailableError no answer from the gateway (guard fails closed)
   */
  guard(action?: GuardAction): Promise<Permit>
}

export interface LedgerClient {
  startRun(options: StartRunOptions): RunHandle
  readonly stats: Readonly<TransportStats>
  /** Sends everything queued; in strict mode rejects if it could not within `timeoutMs`. */
  flush(timeoutMs?: number): Promise<void>
  /** Flushes, then stops the background timer. */
  close(timeoutMs?: number): Promise<void>
}

/** The optional causation and time fields every event method accepts. */
function common(parentEventId: string | undefined, occurredAt: Date | number | undefined, permit?: Permit): Common {
  return { ...(parentEventId ? { parentEventId } : {}), ...(occurredAt ? { occurredAt } : {}), ...(permit ? { permit } : {}) }
}

/**
 * The thin client: two lines to start a run, emitting never blocks or throws into the agent
 * (unless `strict`), events are batched, retried with the same ids, and bounded in memory.
 */
export function createLedgerClient(options: LedgerClientOptions): LedgerClient {
  const transport = new Transport({
    endpoint: options.endpoint.replace(/\/$/, ''),
    apiKey: options.apiKey,
    batchSize: options.batchSize ?? 100,
    flushIntervalMs: options.flushIntervalMs ?? 200,
    maxBufferedEvents: options.maxBufferedEvents ?? 10_000,
    requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
    maxRetryDelayMs: options.maxRetryDelayMs ?? 5_000,
    strict: options.strict ?? false,
    onError: options.onError ?? ((err) => process.stderr.write(`[agent-ledger] ${err.message}\n`)),
    ...(options.onResponse ? { onResponse: options.onResponse } : {}),
    fetch: options.fetch ?? fetch,
  })

  const endpoint = options.endpoint.replace(/\/$/, '')
  const fetchImpl = options.fetch ?? fetch
  const guardTimeoutMs = options.guardTimeoutMs ?? 2_000

  function startRun(run: StartRunOptions): RunHandle {
    const runId = run.runId ?? ulid()
    const active = activeSpanIds()
    const traceId = active?.traceId ?? newTraceId()
    const startedAt = Date.now()
    let step = 0
    const totals: RunTotals = { steps: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0, tool_calls: 0 }

    const emit = (type: string, fields: Record<string, unknown>, common: Common, extra: { actor?: string; principal?: Principal } = {}): string => {
      const eventId = ulid()
      const span = activeSpanIds()
      const { parentEventId, occurredAt, permit, ...body } = { ...fields, ...common } as Record<string, unknown> & Common
      const event = {
        type,
        event_id: eventId,
        run_id: runId,
        step: step++,
        occurred_at: occurredAt instanceof Date ? occurredAt.toISOString() : (occurredAt ?? new Date().toISOString()),
        agent_name: options.agent.name,
        agent_version: options.agent.version,
        principal: extra.principal ?? run.principal,
        actor: extra.actor ?? 'agent',
        trace_id: span?.traceId === traceId ? span.traceId : traceId,
        span_id: span?.traceId === traceId ? span.spanId : newSpanId(),
        ...(parentEventId ? { parent_event_id: parentEventId } : {}),
        ...(run.contractVersion ? { contract_version: run.contractVersion } : {}),
        ...body,
      }
      totals.steps = step
      transport.enqueue(event)
      permit?.release()
      return eventId
    }

    const startedEventId = emit(
      'run.started',
      { owner: run.owner, autonomy_mode: run.autonomyMode ?? 'execute_with_approval', budget: run.budget ?? {}, ...(run.goal ? { goal: run.goal } : {}) },
      {},
    )

    return {
      runId,
      traceId,
      startedEventId,
      totals,
      modelCall(input) {
        const { parentEventId, occurredAt, permit, ...fields } = input
        totals.input_tokens += fields.input_tokens
        totals.output_tokens += fields.output_tokens
        totals.cost_usd += fields.cost_usd
        return emit('model.call', fields, common(parentEventId, occurredAt, permit))
      },
      toolCall(input) {
        const { parentEventId, occurredAt, permit, arguments: args, ...fields } = input
        const digest = actionDigest(fields.tool, args)
        totals.tool_calls += 1
        const eventId = emit('tool.call', { ...fields, argument_digest: digest, arguments: JSON.stringify(args ?? null) }, common(parentEventId, occurredAt, permit))
        return { eventId, actionDigest: digest }
      },
      policyDecision(input) {
        const { parentEventId, occurredAt, permit, ...fields } = input
        return emit('policy.decision', { decision_id: ulid(), ...fields }, common(parentEventId, occurredAt, permit))
      },
      requestApproval(input) {
        const { parentEventId, occurredAt, permit, ...fields } = input
        const approvalId = fields.approval_id ?? ulid()
        const eventId = emit('approval.requested', { ...fields, approval_id: approvalId }, common(parentEventId, occurredAt, permit))
        return { eventId, approvalId }
      },
      recordApproval(input) {
        const { parentEventId, occurredAt, permit, ...fields } = input
        return emit('approval.decided', fields, common(parentEventId, occurredAt, permit), { actor: 'human', principal: fields.approver })
      },
      evidence(input) {
        const { parentEventId, occurredAt, permit, ...fields } = input
        return emit('evidence.retrieved', fields, common(parentEventId, occurredAt, permit))
      },
      override(input) {
        const { parentEventId, occurredAt, permit, ...fields } = input
        return emit('human.override', fields, common(parentEventId, occurredAt, permit), { actor: 'human', principal: fields.operator })
      },
      end(input) {
        const { parentEventId, occurredAt, permit, ...fields } = input
        return emit(
          'run.ended',
          { ...fields, totals: { ...totals, steps: step + 1, duration_ms: Date.now() - startedAt } },
          common(parentEventId, occurredAt, permit),
        )
      },
      async guard(action = {}) {
        // What the agent already emitted must reach the gateway first: the last event may be the
        // one that trips a kill switch.
        await transport.flush(guardTimeoutMs).catch(() => undefined)
        let res: Response
        try {
          res = await fetchImpl(`${endpoint}/v1/runs/${encodeURIComponent(runId)}/guard`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${options.apiKey}` },
            body: JSON.stringify({
              agent_name: options.agent.name,
              agent_version: options.agent.version,
              ...(action.tool !== undefined ? { tool: action.tool } : {}),
              ...(action.estimatedCostUsd !== undefined ? { estimated_cost_usd: action.estimatedCostUsd } : {}),
            }),
            signal: AbortSignal.timeout(guardTimeoutMs),
          })
        } catch (err) {
          throw new LedgerGuardUnavailableError(`guard for run ${runId}: ${(err as Error).message}`, { cause: err })
        }
        const body = (await res.json().catch(() => ({}))) as { allowed?: boolean; refusal?: GuardRefusal; reservation?: { id: string }; error?: { message?: string } }
        if (!res.ok || typeof body.allowed !== 'boolean') {
          throw new LedgerGuardUnavailableError(`guard for run ${runId}: gateway answered ${res.status} ${body.error?.message ?? ''}`)
        }
        if (!body.allowed) {
          const refusal = body.refusal!
          if (refusal.error === 'circuit_open') throw new CircuitOpenError(runId, refusal)
          if (refusal.error === 'budget_exceeded') throw new BudgetExceededError(runId, refusal)
          throw new RunKilledError(runId, refusal)
        }
        const reservationId = body.reservation?.id
        let released = false
        return {
          reservationId,
          release() {
            if (released || reservationId === undefined) return
            released = true
            transport.release(reservationId)
          },
        }
      },
    }
  }

  return {
    startRun,
    stats: transport.stats,
    flush: (timeoutMs) => transport.flush(timeoutMs),
    close: (timeoutMs) => transport.close(timeoutMs),
  }
}

export { actionDigest, sha256 }

import type { Trigger } from '../../../schemas/control-schemas.ts'
import { emptyBudget, limitsFromSnapshot, reduceBudget, type BudgetState, type Limits } from '../../budget/domain/budget-reducer.ts'
import type { AgentContract } from '../../contracts/agent-contract.ts'
import { toolRuleOf } from '../../contracts/agent-contract.ts'
import type { LedgerEventView } from '../../domain-event.ts'
import type { Processor } from '../../runtime/processor.ts'
import { emptyGate, reduceGate, type GateState } from './approval-gate.ts'
import { budgetAlert, decision, type ContractLookup, type ControlEmit } from './control-records.ts'
import { emptyLoopState, reduceLoop, type LoopState } from './loop-detector.ts'

/**
 * The per-run guard: one state per run folding the run's budget, loop detector, approval gate and
 * per-tool call caps. The first trigger kills the run (one decision per run, ever); budget
 * thresholds and breaches are announced once each; the run's budget state is emitted on every
 * event (coalesced per batch by the runner). Pure: time is event time, contracts come from an
 * immutable lookup.
 */
export interface RunGuardState {
  agentName: string
  agentVersion: string
  contractVersion: string | null
  limits: Limits
  softThreshold: number
  budget: BudgetState
  loop: LoopState
  gate: GateState
  toolCalls: Record<string, number>
  killed: { trigger: Trigger; eventId: string } | null
}

export const RUN_GUARD = 'run-guard'

export function createRunGuardProcessor(contracts: ContractLookup): Processor<RunGuardState, ControlEmit> {
  return {
    name: RUN_GUARD,
    keysOf: (event) => [`${event.tenant}/${event.run_id}`],
    initial: (event) => ({
      agentName: event.agent_name,
      agentVersion: event.agent_version,
      contractVersion: null,
      limits: {},
      softThreshold: 0.8,
      budget: emptyBudget(),
      loop: emptyLoopState(),
      gate: emptyGate(),
      toolCalls: {},
      killed: null,
    }),
    step(state, event) {
      const contractVersion = typeof event.contract_version === 'string' ? event.contract_version : state.contractVersion
      const contract = contracts(event.tenant, event.agent_name, contractVersion ?? undefined, event.agent_version)
      let { limits, softThreshold } = state
      if (event.type === 'run.started') {
        limits = runLimits(event, contract)
        softThreshold = contract?.budgets.soft_threshold ?? 0.8
      }
      const budgetStep = reduceBudget(state.budget, event, limits, softThreshold)
      // A redelivered or repeated event id changes nothing (the budget reducer saw it already).
      if (budgetStep.state === state.budget) return { state, emits: [] }

      const emits: ControlEmit[] = []
      const triggers: { trigger: Trigger; reason: string }[] = []
      for (const b of budgetStep.emits) {
        emits.push(budgetAlert({ tenant: event.tenant, scope: 'run', scopeKey: event.run_id, window: 'run', dimension: b.dimension, level: b.kind === 'budget.breach' ? 'breach' : 'soft_threshold', used: b.used, limit: b.limit, event }))
        if (b.kind === 'budget.breach') triggers.push({ trigger: 'budget_breach', reason: `${b.dimension} ${round(b.used)} exceeds the run's limit of ${b.limit}` })
      }

      let toolCalls = state.toolCalls
      if (event.type === 'tool.call') {
        const tool = String(event.tool)
        const calls = (toolCalls[tool] ?? 0) + 1
        toolCalls = { ...toolCalls, [tool]: calls }
        const max = contract === undefined ? undefined : toolRuleOf(contract, tool)?.max_calls_per_run
        if (max !== undefined && calls > max) triggers.push({ trigger: 'budget_breach', reason: `${tool} called ${calls} times; the contract allows ${max} per run` })
      }

      const loopOptions = { maxRepeats: contract?.loop_detection.max_repeats ?? 3, windowMs: (contract?.loop_detection.window_seconds ?? 300) * 1000 }
      const loopStep = reduceLoop(state.loop, event, loopOptions)
      for (const trip of loopStep.emits) {
        const tool = trip.key.startsWith('tool:') ? trip.key.split(':')[1] : undefined
        triggers.push(
          tool !== undefined
            ? { trigger: 'tool_loop', reason: `${tool} called ${trip.repeats} times with the same arguments within ${loopOptions.windowMs / 1000} s` }
            : { trigger: 'model_input_loop', reason: `the same model input sent ${trip.repeats} times within ${loopOptions.windowMs / 1000} s` },
        )
      }

      let gate = state.gate
      if (contract !== undefined) {
        const gateStep = reduceGate(state.gate, event, contract)
        gate = gateStep.state
        for (const v of gateStep.emits) {
          if (v.kind === 'gate.tool_not_allowed') triggers.push({ trigger: 'tool_not_allowed', reason: `${v.tool} is not on the contract's allowlist` })
          else if (v.kind === 'gate.unapproved_action') triggers.push({ trigger: 'unapproved_action', reason: `${v.reason}; no granted approval is bound to ${v.actionDigest}` })
          else triggers.push({ trigger: 'policy_denial_streak', reason: `${v.denials} policy denials in a row` })
        }
      }

      let killed = state.killed
      const first = triggers[0]
      if (killed === null && first !== undefined) {
        killed = { trigger: first.trigger, eventId: event.event_id }
        emits.push(decision({ tenant: event.tenant, scope: 'run', scopeKey: event.run_id, state: 'killed', trigger: first.trigger, reason: first.reason, event, decidedBy: RUN_GUARD }))
      }
      const budget = budgetStep.state
      emits.push({
        kind: 'budget.state',
        record: {
          tenant: event.tenant,
          scope: 'run',
          scope_key: event.run_id,
          window: 'run',
          ...budget.used,
          events: budget.eventsSeen,
          last_event_id: event.event_id,
          updated_at: event.occurred_at,
        },
      })
      return {
        state: { agentName: event.agent_name, agentVersion: event.agent_version, contractVersion, limits, softThreshold, budget, loop: loopStep.state, gate, toolCalls, killed },
        emits,
      }
    },
  }
}

/** The run's limits: its budget snapshot, tightened by its contract's budgets where both set one. */
export function runLimits(event: LedgerEventView, contract: AgentContract | undefined): Limits {
  const limits = limitsFromSnapshot(event.budget as Record<string, unknown> | null)
  const b = contract?.budgets
  if (b === undefined) return limits
  const fromContract: Limits = {
    ...(b.max_steps !== undefined ? { steps: b.max_steps } : {}),
    ...(b.max_input_tokens !== undefined ? { input_tokens: b.max_input_tokens } : {}),
    ...(b.max_output_tokens !== undefined ? { output_tokens: b.max_output_tokens } : {}),
    ...(b.max_cost_usd_per_run !== undefined ? { cost_usd: b.max_cost_usd_per_run } : {}),
    ...(b.max_tool_calls !== undefined ? { tool_calls: b.max_tool_calls } : {}),
    ...(b.max_wall_clock_seconds !== undefined ? { wall_clock_seconds: b.max_wall_clock_seconds } : {}),
  }
  for (const [d, v] of Object.entries(fromContract) as [keyof Limits, number][]) limits[d] = Math.min(limits[d] ?? Infinity, v)
  return limits
}

function round(n: number): number {
  return Math.round(n * 1e6) / 1e6
}

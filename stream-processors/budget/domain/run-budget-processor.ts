import type { LedgerEventView } from '../../domain-event.ts'
import type { Processor } from '../../runtime/processor.ts'
import { emptyBudget, limitsFromSnapshot, reduceBudget, type BudgetEmit, type BudgetState, type Limits } from './budget-reducer.ts'

/** Per-run budget: limits come from the run's `run.started` budget snapshot. */
export interface RunBudget {
  limits: Limits
  budget: BudgetState
}

export type RunBudgetEmit = BudgetEmit & { tenant: string; runId: string }

export const runBudgetProcessor: Processor<RunBudget, RunBudgetEmit> = {
  name: 'run-budget',
  keysOf: (event) => [`${event.tenant}/${event.run_id}`],
  initial: () => ({ limits: {}, budget: emptyBudget() }),
  step(state, event: LedgerEventView) {
    const limits = event.type === 'run.started' ? limitsFromSnapshot(event.budget as Record<string, unknown> | null) : state.limits
    const { state: budget, emits } = reduceBudget(state.budget, event, limits)
    return { state: { limits, budget }, emits: emits.map((e) => ({ ...e, tenant: event.tenant, runId: event.run_id })) }
  },
}

import type { BudgetScope } from '../../../schemas/control-schemas.ts'
import type { LedgerEventView } from '../../domain-event.ts'
import { budgetAlert, decision, type ContractLookup, type ControlEmit } from '../../kill-switch/domain/control-records.ts'
import type { Processor } from '../../runtime/processor.ts'
import { usageOf, type Dimension } from './budget-reducer.ts'

/**
 * Budgets across runs: per agent version per UTC day, per principal per UTC day, per tenant per
 * UTC day and month. Every event updates four states. Cost is summed in integer micro-dollars and
 * tokens are integers, so totals do not depend on the order runs interleave in — a replay gives
 * the same totals to the last digit. Limits: `budgets.max_cost_usd_per_day` and
 * `max_cost_usd_per_principal_per_day` from the agent's contract, tenant limits from the
 * processor's configuration. A breach of an agent version's or tenant's budget kills that scope.
 */
export interface AggregateState {
  /** cost_usd in micro-dollars; the rest as counted. */
  used: Record<Dimension, number>
  events: number
  softAlerted: boolean
  breached: boolean
}

export interface TenantBudgetLimits {
  maxCostUsdPerDay?: number
  maxCostUsdPerMonth?: number
}

export const BUDGET_AGGREGATES = 'budget-aggregates'

interface AggregateKey {
  scope: BudgetScope
  scopeKey: string
  window: string
}

export function aggregateKeys(event: LedgerEventView): AggregateKey[] {
  const iso = new Date(event.occurred_at).toISOString()
  const day = `day:${iso.slice(0, 10)}`
  return [
    { scope: 'agent_version', scopeKey: `${event.agent_name}@${event.agent_version}`, window: day },
    { scope: 'principal', scopeKey: `${event.principal.type}:${event.principal.id}`, window: day },
    { scope: 'tenant', scopeKey: event.tenant, window: day },
    { scope: 'tenant', scopeKey: event.tenant, window: `month:${iso.slice(0, 7)}` },
  ]
}

const encodeKey = (tenant: string, k: AggregateKey) => `${k.scope}/${tenant}/${k.scopeKey}/${k.window}`

export function createBudgetAggregatesProcessor(contracts: ContractLookup, tenantLimits: TenantBudgetLimits = {}): Processor<AggregateState, ControlEmit> {
  return {
    name: BUDGET_AGGREGATES,
    keysOf: (event) => (event.type === 'run.started' || event.type === 'run.ended' ? [] : aggregateKeys(event).map((k) => encodeKey(event.tenant, k))),
    initial: () => ({ used: { steps: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0, tool_calls: 0, wall_clock_seconds: 0 }, events: 0, softAlerted: false, breached: false }),
    step(state, event, key) {
      const k = aggregateKeys(event).find((a) => encodeKey(event.tenant, a) === key)!
      const used = { ...state.used }
      for (const [d, amount] of Object.entries(usageOf(event)) as [Dimension, number][]) used[d] += d === 'cost_usd' ? Math.round(amount * 1e6) : amount
      const contract = contracts(event.tenant, event.agent_name, typeof event.contract_version === 'string' ? event.contract_version : undefined, event.agent_version)
      const limitUsd =
        k.scope === 'agent_version'
          ? contract?.budgets.max_cost_usd_per_day
          : k.scope === 'principal'
            ? contract?.budgets.max_cost_usd_per_principal_per_day
            : k.window.startsWith('day:')
              ? tenantLimits.maxCostUsdPerDay
              : tenantLimits.maxCostUsdPerMonth
      const soft = contract?.budgets.soft_threshold ?? 0.8
      const costUsd = used.cost_usd / 1e6
      const emits: ControlEmit[] = []
      let { softAlerted, breached } = state
      if (limitUsd !== undefined) {
        const alert = (level: 'soft_threshold' | 'breach') =>
          budgetAlert({ tenant: event.tenant, scope: k.scope, scopeKey: k.scopeKey, window: k.window, dimension: 'cost_usd', level, used: costUsd, limit: limitUsd, event })
        if (costUsd > limitUsd && !breached) {
          breached = true
          emits.push(alert('breach'))
          if (k.scope === 'agent_version' || k.scope === 'tenant') {
            emits.push(
              decision({
                tenant: event.tenant,
                scope: k.scope,
                scopeKey: k.scopeKey,
                state: 'killed',
                trigger: 'budget_breach',
                reason: `${k.scope} ${k.scopeKey} spent $${costUsd.toFixed(2)} in ${k.window}, over its limit of $${limitUsd}`,
                event,
                decidedBy: BUDGET_AGGREGATES,
              }),
            )
          }
        } else if (costUsd >= limitUsd * soft && !softAlerted && !breached) {
          softAlerted = true
          emits.push(alert('soft_threshold'))
        }
      }
      emits.push({
        kind: 'budget.state',
        record: {
          tenant: event.tenant,
          scope: k.scope,
          scope_key: k.scopeKey,
          window: k.window,
          ...used,
          cost_usd: costUsd,
          events: state.events + 1,
          last_event_id: event.event_id,
          updated_at: event.occurred_at,
        },
      })
      return { state: { used, events: state.events + 1, softAlerted, breached }, emits }
    },
  }
}

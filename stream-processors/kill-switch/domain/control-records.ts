import { createHash } from 'node:crypto'
import type { BudgetAlert, BudgetScope, BudgetStateRecord, KillSwitchDecision, Scope, ControlState, Trigger } from '../../../schemas/control-schemas.ts'
import type { AgentContract } from '../../contracts/agent-contract.ts'
import type { LedgerEventView } from '../../domain-event.ts'

/**
 * What the budget and kill-switch processors emit, and the deterministic ids that make a
 * re-emitted record recognisably the same record (a replay produces byte-equal decisions).
 */
export type ControlEmit =
  | { kind: 'kill_switch.decision'; record: KillSwitchDecision }
  | { kind: 'budget.alert'; record: BudgetAlert }
  | { kind: 'budget.state'; record: BudgetStateRecord }

/**
 * Finds the contract a run runs under: the version its events name, else the one published
 * for its agent version, else undefined (then only the run's own budget snapshot applies).
 * Published contract versions are immutable, so a replay finds the same contract.
 */
export type ContractLookup = (tenant: string, agentName: string, contractVersion: string | undefined, agentVersion: string) => AgentContract | undefined

export function deterministicId(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 32)
}

export function decision(
  input: { tenant: string; scope: Scope; scopeKey: string; state: ControlState; trigger: Trigger; reason: string; event: LedgerEventView; decidedBy: string; tool?: string; retryAt?: number },
): ControlEmit {
  const { event } = input
  return {
    kind: 'kill_switch.decision',
    record: {
      decision_id: deterministicId(input.scope, input.tenant, input.scopeKey, input.state, input.trigger, event.event_id),
      tenant: input.tenant,
      scope: input.scope,
      scope_key: input.scopeKey,
      state: input.state,
      trigger: input.trigger,
      reason: input.reason,
      tripping_event_id: event.event_id,
      run_id: input.scope === 'run' ? event.run_id : event.run_id,
      agent_name: event.agent_name,
      agent_version: event.agent_version,
      tool: input.tool ?? (typeof event.tool === 'string' ? event.tool : null),
      operator: null,
      decided_at: event.occurred_at,
      decided_by: input.decidedBy,
      retry_at: input.retryAt ?? null,
    },
  }
}

export function budgetAlert(input: {
  tenant: string
  scope: BudgetScope
  scopeKey: string
  window: string
  dimension: BudgetAlert['dimension']
  level: BudgetAlert['level']
  used: number
  limit: number
  event: LedgerEventView
}): ControlEmit {
  return {
    kind: 'budget.alert',
    record: {
      alert_id: deterministicId(input.scope, input.tenant, input.scopeKey, input.window, input.dimension, input.level, input.event.event_id),
      tenant: input.tenant,
      scope: input.scope,
      scope_key: input.scopeKey,
      window: input.window,
      dimension: input.dimension,
      level: input.level,
      used: input.used,
      limit: input.limit,
      tripping_event_id: input.event.event_id,
      run_id: input.event.run_id,
      occurred_at: input.event.occurred_at,
    },
  }
}

/** The compacted-topic key of a control emit. */
export function controlKeyOf(emit: ControlEmit): string {
  const r = emit.record
  switch (emit.kind) {
    case 'kill_switch.decision':
      return `${emit.record.scope}/${r.tenant}/${r.scope_key}`
    case 'budget.alert':
      return `alert/${emit.record.scope}/${r.tenant}/${r.scope_key}/${emit.record.window}/${emit.record.dimension}/${emit.record.level}`
    case 'budget.state':
      return `${emit.record.scope}/${r.tenant}/${r.scope_key}/${emit.record.window}`
  }
}

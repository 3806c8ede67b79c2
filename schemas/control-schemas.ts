import { readFileSync } from 'node:fs'
import path from 'node:path'
import avro from 'avsc'
import { SCHEMAS_DIR } from './event-schemas.ts'

/**
 * The control records the stream processors write: kill-switch decisions and budget alerts on
 * the compacted control topic, budget state on the compacted budget-state topic. Each `.avsc` in
 * `schemas/control/` is self-contained and registered under `<topic>-<record full name>`, like
 * the audit events.
 */
export type ControlKind = 'kill_switch.decision' | 'budget.alert' | 'budget.state'

export interface ControlSchema {
  kind: ControlKind
  file: string
  fullName: string
  schema: { name: string; namespace: string; fields: unknown[] }
  type: avro.Type
}

const FILES: Record<ControlKind, string> = {
  'kill_switch.decision': 'kill-switch-decision.avsc',
  'budget.alert': 'budget-alert.avsc',
  'budget.state': 'budget-state.avsc',
}

export type Scope = 'run' | 'agent_version' | 'tool' | 'tenant'
export type ControlState = 'killed' | 'released' | 'circuit_open' | 'circuit_half_open' | 'circuit_closed'
export type Trigger = 'budget_breach' | 'tool_loop' | 'model_input_loop' | 'circuit_breaker' | 'policy_denial_streak' | 'unapproved_action' | 'tool_not_allowed' | 'manual'

/** `schemas/control/kill-switch-decision.avsc` as a TypeScript type (timestamps in epoch ms). */
export interface KillSwitchDecision {
  decision_id: string
  tenant: string
  scope: Scope
  scope_key: string
  state: ControlState
  trigger: Trigger
  reason: string
  tripping_event_id: string | null
  run_id: string | null
  agent_name: string | null
  agent_version: string | null
  tool: string | null
  operator: { key_id: string; name: string } | null
  decided_at: number
  decided_by: string
  retry_at: number | null
}

export type BudgetScope = 'run' | 'agent_version' | 'principal' | 'tenant'

export interface BudgetAlert {
  alert_id: string
  tenant: string
  scope: BudgetScope
  scope_key: string
  window: string
  dimension: 'steps' | 'input_tokens' | 'output_tokens' | 'cost_usd' | 'tool_calls' | 'wall_clock_seconds'
  level: 'soft_threshold' | 'breach'
  used: number
  limit: number
  tripping_event_id: string
  run_id: string
  occurred_at: number
}

export interface BudgetStateRecord {
  tenant: string
  scope: BudgetScope
  scope_key: string
  window: string
  steps: number
  input_tokens: number
  output_tokens: number
  cost_usd: number
  tool_calls: number
  wall_clock_seconds: number
  events: number
  last_event_id: string
  updated_at: number
}

export interface ControlRecordOf {
  'kill_switch.decision': KillSwitchDecision
  'budget.alert': BudgetAlert
  'budget.state': BudgetStateRecord
}

/** The compacted-topic key of a decision: one state per scope. */
export function decisionKey(d: Pick<KillSwitchDecision, 'scope' | 'tenant' | 'scope_key'>): string {
  return `${d.scope}/${d.tenant}/${d.scope_key}`
}

let cached: Map<ControlKind, ControlSchema> | undefined
export function controlSchemas(): Map<ControlKind, ControlSchema> {
  cached ??= new Map(
    (Object.entries(FILES) as [ControlKind, string][]).map(([kind, file]) => {
      const schema = JSON.parse(readFileSync(path.join(SCHEMAS_DIR, 'control', file), 'utf8')) as ControlSchema['schema']
      return [kind, { kind, file, fullName: `${schema.namespace}.${schema.name}`, schema, type: avro.Type.forSchema(schema as avro.Schema, { wrapUnions: false }) }]
    }),
  )
  return cached
}

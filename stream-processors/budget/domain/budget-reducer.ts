import type { LedgerEventView } from '../../domain-event.ts'

/**
 * Budget state for one scope (a run; an agent version, principal or tenant per day or month)
 * and the pure reducer that folds audit events into it. `(state, event) → { state, emits }`:
 * no I/O, no clock, so a replay of the log rebuilds the same state and the same emits.
 */
export const DIMENSIONS = ['steps', 'input_tokens', 'output_tokens', 'cost_usd', 'tool_calls', 'wall_clock_seconds'] as const
export type Dimension = (typeof DIMENSIONS)[number]
export type Limits = Partial<Record<Dimension, number>>

export interface BudgetState {
  used: Record<Dimension, number>
  /** occurred_at of the first event seen, for the wall clock. */
  startedAt: number | undefined
  /** Dimensions already announced, so each threshold and breach is emitted once. */
  softAlerted: Dimension[]
  breached: Dimension[]
  /** The last event folded in; a redelivered event (same or earlier id) is ignored. */
  lastEventId: string | undefined
  eventsSeen: number
}

export type BudgetEmit =
  | { kind: 'budget.threshold'; dimension: Dimension; used: number; limit: number; ratio: number; eventId: string }
  | { kind: 'budget.breach'; dimension: Dimension; used: number; limit: number; eventId: string }

export function emptyBudget(): BudgetState {
  return {
    used: { steps: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0, tool_calls: 0, wall_clock_seconds: 0 },
    startedAt: undefined,
    softAlerted: [],
    breached: [],
    lastEventId: undefined,
    eventsSeen: 0,
  }
}

/** What one event adds to each dimension. */
export function usageOf(event: LedgerEventView): Partial<Record<Dimension, number>> {
  switch (event.type) {
    case 'model.call':
      return { steps: 1, input_tokens: num(event.input_tokens), output_tokens: num(event.output_tokens), cost_usd: num(event.cost_usd) }
    case 'tool.call':
      return { steps: 1, tool_calls: 1 }
    case 'run.started':
    case 'run.ended':
      return {}
    default:
      return { steps: 1 }
  }
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0
}

/**
 * Folds one event in. Events of one run arrive in log order on one partition, and ULIDs sort in
 * emit order, so an event id not greater than the last one folded in is a redelivery
 * (at-least-once consumption) and changes nothing.
 */
export function reduceBudget(state: BudgetState, event: LedgerEventView, limits: Limits, softThreshold = 0.8): { state: BudgetState; emits: BudgetEmit[] } {
  if (state.lastEventId !== undefined && event.event_id <= state.lastEventId) return { state, emits: [] }
  const used = { ...state.used }
  for (const [dimension, amount] of Object.entries(usageOf(event)) as [Dimension, number][]) used[dimension] += amount
  const startedAt = state.startedAt ?? event.occurred_at
  used.wall_clock_seconds = Math.max(used.wall_clock_seconds, (event.occurred_at - startedAt) / 1000)
  const softAlerted = [...state.softAlerted]
  const breached = [...state.breached]
  const emits: BudgetEmit[] = []
  for (const dimension of DIMENSIONS) {
    const limit = limits[dimension]
    if (limit === undefined) continue
    const value = used[dimension]
    if (value > limit && !breached.includes(dimension)) {
      breached.push(dimension)
      emits.push({ kind: 'budget.breach', dimension, used: value, limit, eventId: event.event_id })
    } else if (value >= limit * softThreshold && !softAlerted.includes(dimension) && !breached.includes(dimension)) {
      softAlerted.push(dimension)
      emits.push({ kind: 'budget.threshold', dimension, used: value, limit, ratio: value / limit, eventId: event.event_id })
    }
  }
  return { state: { used, startedAt, softAlerted, breached, lastEventId: event.event_id, eventsSeen: state.eventsSeen + 1 }, emits }
}

/** Limits of a run from its `run.started` budget snapshot (null means no limit). */
export function limitsFromSnapshot(budget: Record<string, unknown> | null | undefined): Limits {
  const pick = (k: string) => (typeof budget?.[k] === 'number' ? (budget[k] as number) : undefined)
  const limits: Limits = {}
  const set = (d: Dimension, v: number | undefined) => {
    if (v !== undefined) limits[d] = v
  }
  set('steps', pick('max_steps'))
  set('input_tokens', pick('max_input_tokens'))
  set('output_tokens', pick('max_output_tokens'))
  set('cost_usd', pick('max_cost_usd'))
  set('tool_calls', pick('max_tool_calls'))
  set('wall_clock_seconds', pick('max_wall_clock_seconds'))
  return limits
}

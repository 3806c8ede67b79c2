/**
 * A per-tool circuit breaker over the outcomes of the last `windowCalls` calls:
 * closed → open when at least `minCalls` calls failed at a rate above `errorRateThreshold`;
 * open → half-open once `openMs` of event time passed; half-open → closed on a success, → open on
 * a failure. Time comes from events, never from a clock, so replays agree. Pure.
 */
export type BreakerPhase = 'closed' | 'open' | 'half_open'

export interface BreakerState {
  phase: BreakerPhase
  /** Recent outcomes, true = error, oldest first. */
  outcomes: boolean[]
  openedAt: number | undefined
}

export interface BreakerOptions {
  errorRateThreshold: number
  minCalls: number
  windowCalls: number
  openMs: number
}

export interface BreakerTransition {
  kind: 'circuit.transition'
  from: BreakerPhase
  to: BreakerPhase
  errorRate: number
  eventId: string
}

export function closedBreaker(): BreakerState {
  return { phase: 'closed', outcomes: [], openedAt: undefined }
}

/** The phase at `now`: an open breaker whose wait is over is half-open. */
export function phaseAt(state: BreakerState, now: number, options: BreakerOptions): BreakerPhase {
  if (state.phase === 'open' && state.openedAt !== undefined && now - state.openedAt >= options.openMs) return 'half_open'
  return state.phase
}

export function reduceBreaker(state: BreakerState, call: { failed: boolean; at: number; eventId: string }, options: BreakerOptions): { state: BreakerState; emits: BreakerTransition[] } {
  const emits: BreakerTransition[] = []
  const from = phaseAt(state, call.at, options)
  if (from !== state.phase) emits.push({ kind: 'circuit.transition', from: state.phase, to: from, errorRate: rate(state.outcomes), eventId: call.eventId })
  if (from === 'half_open') {
    if (call.failed) {
      emits.push({ kind: 'circuit.transition', from, to: 'open', errorRate: 1, eventId: call.eventId })
      return { state: { phase: 'open', outcomes: [...state.outcomes, true].slice(-options.windowCalls), openedAt: call.at }, emits }
    }
    emits.push({ kind: 'circuit.transition', from, to: 'closed', errorRate: 0, eventId: call.eventId })
    return { state: closedBreaker(), emits }
  }
  const outcomes = [...state.outcomes, call.failed].slice(-options.windowCalls)
  if (from === 'closed' && outcomes.length >= options.minCalls && rate(outcomes) > options.errorRateThreshold) {
    emits.push({ kind: 'circuit.transition', from, to: 'open', errorRate: rate(outcomes), eventId: call.eventId })
    return { state: { phase: 'open', outcomes, openedAt: call.at }, emits }
  }
  return { state: { ...state, phase: from, outcomes }, emits }
}

function rate(outcomes: boolean[]): number {
  return outcomes.length === 0 ? 0 : outcomes.filter(Boolean).length / outcomes.length
}

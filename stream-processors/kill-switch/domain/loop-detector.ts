import type { LedgerEventView } from '../../domain-event.ts'

/**
 * Detects loops in one run: the same tool with the same argument digest, or the same model input
 * digest, `maxRepeats` times within `windowMs` of event time. Each digest trips once. Pure.
 */
export interface LoopState {
  /** digest key → occurred_at of its recent occurrences, oldest first. */
  seen: Record<string, number[]>
  tripped: string[]
}

export interface LoopTrip {
  kind: 'loop.detected'
  key: string
  repeats: number
  eventId: string
}

export function emptyLoopState(): LoopState {
  return { seen: {}, tripped: [] }
}

export function loopKeyOf(event: LedgerEventView): string | undefined {
  if (event.type === 'tool.call' && typeof event.argument_digest === 'string') return `tool:${String(event.tool)}:${event.argument_digest}`
  if (event.type === 'model.call' && typeof event.input_digest === 'string') return `model:${event.input_digest}`
  return undefined
}

export function reduceLoop(state: LoopState, event: LedgerEventView, options: { maxRepeats: number; windowMs: number }): { state: LoopState; emits: LoopTrip[] } {
  const key = loopKeyOf(event)
  if (key === undefined) return { state, emits: [] }
  const recent = (state.seen[key] ?? []).filter((t) => event.occurred_at - t < options.windowMs)
  recent.push(event.occurred_at)
  const next: LoopState = { seen: { ...state.seen, [key]: recent.slice(-options.maxRepeats) }, tripped: state.tripped }
  if (recent.length >= options.maxRepeats && !state.tripped.includes(key)) {
    return { state: { ...next, tripped: [...state.tripped, key] }, emits: [{ kind: 'loop.detected', key, repeats: recent.length, eventId: event.event_id }] }
  }
  return { state: next, emits: [] }
}

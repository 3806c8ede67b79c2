import type { ControlState } from '../../../schemas/control-schemas.ts'
import type { Processor } from '../../runtime/processor.ts'
import { closedBreaker, reduceBreaker, type BreakerOptions, type BreakerPhase, type BreakerState } from './circuit-breaker.ts'
import { decision, type ContractLookup, type ControlEmit } from './control-records.ts'

/**
 * One circuit breaker per tenant and tool, fed by every tool call of every run. Thresholds come
 * from the calling agent's contract (`circuit_breaker`, or `model_routing.escalate_on`'s
 * `tool_error_rate_gt`), defaulting to a 50 % error rate over the last 20 calls, at least 5.
 * Each phase change is one decision on the control topic (scope `tool`); an open breaker carries
 * `retry_at`, from which readers let one probe through without waiting for another event.
 *
 * Order: the runs of one tenant spread over partitions, so the interleaving of their calls is the
 * order this processor consumed them in. A replay of the same log yields the same decisions when
 * it consumes in the same interleaving; the README says what that means for replays.
 */
export const TOOL_BREAKER = 'tool-breaker'

export const DEFAULT_BREAKER: BreakerOptions = { errorRateThreshold: 0.5, minCalls: 5, windowCalls: 20, openMs: 30_000 }

const STATE_OF: Record<BreakerPhase, ControlState> = { closed: 'circuit_closed', open: 'circuit_open', half_open: 'circuit_half_open' }

export function createToolBreakerProcessor(contracts: ContractLookup): Processor<BreakerState, ControlEmit> {
  return {
    name: TOOL_BREAKER,
    keysOf: (event) => (event.type === 'tool.call' && (event.status === 'ok' || event.status === 'error') ? [`${event.tenant}/${String(event.tool)}`] : []),
    initial: () => closedBreaker(),
    step(state, event) {
      const contract = contracts(event.tenant, event.agent_name, typeof event.contract_version === 'string' ? event.contract_version : undefined, event.agent_version)
      const c = contract?.circuit_breaker
      const escalation = contract?.model_routing?.escalate_on.find((e): e is { tool_error_rate_gt: number } => 'tool_error_rate_gt' in e)
      const options: BreakerOptions = {
        errorRateThreshold: c?.error_rate_threshold ?? escalation?.tool_error_rate_gt ?? DEFAULT_BREAKER.errorRateThreshold,
        minCalls: c?.min_calls ?? DEFAULT_BREAKER.minCalls,
        windowCalls: c?.window_calls ?? DEFAULT_BREAKER.windowCalls,
        openMs: (c?.open_seconds ?? DEFAULT_BREAKER.openMs / 1000) * 1000,
      }
      const tool = String(event.tool)
      const step = reduceBreaker(state, { failed: event.status === 'error', at: event.occurred_at, eventId: event.event_id }, options)
      // Only the final phase of this call matters to readers; intermediate open → half-open moves
      // caused by the same call are folded into it.
      const last = step.emits.at(-1)
      const emits: ControlEmit[] =
        last === undefined || last.to === state.phase
          ? []
          : [
              decision({
                tenant: event.tenant,
                scope: 'tool',
                scopeKey: tool,
                state: STATE_OF[last.to],
                trigger: 'circuit_breaker',
                reason:
                  last.to === 'open'
                    ? `${tool}: error rate ${Math.round(last.errorRate * 100)} % over the last ${step.state.outcomes.length} calls is above ${Math.round(options.errorRateThreshold * 100)} %`
                    : last.to === 'closed'
                      ? `${tool}: a probe call succeeded`
                      : `${tool}: open for ${options.openMs / 1000} s`,
                event,
                tool,
                decidedBy: TOOL_BREAKER,
                ...(last.to === 'open' ? { retryAt: event.occurred_at + options.openMs } : {}),
              }),
            ]
      return { state: step.state, emits }
    },
  }
}

import type { AgentContract } from '../../contracts/agent-contract.ts'
import { toolRuleOf } from '../../contracts/agent-contract.ts'
import type { LedgerEventView } from '../../domain-event.ts'

/**
 * The approval gate and allowlist for one run: a write or irreversible tool call needs a granted
 * approval bound to its exact argument digest when the contract says the tool requires one, when
 * its amount is over the tool's threshold, or when the action is irreversible; a tool not on the
 * allowlist is refused; a streak of policy denials trips the run. Pure.
 */
export interface GateState {
  grantedDigests: string[]
  consecutiveDenials: number
  denialStreakTripped: boolean
}

export type GateViolation =
  | { kind: 'gate.unapproved_action'; tool: string; actionDigest: string; eventId: string; reason: string }
  | { kind: 'gate.tool_not_allowed'; tool: string; eventId: string }
  | { kind: 'gate.policy_denial_streak'; denials: number; eventId: string }

export function emptyGate(): GateState {
  return { grantedDigests: [], consecutiveDenials: 0, denialStreakTripped: false }
}

export function reduceGate(state: GateState, event: LedgerEventView, contract: AgentContract): { state: GateState; emits: GateViolation[] } {
  switch (event.type) {
    case 'approval.decided': {
      const digest = String(event.action_digest)
      if (event.decision !== 'granted' || state.grantedDigests.includes(digest)) return { state, emits: [] }
      return { state: { ...state, grantedDigests: [...state.grantedDigests, digest] }, emits: [] }
    }
    case 'policy.decision': {
      if (event.decision !== 'deny') return { state: { ...state, consecutiveDenials: 0 }, emits: [] }
      const denials = state.consecutiveDenials + 1
      const trips = denials >= contract.policy_denials.max_consecutive && !state.denialStreakTripped
      return {
        state: { ...state, consecutiveDenials: denials, denialStreakTripped: state.denialStreakTripped || trips },
        emits: trips ? [{ kind: 'gate.policy_denial_streak', denials, eventId: event.event_id }] : [],
      }
    }
    case 'tool.call': {
      const tool = String(event.tool)
      const rule = toolRuleOf(contract, tool)
      if (rule === undefined) return { state, emits: [{ kind: 'gate.tool_not_allowed', tool, eventId: event.event_id }] }
      if (event.action_class === 'read' || event.dry_run === true) return { state, emits: [] }
      const digest = String(event.argument_digest)
      const amount = typeof event.amount_usd === 'number' ? event.amount_usd : undefined
      const reason = rule.requires_approval
        ? `${tool} requires approval`
        : rule.require_approval_over_usd !== undefined && amount !== undefined && amount > rule.require_approval_over_usd
          ? `${tool} over $${rule.require_approval_over_usd} requires approval`
          : event.action_class === 'irreversible'
            ? 'irreversible actions require approval'
            : undefined
      if (reason === undefined || state.grantedDigests.includes(digest)) return { state, emits: [] }
      return { state, emits: [{ kind: 'gate.unapproved_action', tool, actionDigest: digest, eventId: event.event_id, reason }] }
    }
    default:
      return { state, emits: [] }
  }
}

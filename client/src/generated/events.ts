// Generated from schemas/*.avsc by `npm run codegen`. Do not edit by hand.

export interface RunTotals {
  steps: number
  input_tokens: number
  output_tokens: number
  cost_usd: number
  tool_calls: number
  duration_ms: number
}

/** The limits in force when the run started; null means no limit. */
export interface BudgetSnapshot {
  max_steps?: null | number
  max_input_tokens?: null | number
  max_output_tokens?: null | number
  max_cost_usd?: null | number
  max_tool_calls?: null | number
  max_wall_clock_seconds?: null | number
}

/** Who the agent acts on behalf of (or, on approvals and overrides, who acted). */
export interface Principal {
  /** user | team | workflow | service */
  type: string
  id: string
}

/** Envelope fields of the JSON form; the gateway sets tenant and received_at. */
export interface EnvelopeFields {
  /** ULID: time-ordered, unique, chosen by the emitter and stable across retries. */
  event_id: string
  /** Set by the gateway from the API key, never trusted from the body. */
  tenant?: string
  /** The agent run; the Kafka key, so one run stays in order on one partition. */
  run_id: string
  /** Position in the run, from 0 (run.started). */
  step: number
  occurred_at: string | number
  /** gen_ai.agent.name */
  agent_name: string
  agent_version: string
  principal: Principal
  actor?: "agent" | "human" | "system"
  /** Causation: the event that led to this one. */
  parent_event_id?: null | string
  /** W3C trace id, 32 hex characters. */
  trace_id?: null | string
  /** W3C span id, 16 hex characters. */
  span_id?: null | string
  /** The agent contract the run runs under. */
  contract_version?: null | string
}

export type EnvelopeKey = "event_id" | "tenant" | "run_id" | "step" | "occurred_at" | "agent_name" | "agent_version" | "principal" | "actor" | "parent_event_id" | "trace_id" | "span_id" | "contract_version"

/** approval.decided: the approver's answer, bound to the same action digest. */
export interface ApprovalDecidedFields {
  approval_id: string
  action_digest: string
  approver: Principal
  decision: "granted" | "denied"
  justification?: null | string
  time_to_decide_ms?: null | number
}
export type ApprovalDecidedEvent = EnvelopeFields & ApprovalDecidedFields & { type: "approval.decided" }

/** approval.requested: a human approval was asked for one exact action. */
export interface ApprovalRequestedFields {
  approval_id: string
  /** argument_digest of the exact action to approve; an approval binds to it. */
  action_digest: string
  tool?: null | string
  policy_decision_id?: null | string
  /** A person, group or queue. */
  requested_approver?: null | string
  reason?: null | string
}
export type ApprovalRequestedEvent = EnvelopeFields & ApprovalRequestedFields & { type: "approval.requested" }

/** evidence.retrieved: documents the agent read, by id and content hash. */
export interface EvidenceRetrievedFields {
  /** Where it came from: a tool, index or system. */
  source: string
  document_ids: Array<string>
  /** One per document id, in the same order. */
  content_hashes: Array<string>
  query_digest?: null | string
}
export type EvidenceRetrievedEvent = EnvelopeFields & EvidenceRetrievedFields & { type: "evidence.retrieved" }

/** human.override: a person overrode the agent or escalated the run. */
export interface HumanOverrideFields {
  kind: "override" | "escalation"
  operator: Principal
  target_event_id?: null | string
  reason?: null | string
}
export type HumanOverrideEvent = EnvelopeFields & HumanOverrideFields & { type: "human.override" }

/** model.call: one call to a language model. Field names map to OpenTelemetry gen_ai.* attributes (README). */
export interface ModelCallFields {
  /** gen_ai.provider.name */
  provider: string
  /** gen_ai.operation.name */
  operation?: string
  /** gen_ai.request.model */
  model: string
  /** gen_ai.response.model */
  model_version?: null | string
  prompt_version?: null | string
  /** gen_ai.usage.input_tokens */
  input_tokens: number
  /** gen_ai.usage.output_tokens */
  output_tokens: number
  cached_tokens?: number
  cost_usd: number
  latency_ms: number
  /** gen_ai.response.finish_reasons[0] */
  finish_reason?: null | string
  routing_tier?: null | string
  routing_reason?: null | string
  /** Digest of the model input, for repeated-input detection. */
  input_digest?: null | string
  /** gen_ai.response.id */
  response_id?: null | string
  /** error.type and message when the call failed. */
  error?: null | string
}
export type ModelCallEvent = EnvelopeFields & ModelCallFields & { type: "model.call" }

/** policy.decision: an allow/deny decision about an action, after OPA's decision log (README maps the fields). */
export interface PolicyDecisionFields {
  /** opa | cedar | builtin | ... */
  engine: string
  /** OPA: path */
  policy_id: string
  /** OPA: bundles.<name>.revision */
  bundle_revision?: null | string
  /** OPA: result */
  decision: "allow" | "deny" | "require_approval"
  reasons?: Array<string>
  /** OPA: decision_id */
  decision_id: string
  /** Digest of OPA's input document. */
  input_digest?: null | string
  /** The event this decision is about (a proposed tool call). */
  subject_event_id?: null | string
  /** argument_digest of the action decided on. */
  action_digest?: null | string
}
export type PolicyDecisionEvent = EnvelopeFields & PolicyDecisionFields & { type: "policy.decision" }

/** run.ended: a run finished, for better or worse. */
export interface RunEndedFields {
  outcome: "succeeded" | "failed" | "escalated" | "killed"
  totals: RunTotals
  reason?: null | string
}
export type RunEndedEvent = EnvelopeFields & RunEndedFields & { type: "run.ended" }

/** run.started: a run began. */
export interface RunStartedFields {
  /** The team accountable for the agent. */
  owner: string
  autonomy_mode: "observe" | "draft" | "execute_with_approval" | "execute"
  budget: BudgetSnapshot
  /** What the run was asked to do. */
  goal?: null | string
}
export type RunStartedEvent = EnvelopeFields & RunStartedFields & { type: "run.started" }

/** tool.call: one tool invocation (the action). gen_ai.tool.* where they overlap. */
export interface ToolCallFields {
  /** gen_ai.tool.name */
  tool: string
  /** gen_ai.tool.call.id */
  tool_call_id?: null | string
  tool_schema_version?: null | string
  action_class: "read" | "write" | "irreversible"
  /** sha256 over the canonical JSON of {tool, arguments}: what approvals bind to. */
  argument_digest: string
  /** The arguments as JSON; redacted at the gateway in strict mode. */
  arguments: string
  status: "ok" | "error" | "denied" | "skipped"
  latency_ms?: number
  retries?: number
  idempotency_key?: null | string
  /** The id of what the tool changed, e.g. a refund id. */
  side_effect_ref?: null | string
  dry_run?: boolean
  /** Money the action moves, when it moves money. */
  amount_usd?: null | number
  error?: null | string
}
export type ToolCallEvent = EnvelopeFields & ToolCallFields & { type: "tool.call" }

export type LedgerEvent =
  | ApprovalDecidedEvent
  | ApprovalRequestedEvent
  | EvidenceRetrievedEvent
  | HumanOverrideEvent
  | ModelCallEvent
  | PolicyDecisionEvent
  | RunEndedEvent
  | RunStartedEvent
  | ToolCallEvent

export type EventType = LedgerEvent['type']

export const EVENT_TYPES = ["approval.decided", "approval.requested", "evidence.retrieved", "human.override", "model.call", "policy.decision", "run.ended", "run.started", "tool.call"] as const

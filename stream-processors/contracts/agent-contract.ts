import { LineCounter, parseDocument } from 'yaml'
import { z } from 'zod'

/**
 * Agent contracts: the versioned YAML a team checks in beside its agent (the seeds' shape).
 * Parsing names the line and field of every problem. Pure: no I/O.
 */
const positiveInt = z.number().int().positive()
const toolRule = z.strictObject({
  name: z.string().min(1),
  requires_approval: z.boolean().default(false),
  max_calls_per_run: positiveInt.optional(),
  require_approval_over_usd: z.number().nonnegative().optional(),
})
const escalation = z.union([
  z.strictObject({ tool_error_rate_gt: z.number().min(0).max(1) }),
  z.strictObject({ amount_usd_ge: z.number().nonnegative() }),
])

export const agentContractSchema = z.strictObject({
  agent: z.strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,127}$/, 'lowercase letters, digits, ".", "_" and "-"'),
    version: z.union([z.string().min(1), z.number()]).transform(String).optional(),
    owner: z.string().min(1),
    model_routing: z
      .strictObject({ default: z.string().min(1), escalate_on: z.array(escalation).default([]) })
      .optional(),
    budgets: z
      .strictObject({
        max_steps: positiveInt.optional(),
        max_input_tokens: positiveInt.optional(),
        max_output_tokens: positiveInt.optional(),
        max_cost_usd_per_run: z.number().positive().optional(),
        max_tool_calls: positiveInt.optional(),
        max_wall_clock_seconds: positiveInt.optional(),
        /** Across all runs of this agent version, per UTC day. */
        max_cost_usd_per_day: z.number().positive().optional(),
        /** Across all runs of this agent for one principal, per UTC day. */
        max_cost_usd_per_principal_per_day: z.number().positive().optional(),
        soft_threshold: z.number().gt(0).lt(1).default(0.8),
      })
      .default({ soft_threshold: 0.8 }),
    tools: z.strictObject({ allowlist: z.array(toolRule).min(1) }),
    identity: z.strictObject({ mode: z.enum(['on_behalf_of', 'service']), token_ttl_seconds: positiveInt.optional() }).optional(),
    logging: z
      .strictObject({ trace_level: z.enum(['full', 'metadata', 'off']).default('full'), pii_redaction: z.enum(['strict', 'standard', 'off']).default('strict') })
      .default({ trace_level: 'full', pii_redaction: 'strict' }),
    loop_detection: z
      .strictObject({ max_repeats: z.number().int().min(2).default(3), window_seconds: positiveInt.default(300) })
      .default({ max_repeats: 3, window_seconds: 300 }),
    circuit_breaker: z
      .strictObject({
        error_rate_threshold: z.number().gt(0).max(1).optional(),
        min_calls: positiveInt.default(5),
        window_calls: positiveInt.default(20),
        open_seconds: positiveInt.default(30),
      })
      .default({ min_calls: 5, window_calls: 20, open_seconds: 30 }),
    policy_denials: z.strictObject({ max_consecutive: positiveInt.default(3) }).default({ max_consecutive: 3 }),
  }),
})
export type AgentContract = z.infer<typeof agentContractSchema>['agent']

export interface ContractProblem {
  line: number | undefined
  path: string
  message: string
}

export class ContractError extends Error {
  constructor(readonly problems: ContractProblem[]) {
    super(problems.map((p) => `${p.line !== undefined ? `line ${p.line}: ` : ''}${p.path}: ${p.message}`).join('; '))
    this.name = 'ContractError'
  }
}

/** Parses and validates contract YAML; throws ContractError naming the line and field of each problem. */
export function parseAgentContract(text: string): AgentContract {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, prettyErrors: false })
  if (doc.errors.length > 0) {
    throw new ContractError(doc.errors.map((e) => ({ line: lineCounter.linePos(e.pos[0]).line, path: '(yaml)', message: e.message.split('\n')[0]! })))
  }
  const result = agentContractSchema.safeParse(doc.toJS())
  if (result.success) return result.data.agent
  throw new ContractError(
    result.error.issues.map((issue) => {
      // Point at the deepest node that exists: a missing field is reported on its parent's line.
      let path = [...(issue.path as (string | number)[]), ...(issue.code === 'unrecognized_keys' ? issue.keys.slice(0, 1) : [])]
      // getIn on a mapping returns the value node; a key with a scalar value still has a range.
      let node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined
      while (node?.range === undefined && path.length > 0) {
        path = path.slice(0, -1)
        node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined
      }
      const line = node?.range ? lineCounter.linePos(node.range[0]).line : undefined
      const keys = issue.code === 'unrecognized_keys' ? `.${issue.keys.join(',')}` : ''
      return { line, path: issue.path.map(String).join('.') + keys, message: issue.code === 'unrecognized_keys' ? 'is not a contract field' : issue.message }
    }),
  )
}

/** The rule for one tool, or undefined when it is not on the allowlist. */
export function toolRuleOf(contract: AgentContract, tool: string): z.infer<typeof toolRule> | undefined {
  return contract.tools.allowlist.find((t) => t.name === tool)
}

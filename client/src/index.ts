/**
 * @agent-ledger/client: the thin client agents emit audit events through.
 *
 * ```ts
 * const ledger = createLedgerClient({ endpoint, apiKey, agent: { name: 'refund-assistant', version: '1.4.2' } })
 * const run = ledger.startRun({ principal: { type: 'user', id: 'u-42' }, owner: 'finance-ops' })
 * ```
 */
export { createLedgerClient } from './client.ts'
export type {
  LedgerClient,
  LedgerClientOptions,
  RunHandle,
  StartRunOptions,
  ModelCallInput,
  ToolCallInput,
  PolicyDecisionInput,
  ApprovalRequestInput,
  ApprovalRecordInput,
  EvidenceInput,
  OverrideInput,
  EndInput,
  GuardAction,
  Permit,
} from './client.ts'
export { actionDigest, canonicalJson, sha256 } from './digest.ts'
export {
  BudgetExceededError,
  CircuitOpenError,
  LedgerBufferFullError,
  LedgerClientError,
  LedgerFlushTimeoutError,
  LedgerGuardError,
  LedgerGuardUnavailableError,
  LedgerRejectedError,
  RunKilledError,
} from './errors.ts'
export type { GuardRefusal } from './errors.ts'
export type { TransportStats } from './transport.ts'
export type * from './generated/events.ts'
export { EVENT_TYPES } from './generated/events.ts'
export { ulid } from './ulid.ts'

/**
 * The flat JSON form of a decoded audit event, as stream processors read it (see
 * schemas/json-form.ts). Only the fields the processors' domain code uses are typed.
 */
export interface LedgerEventView {
  type: string
  event_id: string
  tenant: string
  run_id: string
  step: number
  occurred_at: number
  agent_name: string
  agent_version: string
  principal: { type: string; id: string }
  [field: string]: unknown
}

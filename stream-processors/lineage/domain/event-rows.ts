import { canonicalJson } from '../../../services/shared/canonical-json.ts'

/**
 * Pure mapping from decoded records to ClickHouse rows: an audit event (its flat JSON form) to
 * an `events` row with typed lineage columns and the event's canonical JSON as payload; a
 * control record (kill-switch decision or budget alert) to a `control_events` row. Times stay
 * epoch milliseconds, which ClickHouse reads into DateTime64(3).
 */

/** Where a record came from in Kafka. */
export interface KafkaPosition {
  topic: string
  partition: number
  offset: string
}

type Json = Record<string, unknown>

const str = (v: unknown): string => (typeof v === 'string' ? v : '')
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0)
const uint = (v: unknown): number => Math.max(0, Math.trunc(num(v)))

/** Thrown for a record that cannot become a row; the sink sends it to the dead-letter topic. */
export class UnmappableRecordError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UnmappableRecordError'
  }
}

function required(event: Json, field: string): string {
  const v = event[field]
  if (typeof v !== 'string' || v === '') throw new UnmappableRecordError(`${field}: missing`)
  return v
}

function time(event: Json, field: string): number {
  const v = event[field]
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new UnmappableRecordError(`${field}: not a timestamp`)
  return v
}

/** The stored payload of an audit event: its flat JSON form in RFC 8785 canonical form. */
export function eventPayload(event: Json): string {
  return canonicalJson(event)
}

export function eventRow(event: Json, position: KafkaPosition, schemaId: number): Json {
  const type = required(event, 'type')
  const principal = (event.principal ?? {}) as Json
  const row: Json = {
    tenant: required(event, 'tenant'),
    run_id: required(event, 'run_id'),
    step: uint(event.step),
    event_id: required(event, 'event_id'),
    event_type: type,
    occurred_at: time(event, 'occurred_at'),
    received_at: time(event, 'received_at'),
    agent_name: str(event.agent_name),
    agent_version: str(event.agent_version),
    principal_type: str(principal.type),
    principal_id: str(principal.id),
    actor: str(event.actor),
    parent_event_id: str(event.parent_event_id),
    trace_id: str(event.trace_id),
    span_id: str(event.span_id),
    contract_version: str(event.contract_version),
    payload: eventPayload(event),
    source_topic: position.topic,
    kafka_partition: position.partition,
    kafka_offset: position.offset,
    schema_id: schemaId,
  }
  switch (type) {
    case 'run.started':
      row.owner = str(event.owner)
      row.autonomy_mode = str(event.autonomy_mode)
      break
    case 'run.ended':
      row.outcome = str(event.outcome)
      break
    case 'model.call':
      row.provider = str(event.provider)
      row.model = str(event.model)
      row.input_tokens = uint(event.input_tokens)
      row.output_tokens = uint(event.output_tokens)
      row.cost_usd = num(event.cost_usd)
      row.latency_ms = uint(event.latency_ms)
      row.status = typeof event.error === 'string' && event.error !== '' ? 'error' : 'ok'
      break
    case 'tool.call':
      row.tool = str(event.tool)
      row.action_class = str(event.action_class)
      row.action_digest = str(event.argument_digest)
      row.status = str(event.status)
      row.amount_usd = typeof event.amount_usd === 'number' ? event.amount_usd : null
      row.latency_ms = uint(event.latency_ms)
      break
    case 'policy.decision':
      row.policy_id = str(event.policy_id)
      row.bundle_revision = str(event.bundle_revision)
      row.decision = str(event.decision)
      row.decision_id = str(event.decision_id)
      row.action_digest = str(event.action_digest)
      row.subject_event_id = str(event.subject_event_id)
      break
    case 'approval.requested':
      row.approval_id = str(event.approval_id)
      row.action_digest = str(event.action_digest)
      row.tool = str(event.tool)
      row.decision_id = str(event.policy_decision_id)
      break
    case 'approval.decided':
      row.approval_id = str(event.approval_id)
      row.action_digest = str(event.action_digest)
      row.decision = str(event.decision)
      break
    case 'human.override':
      row.subject_event_id = str(event.target_event_id)
      break
  }
  return row
}

/** A control record as the control codec decodes it: its kind and the Avro record. */
export function controlRow(kind: string, record: Json, position: KafkaPosition): Json {
  const base: Json = {
    tenant: required(record, 'tenant'),
    kind,
    scope: str(record.scope),
    scope_key: str(record.scope_key),
    reason: str(record.reason),
    tripping_event_id: str(record.tripping_event_id),
    payload: canonicalJson(record),
    source_topic: position.topic,
    kafka_partition: position.partition,
    kafka_offset: position.offset,
  }
  if (kind === 'kill_switch.decision') {
    const operator = (record.operator ?? {}) as Json
    return {
      ...base,
      record_id: required(record, 'decision_id'),
      run_id: str(record.run_id) || (record.scope === 'run' ? str(record.scope_key) : ''),
      occurred_at: time(record, 'decided_at'),
      state: str(record.state),
      trigger: str(record.trigger),
      agent_name: str(record.agent_name),
      agent_version: str(record.agent_version),
      tool: str(record.tool),
      decided_by: str(record.decided_by),
      operator_id: str(operator.key_id),
    }
  }
  if (kind === 'budget.alert') {
    return {
      ...base,
      record_id: required(record, 'alert_id'),
      run_id: str(record.run_id),
      occurred_at: time(record, 'occurred_at'),
      level: str(record.level),
      dimension: str(record.dimension),
      window: str(record.window),
      used: num(record.used),
      limit: num(record.limit),
    }
  }
  throw new UnmappableRecordError(`control record kind ${kind} is not stored`)
}

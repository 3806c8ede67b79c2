import type { AvroField, AvroRecord, EventSchema } from './event-schemas.ts'

/**
 * The JSON form agents send (and the client's types describe): the envelope's fields flat at the
 * top level beside `type` and the event's own fields. The gateway sets `tenant` (from the API
 * key) and `received_at`; `actor` defaults to `agent`. Everything else follows the Avro schema,
 * so the JSON form, the zod validation and the client's types cannot drift from it.
 */
export const GATEWAY_SET_FIELDS = ['received_at'] as const
export const OPTIONAL_ENVELOPE_FIELDS: Record<string, unknown> = { tenant: undefined, actor: 'agent' }

export interface JsonField {
  name: string
  type: unknown
  optional: boolean
  default?: unknown
  doc?: string
  pii?: 'free_text' | 'json'
  inEnvelope: boolean
}

const fieldCache = new WeakMap<EventSchema, JsonField[]>()

/** The flat JSON fields of an event type, envelope first, in schema order (computed once per schema). */
export function jsonFields(schema: EventSchema): JsonField[] {
  let fields = fieldCache.get(schema)
  if (fields === undefined) {
    fields = computeJsonFields(schema)
    fieldCache.set(schema, fields)
  }
  return fields
}

function computeJsonFields(schema: EventSchema): JsonField[] {
  const out: JsonField[] = []
  for (const field of schema.schema.fields) {
    if (field.name === 'envelope') {
      for (const ef of (field.type as AvroRecord).fields) {
        if ((GATEWAY_SET_FIELDS as readonly string[]).includes(ef.name)) continue
        const gatewayDefault = ef.name in OPTIONAL_ENVELOPE_FIELDS
        out.push(toJsonField(ef, true, gatewayDefault || 'default' in ef, gatewayDefault ? OPTIONAL_ENVELOPE_FIELDS[ef.name] : ef.default))
      }
    } else {
      out.push(toJsonField(field, false, 'default' in field, field.default))
    }
  }
  return out
}

function toJsonField(f: AvroField, inEnvelope: boolean, optional: boolean, dflt: unknown): JsonField {
  return {
    name: f.name,
    type: f.type,
    optional,
    ...(dflt !== undefined ? { default: dflt } : {}),
    ...(f.doc ? { doc: f.doc } : {}),
    ...(f['ledger.pii'] ? { pii: f['ledger.pii'] } : {}),
    inEnvelope,
  }
}

/** Flat JSON event (already validated) → the Avro record with its nested envelope. */
export function toAvroRecord(schema: EventSchema, json: Record<string, unknown>, tenant: string, receivedAt: number): Record<string, unknown> {
  const envelope: Record<string, unknown> = { tenant, received_at: receivedAt }
  const record: Record<string, unknown> = { envelope }
  for (const f of jsonFields(schema)) {
    if (f.name === 'tenant') continue
    const value = json[f.name] ?? f.default ?? null
    if (f.inEnvelope) envelope[f.name] = value
    else record[f.name] = value
  }
  return record
}

/** Avro record → flat JSON form with `type` (what consumers and the query API show). */
export function fromAvroRecord(schema: EventSchema, record: Record<string, unknown>): Record<string, unknown> {
  const { envelope, ...rest } = record as { envelope: Record<string, unknown> }
  return { type: schema.eventType, ...envelope, ...rest }
}

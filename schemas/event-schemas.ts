import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import avro from 'avsc'

/**
 * The event contract: one `.avsc` per event type, each with an `envelope` field typed
 * `dev.agentledger.events.Envelope`, defined once in `envelope.avsc` and inlined here so every
 * registered schema is self-contained (the registry needs no schema references).
 *
 * Subject strategy: TopicRecordNameStrategy, `<topic>-<record full name>`. All event types share
 * one topic keyed by run id, which keeps a run in order, and each type evolves under its own
 * subject with its own compatibility history.
 */
export const SCHEMAS_DIR = path.dirname(fileURLToPath(import.meta.url))
export const ENVELOPE_TYPE = 'dev.agentledger.events.Envelope'

export type AvroField = { name: string; type: unknown; default?: unknown; doc?: string; 'ledger.pii'?: 'free_text' | 'json' }
export type AvroRecord = { type: 'record'; name: string; namespace?: string; doc?: string; fields: AvroField[]; 'ledger.event_type'?: string }

export interface EventSchema {
  /** `tool.call`, `model.call`, ... */
  eventType: string
  /** The `.avsc` file it came from. */
  file: string
  fullName: string
  /** The composed schema: envelope inlined. */
  schema: AvroRecord
  type: avro.Type
}

export function fullNameOf(record: AvroRecord): string {
  return record.namespace ? `${record.namespace}.${record.name}` : record.name
}

/** Inlines the envelope record into an event schema's `envelope` field. Pure: used on git history too. */
export function composeEventSchema(envelope: AvroRecord, event: AvroRecord): AvroRecord {
  return {
    ...event,
    fields: event.fields.map((f) => (f.name === 'envelope' && f.type === ENVELOPE_TYPE ? { ...f, type: envelope } : f)),
  }
}

export function subjectFor(topic: string, fullName: string): string {
  return `${topic}-${fullName}`
}

export function loadEventSchemas(dir = SCHEMAS_DIR): EventSchema[] {
  const envelope = JSON.parse(readFileSync(path.join(dir, 'envelope.avsc'), 'utf8')) as AvroRecord
  return readdirSync(dir)
    .filter((f) => f.endsWith('.avsc') && f !== 'envelope.avsc')
    .sort()
    .map((file) => {
      const raw = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as AvroRecord
      const eventType = raw['ledger.event_type']
      if (eventType === undefined) throw new Error(`${file} has no "ledger.event_type"`)
      const schema = composeEventSchema(envelope, raw)
      return { eventType, file, fullName: fullNameOf(schema), schema, type: avro.Type.forSchema(schema as avro.Schema, { wrapUnions: false }) }
    })
}

let cached: Map<string, EventSchema> | undefined
/** Event type → schema, loaded once per process. */
export function eventSchemas(): Map<string, EventSchema> {
  cached ??= new Map(loadEventSchemas().map((s) => [s.eventType, s]))
  return cached
}

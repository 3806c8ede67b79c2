import avro from 'avsc'
import { eventSchemas, subjectFor, type EventSchema } from '../../schemas/event-schemas.ts'
import { fromAvroRecord } from '../../schemas/json-form.ts'
import { LedgerError } from './errors.ts'
import { fromWireFormat, toWireFormat } from './wire-format.ts'

/**
 * Avro in the registry's wire format: magic byte 0, the 4-byte big-endian schema id, then the
 * Avro binary body. Encoding registers each event type's schema under its subject once at start;
 * decoding fetches an unknown writer schema by id and resolves it into today's reader schema, so
 * events written under an older compatible version still decode.
 */
export interface EventCodec {
  encode(eventType: string, record: Record<string, unknown>): Buffer
  decode(buffer: Buffer): Promise<DecodedEvent>
  schemaIdOf(eventType: string): number
}

export interface DecodedEvent {
  eventType: string
  schemaId: number
  /** The Avro record (nested envelope). */
  record: Record<string, unknown>
  /** The flat JSON form with `type`. */
  json: Record<string, unknown>
}

export class RegistryClient {
  constructor(private readonly baseUrl: string) {}

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    let res: Response
    try {
      res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/vnd.schemaregistry.v1+json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      })
    } catch (err) {
      throw new LedgerError('LEDGER_ERR_REGISTRY_UNAVAILABLE', `schema registry at ${this.baseUrl}: ${(err as Error).message}`, { cause: err })
    }
    const payload = (await res.json().catch(() => ({}))) as { error_code?: number; message?: string }
    if (res.status === 409) throw new LedgerError('LEDGER_ERR_SCHEMA_INCOMPATIBLE', `${path}: ${payload.message ?? 'incompatible schema'}`)
    if (!res.ok) {
      throw new LedgerError('LEDGER_ERR_REGISTRY_UNAVAILABLE', `schema registry ${method} ${path}: HTTP ${res.status} ${payload.message ?? ''}`, { retriable: res.status >= 500 })
    }
    return payload
  }

  async register(subject: string, schema: unknown): Promise<number> {
    const r = (await this.call('POST', `/subjects/${encodeURIComponent(subject)}/versions`, { schema: JSON.stringify(schema) })) as { id: number }
    return r.id
  }

  async schemaById(id: number): Promise<string> {
    const r = (await this.call('GET', `/schemas/ids/${id}`)) as { schema: string }
    return r.schema
  }
}

export async function createEventCodec(options: { registryUrl: string; topic: string; register?: boolean }): Promise<EventCodec> {
  const registry = new RegistryClient(options.registryUrl)
  const schemas = eventSchemas()
  const idByType = new Map<string, number>()
  const byId = new Map<number, { schema: EventSchema; writer: avro.Type; resolver: avro.Resolver | undefined }>()
  const byFullName = new Map([...schemas.values()].map((s) => [s.fullName, s]))

  for (const s of schemas.values()) {
    if (options.register === false) continue
    const id = await registry.register(subjectFor(options.topic, s.fullName), s.schema)
    idByType.set(s.eventType, id)
    byId.set(id, { schema: s, writer: s.type, resolver: undefined })
  }

  async function writerFor(id: number) {
    const known = byId.get(id)
    if (known) return known
    const text = await registry.schemaById(id)
    const writerSchema = JSON.parse(text) as { name?: string; namespace?: string }
    const fullName = writerSchema.namespace ? `${writerSchema.namespace}.${writerSchema.name}` : String(writerSchema.name)
    const schema = byFullName.get(fullName)
    if (schema === undefined) throw new Error(`schema id ${id} is ${fullName}, which is not an event type this build knows`)
    const writer = avro.Type.forSchema(writerSchema as avro.Schema, { wrapUnions: false })
    const entry = { schema, writer, resolver: schema.type.createResolver(writer) }
    byId.set(id, entry)
    return entry
  }

  return {
    schemaIdOf(eventType) {
      const id = idByType.get(eventType)
      if (id === undefined) throw new Error(`no registered schema for ${eventType}`)
      return id
    },
    encode(eventType, record) {
      const schema = schemas.get(eventType)
      const id = idByType.get(eventType)
      if (schema === undefined || id === undefined) throw new Error(`no registered schema for ${eventType}`)
      return toWireFormat(id, schema.type.toBuffer(record))
    },
    async decode(buffer) {
      const { schemaId: id, body } = fromWireFormat(buffer)
      const { schema, writer, resolver } = await writerFor(id)
      const record = (resolver ? schema.type.fromBuffer(body, resolver) : writer.fromBuffer(body)) as Record<string, unknown>
      const plain = toPlain(record) as Record<string, unknown>
      return { eventType: schema.eventType, schemaId: id, record: plain, json: fromAvroRecord(schema, plain) }
    },
  }
}

/**
 * avsc decodes records as class instances; consumers want plain objects. Loops rather than
 * Object.fromEntries(Object.entries(...)): every processor decodes every event, and the entry
 * arrays made this the processors' hottest function.
 */
function toPlain(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || Buffer.isBuffer(v)) return v
  if (Array.isArray(v)) {
    const out = new Array<unknown>(v.length)
    for (let i = 0; i < v.length; i++) out[i] = toPlain(v[i])
    return out
  }
  const out: Record<string, unknown> = {}
  for (const k of Object.keys(v)) out[k] = toPlain((v as Record<string, unknown>)[k])
  return out
}

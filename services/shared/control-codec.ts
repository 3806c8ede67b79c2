import avro from 'avsc'
import { controlSchemas, type ControlKind, type ControlRecordOf } from '../../schemas/control-schemas.ts'
import { subjectFor } from '../../schemas/event-schemas.ts'
import { RegistryClient } from './event-codec.ts'
import { fromWireFormat, toWireFormat } from './wire-format.ts'

/**
 * Control records (kill-switch decisions, budget alerts, budget state) in the registry wire
 * format. Decisions and alerts are registered under the control topic's subjects, budget state
 * under the budget-state topic's. Decoding resolves an older writer schema into today's.
 */
export interface ControlCodec {
  encode<K extends ControlKind>(kind: K, record: ControlRecordOf[K]): Buffer
  decode(buffer: Buffer): Promise<DecodedControl>
}

export type DecodedControl = { [K in ControlKind]: { kind: K; schemaId: number; record: ControlRecordOf[K] } }[ControlKind]

export async function createControlCodec(options: { registryUrl: string; controlTopic: string; budgetStateTopic: string; register?: boolean }): Promise<ControlCodec> {
  const registry = new RegistryClient(options.registryUrl)
  const schemas = controlSchemas()
  const byFullName = new Map([...schemas.values()].map((s) => [s.fullName, s]))
  const idByKind = new Map<ControlKind, number>()
  const byId = new Map<number, { kind: ControlKind; type: avro.Type; resolver: avro.Resolver | undefined }>()
  if (options.register !== false) {
    for (const s of schemas.values()) {
      const topic = s.kind === 'budget.state' ? options.budgetStateTopic : options.controlTopic
      const id = await registry.register(subjectFor(topic, s.fullName), s.schema)
      idByKind.set(s.kind, id)
      byId.set(id, { kind: s.kind, type: s.type, resolver: undefined })
    }
  }

  async function readerFor(id: number) {
    const known = byId.get(id)
    if (known) return known
    const writerSchema = JSON.parse(await registry.schemaById(id)) as { name?: string; namespace?: string }
    const fullName = writerSchema.namespace ? `${writerSchema.namespace}.${writerSchema.name}` : String(writerSchema.name)
    const schema = byFullName.get(fullName)
    if (schema === undefined) throw new Error(`schema id ${id} is ${fullName}, which is not a control record this build knows`)
    const writer = avro.Type.forSchema(writerSchema as avro.Schema, { wrapUnions: false })
    const entry = { kind: schema.kind, type: schema.type, resolver: schema.type.createResolver(writer) }
    byId.set(id, entry)
    return entry
  }

  return {
    encode(kind, record) {
      const schema = schemas.get(kind)
      const id = idByKind.get(kind)
      if (schema === undefined || id === undefined) throw new Error(`no registered schema for ${kind}`)
      return toWireFormat(id, schema.type.toBuffer(record))
    },
    async decode(buffer) {
      const { schemaId: id, body } = fromWireFormat(buffer)
      const { kind, type, resolver } = await readerFor(id)
      const record = (resolver ? type.fromBuffer(body, resolver) : type.fromBuffer(body)) as Record<string, unknown>
      return { kind, schemaId: id, record: JSON.parse(JSON.stringify(record)) } as DecodedControl
    },
  }
}

import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { REPO_ROOT } from '../infra/paths.ts'
import { loadEventSchemas, type AvroRecord } from './event-schemas.ts'
import { jsonFields, type JsonField } from './json-form.ts'

/**
 * Generates the thin client's event types from the Avro schemas (`npm run codegen`), so the
 * client and the contract cannot drift; `test/unit/codegen.test.ts` fails when the generated file
 * is stale.
 */
export const GENERATED_FILE = path.join(REPO_ROOT, 'client', 'src', 'generated', 'events.ts')

function tsType(type: unknown): string {
  if (typeof type === 'string') {
    switch (type) {
      case 'string':
        return 'string'
      case 'int':
      case 'long':
      case 'float':
      case 'double':
        return 'number'
      case 'boolean':
        return 'boolean'
      case 'null':
        return 'null'
      default:
        return type.split('.').pop()!
    }
  }
  if (Array.isArray(type)) return type.map(tsType).join(' | ')
  const t = type as { type: string; logicalType?: string; symbols?: string[]; items?: unknown; name?: string }
  if (t.logicalType === 'timestamp-millis') return 'string | number'
  if (t.type === 'enum') return t.symbols!.map((s) => JSON.stringify(s)).join(' | ')
  if (t.type === 'array') return `Array<${tsType(t.items)}>`
  if (t.type === 'record') return t.name!
  return tsType(t.type)
}

function pascal(eventType: string): string {
  return eventType.split(/[._]/).map((p) => p[0]!.toUpperCase() + p.slice(1)).join('')
}

function doc(text: string | undefined, indent: string): string {
  return text ? `${indent}/** ${text.replace(/\*\//g, '* /')} */\n` : ''
}

function fieldLine(f: JsonField | { name: string; type: unknown; optional: boolean; doc?: string }, indent = '  '): string {
  return `${doc(f.doc, indent)}${indent}${f.name}${f.optional ? '?' : ''}: ${tsType(f.type)}\n`
}

/** Named records (Principal, BudgetSnapshot, RunTotals) become interfaces of their own. */
function collectRecords(type: unknown, out: Map<string, AvroRecord>): void {
  if (Array.isArray(type)) return type.forEach((t) => collectRecords(t, out))
  if (type === null || typeof type !== 'object') return
  const t = type as AvroRecord & { items?: unknown }
  if (t.type === 'record') {
    if (!out.has(t.name)) out.set(t.name, t)
    for (const f of t.fields) collectRecords(f.type, out)
  } else if ((t as { type: string }).type === 'array') collectRecords(t.items, out)
}

export function generateClientTypes(): string {
  const schemas = loadEventSchemas()
  const records = new Map<string, AvroRecord>()
  for (const s of schemas) for (const f of s.schema.fields) if (f.name !== 'envelope') collectRecords(f.type, records)
  const envelope = jsonFields(schemas[0]!).filter((f) => f.inEnvelope)
  for (const f of envelope) collectRecords(f.type, records)

  let out = '// Generated from schemas/*.avsc by `npm run codegen`. Do not edit by hand.\n\n'
  for (const r of records.values()) {
    out += `${doc(r.doc, '')}export interface ${r.name} {\n`
    for (const f of r.fields) out += fieldLine({ name: f.name, type: f.type, optional: 'default' in f, ...(f.doc ? { doc: f.doc } : {}) })
    out += '}\n\n'
  }
  out += '/** Envelope fields of the JSON form; the gateway sets tenant and received_at. */\nexport interface EnvelopeFields {\n'
  for (const f of envelope) out += fieldLine(f)
  out += '}\n\n'
  out += `export type EnvelopeKey = ${envelope.map((f) => JSON.stringify(f.name)).join(' | ')}\n\n`
  const union: string[] = []
  for (const s of schemas) {
    const name = pascal(s.eventType)
    out += `${doc(s.schema.doc, '')}export interface ${name}Fields {\n`
    for (const f of jsonFields(s).filter((x) => !x.inEnvelope)) out += fieldLine(f)
    out += '}\n'
    out += `export type ${name}Event = EnvelopeFields & ${name}Fields & { type: ${JSON.stringify(s.eventType)} }\n\n`
    union.push(`${name}Event`)
  }
  out += `export type LedgerEvent =\n${union.map((u) => `  | ${u}`).join('\n')}\n\n`
  out += `export type EventType = LedgerEvent['type']\n\n`
  out += `export const EVENT_TYPES = [${schemas.map((s) => JSON.stringify(s.eventType)).join(', ')}] as const\n`
  return out
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const text = generateClientTypes()
  const before = (() => {
    try {
      return readFileSync(GENERATED_FILE, 'utf8')
    } catch {
      return ''
    }
  })()
  writeFileSync(GENERATED_FILE, text)
  console.log(before === text ? `${GENERATED_FILE} is up to date` : `wrote ${GENERATED_FILE}`)
}

import { z } from 'zod'
import { eventSchemas, type EventSchema } from '../../schemas/event-schemas.ts'
import { jsonFields } from '../../schemas/json-form.ts'

/**
 * zod validators generated from the Avro schemas, so validation cannot drift from the contract.
 * Field-name rules add what Avro cannot say (ULIDs, W3C ids, digests, non-negative amounts).
 */
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/
const DIGEST = /^sha256:[0-9a-f]{64}$/
const FIELD_RULES: Record<string, (s: z.ZodType) => z.ZodType> = {
  event_id: () => z.string().regex(ULID, 'must be a ULID (26 Crockford base32 characters)'),
  parent_event_id: () => z.string().regex(ULID, 'must be a ULID (26 Crockford base32 characters)'),
  run_id: () => z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1-128 characters of letters, digits, ".", "_", ":" or "-"'),
  tenant: () => z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be a tenant id'),
  trace_id: () => z.string().regex(/^(?!0{32})[0-9a-f]{32}$/, 'must be 32 lowercase hex characters, not all zero (W3C trace id)'),
  span_id: () => z.string().regex(/^(?!0{16})[0-9a-f]{16}$/, 'must be 16 lowercase hex characters, not all zero (W3C span id)'),
  argument_digest: () => z.string().regex(DIGEST, 'must be "sha256:" and 64 hex characters'),
  action_digest: () => z.string().regex(DIGEST, 'must be "sha256:" and 64 hex characters'),
  input_digest: () => z.string().regex(DIGEST, 'must be "sha256:" and 64 hex characters'),
  query_digest: () => z.string().regex(DIGEST, 'must be "sha256:" and 64 hex characters'),
  arguments: () => z.string().max(65_536, 'must be at most 65536 characters of JSON').refine(isJson, 'must be a JSON document'),
  step: () => z.number().int('must be an integer').min(0).max(2_147_483_647),
}
const NON_NEGATIVE = /(_tokens|_ms|_usd|^retries|^latency|^steps|^tool_calls)$/

function isJson(s: string): boolean {
  try {
    JSON.parse(s)
    return true
  } catch {
    return false
  }
}

const MAX_STRING = 8_192
const MAX_ARRAY = 1_000

function avroToZod(type: unknown, fieldName: string): z.ZodType {
  if (typeof type === 'string') {
    switch (type) {
      case 'string':
        return z.string().max(MAX_STRING)
      case 'int':
        return z.number().int('must be an integer').min(-2_147_483_648).max(2_147_483_647)
      case 'long':
        return z.number().int('must be an integer').refine(Number.isSafeInteger, 'must be a safe integer')
      case 'double':
      case 'float':
        return z.number().finite()
      case 'boolean':
        return z.boolean()
      case 'null':
        return z.null()
      default:
        // A named type defined earlier in the schema (Principal). Resolve through the catalogue.
        // Avro names nested without a namespace inherit the enclosing one; look both up.
        return namedTypes.get(type) ?? namedTypes.get(type.split('.').pop()!) ?? z.never()
    }
  }
  if (Array.isArray(type)) {
    const branches = type.filter((t) => t !== 'null')
    const inner = branches.length === 1 ? avroToZod(branches[0], fieldName) : z.union(branches.map((b) => avroToZod(b, fieldName)) as [z.ZodType, z.ZodType])
    return type.includes('null') ? inner.nullable() : inner
  }
  const t = type as { type: string; logicalType?: string; symbols?: string[]; items?: unknown; fields?: { name: string; type: unknown; default?: unknown }[]; name?: string; namespace?: string }
  if (t.logicalType === 'timestamp-millis') {
    return z.union([z.number().int().min(0), z.iso.datetime({ offset: true }).transform((s) => Date.parse(s))], {
      error: 'must be an ISO 8601 timestamp with a time zone, or epoch milliseconds',
    })
  }
  switch (t.type) {
    case 'enum':
      return z.enum(t.symbols as [string, ...string[]])
    case 'array':
      return z.array(avroToZod(t.items, fieldName)).max(MAX_ARRAY)
    case 'record': {
      const shape: Record<string, z.ZodType> = {}
      for (const f of t.fields ?? []) shape[f.name] = withDefault(refine(avroToZod(f.type, f.name), f.name), f.default)
      const obj = z.strictObject(shape)
      if (t.name) namedTypes.set(t.namespace ? `${t.namespace}.${t.name}` : t.name, obj)
      return obj
    }
    default:
      return avroToZod(t.type, fieldName)
  }
}

function refine(schema: z.ZodType, name: string): z.ZodType {
  const rule = FIELD_RULES[name]
  if (rule) return rule(schema)
  if (NON_NEGATIVE.test(name) && schema instanceof z.ZodNumber) return schema.min(0, 'must not be negative')
  if (NON_NEGATIVE.test(name) && schema instanceof z.ZodNullable) {
    const inner = schema.unwrap()
    if (inner instanceof z.ZodNumber) return inner.min(0, 'must not be negative').nullable()
  }
  return schema
}

function withDefault(schema: z.ZodType, dflt: unknown): z.ZodType {
  return dflt === undefined ? schema : schema.optional()
}

const namedTypes = new Map<string, z.ZodType>()

function buildValidator(schema: EventSchema): z.ZodType {
  // Walk the envelope first so named types it defines (Principal) resolve in the event's fields.
  const shape: Record<string, z.ZodType> = { type: z.literal(schema.eventType) }
  for (const f of jsonFields(schema)) {
    let s = refine(avroToZod(f.type, f.name), f.name)
    if (f.optional) s = s.optional()
    shape[f.name] = s
  }
  return z.strictObject(shape)
}

let validators: Map<string, z.ZodType> | undefined
export function eventValidators(): Map<string, z.ZodType> {
  validators ??= new Map([...eventSchemas().values()].map((s) => [s.eventType, buildValidator(s)]))
  return validators
}

export interface EventProblem {
  index: number
  path: string
  message: string
}

/** Validates one event; `index` is its position in the batch, for messages like `events[3].principal.id`. */
export function validateEvent(raw: unknown, index: number): { ok: true; eventType: string; value: Record<string, unknown> } | { ok: false; problems: EventProblem[] } {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return { ok: false, problems: [{ index, path: `[${index}]`, message: 'must be an event object' }] }
  }
  const type = (raw as { type?: unknown }).type
  const validator = typeof type === 'string' ? eventValidators().get(type) : undefined
  if (validator === undefined) {
    const known = [...eventValidators().keys()].join(', ')
    const message = type === undefined ? `is required; one of ${known}` : `unknown event type ${JSON.stringify(type)}; one of ${known}`
    return { ok: false, problems: [{ index, path: `[${index}].type`, message }] }
  }
  const result = validator.safeParse(raw)
  if (result.success) return { ok: true, eventType: type as string, value: result.data as Record<string, unknown> }
  return {
    ok: false,
    problems: result.error.issues.flatMap((issue) => {
      const at = `[${index}]${issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')}`
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((k) => ({ index, path: `${at}.${k}`, message: `is not a field of ${type as string}` }))
      }
      const missing = valueAt(raw, issue.path) === undefined
      return [{ index, path: at, message: missing ? 'is required' : issue.message }]
    }),
  }
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined
    v = (v as Record<PropertyKey, unknown>)[key]
  }
  return v
}

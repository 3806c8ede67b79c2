import avro from 'avsc'

/**
 * Avro schema parsing and compatibility, the registry's pure domain. Compatibility uses Avro's
 * schema-resolution rules as avsc implements them (`reader.createResolver(writer)` throws when
 * the reader cannot read the writer's data): missing fields need defaults, enums need the
 * writer's symbols, numeric promotions only widen, unions resolve branch by branch.
 */
export const COMPATIBILITY_LEVELS = [
  'BACKWARD',
  'BACKWARD_TRANSITIVE',
  'FORWARD',
  'FORWARD_TRANSITIVE',
  'FULL',
  'FULL_TRANSITIVE',
  'NONE',
] as const
export type CompatibilityLevel = (typeof COMPATIBILITY_LEVELS)[number]
export const DEFAULT_COMPATIBILITY: CompatibilityLevel = 'BACKWARD'

export function isCompatibilityLevel(value: unknown): value is CompatibilityLevel {
  return typeof value === 'string' && (COMPATIBILITY_LEVELS as readonly string[]).includes(value)
}

export class InvalidSchemaError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'InvalidSchemaError'
  }
}

export interface ParsedSchema {
  type: avro.Type
  /** Whitespace-free JSON text: two registrations with equal canonical text are the same schema. */
  canonical: string
}

/** Parses Avro schema text; throws InvalidSchemaError with avsc's reason on anything invalid. */
export function parseAvroSchema(text: string): ParsedSchema {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new InvalidSchemaError(`Invalid schema: not JSON (${(err as Error).message})`)
  }
  try {
    const type = avro.Type.forSchema(json as avro.Schema, { wrapUnions: false })
    return { type, canonical: JSON.stringify(json) }
  } catch (err) {
    throw new InvalidSchemaError(`Invalid schema: ${(err as Error).message}`)
  }
}

function canRead(reader: avro.Type, writer: avro.Type): string | undefined {
  try {
    reader.createResolver(writer)
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}

/**
 * Checks `candidate` against earlier versions (oldest first) and returns one message per
 * violation; an empty list means compatible. Non-transitive levels look at the latest only.
 */
export function compatibilityProblems(candidate: avro.Type, previous: readonly { version: number; type: avro.Type }[], level: CompatibilityLevel): string[] {
  if (level === 'NONE' || previous.length === 0) return []
  const transitive = level.endsWith('_TRANSITIVE')
  const against = transitive ? previous : previous.slice(-1)
  const backward = level.startsWith('BACKWARD') || level.startsWith('FULL')
  const forward = level.startsWith('FORWARD') || level.startsWith('FULL')
  const problems: string[] = []
  for (const prev of against) {
    if (backward) {
      const why = canRead(candidate, prev.type)
      if (why !== undefined) problems.push(`new schema cannot read data written with version ${prev.version} (${level}): ${why}`)
    }
    if (forward) {
      const why = canRead(prev.type, candidate)
      if (why !== undefined) problems.push(`version ${prev.version} cannot read data written with the new schema (${level}): ${why}`)
    }
  }
  return problems
}

import { compatibilityProblems, DEFAULT_COMPATIBILITY, InvalidSchemaError, isCompatibilityLevel, parseAvroSchema, type CompatibilityLevel } from './compatibility.ts'
import { registryErrors, RegistryError } from './registry-errors.ts'
import { RegistryState, type ConfigRecord, type RegistryKey, type SchemaRecord } from './registry-state.ts'

/** The durable, totally ordered log the registry state is rebuilt from (a compacted Kafka topic). */
export interface RegistryLog {
  /** Appends one record and resolves once this instance has applied it (read-your-writes). */
  append(key: RegistryKey, value: SchemaRecord | ConfigRecord | null): Promise<void>
  /** Resolves once every record written before the call has been applied here. */
  catchUp(): Promise<void>
}

export interface RegisteredSchema {
  subject: string
  id: number
  version: number
  schema: string
}

const MAX_WRITE_ATTEMPTS = 5

/**
 * Registry operations. Writes are serialized inside one instance; across instances the log
 * decides: a write is checked after it was applied, and redone if another instance won.
 */
export class RegistryService {
  private writeChain: Promise<unknown> = Promise.resolve()

  constructor(
    readonly state: RegistryState,
    private readonly log: RegistryLog,
  ) {}

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.writeChain.then(fn, fn)
    this.writeChain = next.catch(() => undefined)
    return next
  }

  compatibilityFor(subject: string): CompatibilityLevel {
    return this.state.config(subject) ?? this.state.config(null) ?? DEFAULT_COMPATIBILITY
  }

  parse(schema: unknown, schemaType: unknown, references: unknown): ReturnType<typeof parseAvroSchema> {
    if (schemaType !== undefined && schemaType !== 'AVRO') throw registryErrors.invalidSchema(`Invalid schema: schemaType ${String(schemaType)} is not supported; this registry serves AVRO`)
    if (Array.isArray(references) && references.length > 0) throw registryErrors.invalidSchema('Invalid schema: schema references are not supported')
    if (typeof schema !== 'string' || schema.trim() === '') throw registryErrors.invalidSchema('Invalid schema: the request needs a "schema" string')
    try {
      return parseAvroSchema(schema)
    } catch (err) {
      if (err instanceof InvalidSchemaError) throw registryErrors.invalidSchema(err.message)
      throw err
    }
  }

  async register(subject: string, body: { schema?: unknown; schemaType?: unknown; references?: unknown }): Promise<{ id: number }> {
    const parsed = this.parse(body.schema, body.schemaType, body.references)
    return this.serialize(async () => {
      for (let attempt = 1; attempt <= MAX_WRITE_ATTEMPTS; attempt++) {
        await this.log.catchUp()
        const live = this.state.versions(subject)
        const same = live.find((r) => r.schema === parsed.canonical)
        if (same !== undefined) return { id: same.id }
        const level = this.compatibilityFor(subject)
        const problems = compatibilityProblems(
          parsed.type,
          live.map((r) => ({ version: r.version, type: parseAvroSchema(r.schema).type })),
          level,
        )
        if (problems.length > 0) throw registryErrors.incompatible(problems)
        const id = this.state.idForSchema(parsed.canonical) ?? this.state.nextId()
        const version = this.state.nextVersion(subject)
        const record: SchemaRecord = { subject, version, id, schema: parsed.canonical, schemaType: 'AVRO', deleted: false }
        await this.log.append({ keytype: 'SCHEMA', subject, version }, record)
        const stored = this.state.version(subject, version)
        if (stored !== undefined && stored.id === id && stored.schema === parsed.canonical) return { id }
        // Another instance took this version or id first; the log decided, so look again.
      }
      throw registryErrors.store(`could not register under '${subject}' after ${MAX_WRITE_ATTEMPTS} attempts: concurrent writers kept winning`)
    })
  }

  async lookup(subject: string, body: { schema?: unknown; schemaType?: unknown; references?: unknown }, includeDeleted: boolean): Promise<RegisteredSchema> {
    const parsed = this.parse(body.schema, body.schemaType, body.references)
    await this.log.catchUp()
    if (!this.state.hasSubject(subject)) throw registryErrors.subjectNotFound(subject)
    const found = this.state.versions(subject, includeDeleted).find((r) => r.schema === parsed.canonical)
    if (found === undefined) throw registryErrors.schemaNotFound()
    return { subject, id: found.id, version: found.version, schema: found.schema }
  }

  /** Resolves `latest`, `-1` or a number to a stored version. */
  getVersion(subject: string, versionParam: string, includeDeleted = false): SchemaRecord {
    const version = parseVersion(versionParam)
    if (!this.state.hasSubject(subject)) throw registryErrors.subjectNotFound(subject)
    const versions = this.state.versions(subject, includeDeleted)
    const found = version === 'latest' ? versions.at(-1) : versions.find((r) => r.version === version)
    if (found === undefined) {
      if (this.state.versions(subject, false).length === 0 && !includeDeleted) throw registryErrors.subjectNotFound(subject)
      throw registryErrors.versionNotFound(versionParam)
    }
    return found
  }

  checkCompatibility(subject: string, versionParam: string, body: { schema?: unknown; schemaType?: unknown; references?: unknown }): string[] {
    const parsed = this.parse(body.schema, body.schemaType, body.references)
    const version = parseVersion(versionParam)
    const live = this.state.versions(subject)
    if (live.length === 0) {
      // Confluent answers "compatible" for `latest` of an unknown subject; a named version must exist.
      if (version === 'latest') return []
      if (!this.state.hasSubject(subject)) throw registryErrors.subjectNotFound(subject)
      throw registryErrors.versionNotFound(versionParam)
    }
    const level = this.compatibilityFor(subject)
    const toType = (r: SchemaRecord) => ({ version: r.version, type: parseAvroSchema(r.schema).type })
    if (level.endsWith('_TRANSITIVE')) return compatibilityProblems(parsed.type, live.map(toType), level)
    const target = version === 'latest' ? live.at(-1) : live.find((r) => r.version === version)
    if (target === undefined) throw registryErrors.versionNotFound(versionParam)
    return compatibilityProblems(parsed.type, [toType(target)], level)
  }

  async deleteSubject(subject: string, permanent: boolean): Promise<number[]> {
    return this.serialize(async () => {
      await this.log.catchUp()
      const all = this.state.versions(subject, true)
      if (all.length === 0) throw registryErrors.subjectNotFound(subject)
      const live = all.filter((r) => !r.deleted)
      if (permanent) {
        if (live.length > 0) throw registryErrors.subjectNotSoftDeleted(subject)
        for (const r of all) await this.log.append({ keytype: 'SCHEMA', subject, version: r.version }, null)
        await this.log.append({ keytype: 'CONFIG', subject }, null)
        return all.map((r) => r.version)
      }
      if (live.length === 0) throw registryErrors.subjectSoftDeleted(subject)
      for (const r of live) await this.log.append({ keytype: 'SCHEMA', subject, version: r.version }, { ...r, deleted: true })
      return live.map((r) => r.version)
    })
  }

  async deleteVersion(subject: string, versionParam: string, permanent: boolean): Promise<number> {
    return this.serialize(async () => {
      await this.log.catchUp()
      const version = parseVersion(versionParam)
      if (!this.state.hasSubject(subject)) throw registryErrors.subjectNotFound(subject)
      const all = this.state.versions(subject, true)
      const target = version === 'latest' ? all.filter((r) => !r.deleted).at(-1) : all.find((r) => r.version === version)
      if (target === undefined) throw registryErrors.versionNotFound(versionParam)
      if (permanent) {
        if (!target.deleted) throw registryErrors.versionNotSoftDeleted(subject, target.version)
        await this.log.append({ keytype: 'SCHEMA', subject, version: target.version }, null)
      } else {
        if (target.deleted) throw registryErrors.versionSoftDeleted(subject, target.version)
        await this.log.append({ keytype: 'SCHEMA', subject, version: target.version }, { ...target, deleted: true })
      }
      return target.version
    })
  }

  async setConfig(subject: string | null, level: unknown): Promise<CompatibilityLevel> {
    if (!isCompatibilityLevel(level)) throw registryErrors.invalidCompatibility(level)
    return this.serialize(async () => {
      await this.log.append({ keytype: 'CONFIG', subject }, { compatibilityLevel: level })
      return level
    })
  }

  async deleteConfig(subject: string): Promise<CompatibilityLevel> {
    return this.serialize(async () => {
      await this.log.catchUp()
      const previous = this.state.config(subject)
      if (previous === undefined) throw registryErrors.subjectConfigNotFound(subject)
      await this.log.append({ keytype: 'CONFIG', subject }, null)
      return previous
    })
  }
}

export function parseVersion(v: string): number | 'latest' {
  if (v === 'latest' || v === '-1') return 'latest'
  if (!/^\d{1,10}$/.test(v)) throw registryErrors.invalidVersion(v)
  const n = Number(v)
  if (n < 1 || n > 2 ** 31 - 1) throw registryErrors.invalidVersion(v)
  return n
}

export { RegistryError }

import type { CompatibilityLevel } from './compatibility.ts'

/**
 * The registry's state, rebuilt by applying the records of its compacted topic in log order.
 * Every instance applies the same records in the same order, so every instance agrees; a record
 * that conflicts with what an earlier record established (two instances racing for one version
 * or one id) is ignored by all of them, and its writer notices and retries.
 */
export type RegistryKey =
  | { keytype: 'SCHEMA'; subject: string; version: number }
  | { keytype: 'CONFIG'; subject: string | null }

export interface SchemaRecord {
  subject: string
  version: number
  id: number
  schema: string
  schemaType: 'AVRO'
  deleted: boolean
}

export interface ConfigRecord {
  compatibilityLevel: CompatibilityLevel
}

export function encodeKey(key: RegistryKey): string {
  // Fixed field order: compaction compares key bytes.
  return key.keytype === 'SCHEMA'
    ? JSON.stringify({ keytype: 'SCHEMA', subject: key.subject, version: key.version })
    : JSON.stringify({ keytype: 'CONFIG', subject: key.subject })
}

export class RegistryState {
  private readonly subjects = new Map<string, Map<number, SchemaRecord>>()
  private readonly schemasById = new Map<number, string>()
  private readonly idBySchema = new Map<string, number>()
  private readonly configs = new Map<string | null, CompatibilityLevel>()
  private maxId = 0

  /** Applies one log record; returns false when it conflicts with the state and is ignored. */
  apply(key: RegistryKey, value: SchemaRecord | ConfigRecord | null): boolean {
    if (key.keytype === 'CONFIG') {
      if (value === null) this.configs.delete(key.subject)
      else this.configs.set(key.subject, (value as ConfigRecord).compatibilityLevel)
      return true
    }
    const versions = this.subjects.get(key.subject)
    if (value === null) {
      versions?.delete(key.version)
      if (versions?.size === 0) this.subjects.delete(key.subject)
      return true
    }
    const record = value as SchemaRecord
    const existing = versions?.get(key.version)
    if (existing !== undefined && (existing.id !== record.id || existing.schema !== record.schema)) return false
    const knownSchema = this.schemasById.get(record.id)
    if (knownSchema !== undefined && knownSchema !== record.schema) return false
    const knownId = this.idBySchema.get(record.schema)
    if (knownId !== undefined && knownId !== record.id) return false
    this.schemasById.set(record.id, record.schema)
    this.idBySchema.set(record.schema, record.id)
    this.maxId = Math.max(this.maxId, record.id)
    const map = versions ?? new Map<number, SchemaRecord>()
    map.set(key.version, { ...record })
    this.subjects.set(key.subject, map)
    return true
  }

  listSubjects(includeDeleted = false): string[] {
    return [...this.subjects.entries()]
      .filter(([, versions]) => includeDeleted || [...versions.values()].some((r) => !r.deleted))
      .map(([s]) => s)
      .sort()
  }

  hasSubject(subject: string): boolean {
    return this.subjects.has(subject)
  }

  /** Versions of a subject, oldest first. */
  versions(subject: string, includeDeleted = false): SchemaRecord[] {
    const versions = this.subjects.get(subject)
    if (versions === undefined) return []
    return [...versions.values()].filter((r) => includeDeleted || !r.deleted).sort((a, b) => a.version - b.version)
  }

  version(subject: string, version: number): SchemaRecord | undefined {
    return this.subjects.get(subject)?.get(version)
  }

  schemaById(id: number): string | undefined {
    return this.schemasById.get(id)
  }

  idForSchema(canonical: string): number | undefined {
    return this.idBySchema.get(canonical)
  }

  nextId(): number {
    return this.maxId + 1
  }

  /** The next version number counts soft-deleted versions too, as Confluent's registry does. */
  nextVersion(subject: string): number {
    const versions = this.subjects.get(subject)
    return versions === undefined ? 1 : Math.max(0, ...versions.keys()) + 1
  }

  subjectsForId(id: number): { subject: string; version: number }[] {
    const out: { subject: string; version: number }[] = []
    for (const [subject, versions] of this.subjects) {
      for (const r of versions.values()) if (r.id === id && !r.deleted) out.push({ subject, version: r.version })
    }
    return out
  }

  config(subject: string | null): CompatibilityLevel | undefined {
    return this.configs.get(subject)
  }
}

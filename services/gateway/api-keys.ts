import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { LedgerError } from '../shared/errors.ts'

/**
 * API keys carry a tenant and a role. Only SHA-256 hashes of keys are stored (keys are 192-bit
 * random strings, so a fast hash is the right tool; there is nothing to brute-force). The file
 * also holds per-tenant settings: redaction mode and rate limit.
 */
export const ROLES = ['emit', 'read', 'audit', 'admin'] as const
export type Role = (typeof ROLES)[number]

const keyEntry = z.object({
  id: z.string(),
  hash: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  tenant: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/),
  role: z.enum(ROLES),
  created_at: z.string(),
  revoked: z.boolean().default(false),
  note: z.string().optional(),
})
const tenantSettings = z.object({
  redaction: z.enum(['strict', 'off']).optional(),
  rate_limit_rps: z.number().positive().optional(),
})
export const keyFileSchema = z.object({
  keys: z.array(keyEntry).default([]),
  tenants: z.record(z.string(), tenantSettings).default({}),
})
export type KeyFile = z.infer<typeof keyFileSchema>
export type TenantSettings = z.infer<typeof tenantSettings>

export interface Principal {
  keyId: string
  tenant: string
  role: Role
}

export function hashKey(key: string): string {
  return `sha256:${createHash('sha256').update(key).digest('hex')}`
}

export function generateKey(role: Role): { key: string; id: string } {
  const secret = randomBytes(24).toString('base64url')
  return { key: `led_${role}_${secret}`, id: `key_${randomBytes(6).toString('hex')}` }
}

export class ApiKeyStore {
  private readonly byHash = new Map<string, Principal>()

  constructor(private readonly file: KeyFile) {
    for (const k of file.keys) if (!k.revoked) this.byHash.set(k.hash, { keyId: k.id, tenant: k.tenant, role: k.role })
  }

  static load(filePath: string): ApiKeyStore {
    let raw: unknown
    try {
      raw = JSON.parse(readFileSync(filePath, 'utf8'))
    } catch (err) {
      throw new LedgerError('LEDGER_ERR_CONFIG', `cannot read the API key file ${filePath}: ${(err as Error).message}`, { cause: err })
    }
    const parsed = keyFileSchema.safeParse(raw)
    if (!parsed.success) {
      throw new LedgerError('LEDGER_ERR_CONFIG', `invalid API key file ${filePath}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`)
    }
    return new ApiKeyStore(parsed.data)
  }

  /** Resolves an `authorization` header; throws 401 errors the caller answers with. */
  authenticate(header: string | undefined): Principal {
    if (header === undefined || header.trim() === '') throw new LedgerError('LEDGER_ERR_AUTH_MISSING', 'authorization header is required: "Bearer <api key>"', { context: { field: 'authorization' } })
    const m = /^Bearer\s+(\S+)$/i.exec(header.trim())
    if (!m) throw new LedgerError('LEDGER_ERR_AUTH_INVALID', 'authorization header must be "Bearer <api key>"', { context: { field: 'authorization' } })
    const principal = this.byHash.get(hashKey(m[1]!))
    if (principal === undefined) throw new LedgerError('LEDGER_ERR_AUTH_INVALID', 'the API key is unknown or revoked', { context: { field: 'authorization' } })
    return principal
  }

  tenantSettings(tenant: string): TenantSettings {
    return this.file.tenants[tenant] ?? {}
  }
}

/** Adds a key to the file (creating it), returns the plaintext key: shown once, never stored. */
export function addKey(filePath: string, tenant: string, role: Role, note?: string): { key: string; id: string } {
  const file: KeyFile = existsSync(filePath) ? keyFileSchema.parse(JSON.parse(readFileSync(filePath, 'utf8'))) : { keys: [], tenants: {} }
  const { key, id } = generateKey(role)
  file.keys.push({ id, hash: hashKey(key), tenant, role, created_at: new Date().toISOString(), revoked: false, ...(note ? { note } : {}) })
  mkdirSync(path.dirname(filePath), { recursive: true })
  writeFileSync(filePath, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 })
  return { key, id }
}

export function revokeKey(filePath: string, id: string): boolean {
  const file = keyFileSchema.parse(JSON.parse(readFileSync(filePath, 'utf8')))
  const entry = file.keys.find((k) => k.id === id)
  if (!entry) return false
  entry.revoked = true
  writeFileSync(filePath, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 })
  return true
}

import type { FastifyRequest } from 'fastify'
import { LedgerError } from '../shared/errors.ts'
import type { ApiKeyStore, Principal, Role } from './api-keys.ts'

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal
  }
}

/** A preHandler that authenticates the request's key and checks its role. */
export function requireRole(keys: ApiKeyStore, roles: readonly Role[]) {
  return async (req: FastifyRequest): Promise<void> => {
    const principal = keys.authenticate(req.headers.authorization)
    if (!roles.includes(principal.role) && principal.role !== 'admin') {
      throw new LedgerError('LEDGER_ERR_FORBIDDEN', `a key with role "${principal.role}" cannot ${req.method} ${req.routeOptions.url}; it needs one of: ${roles.join(', ')}`, {
        context: { tenant: principal.tenant },
      })
    }
    req.principal = principal
  }
}

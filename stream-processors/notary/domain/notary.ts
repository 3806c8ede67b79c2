import { canonicalJson } from '../../../services/shared/canonical-json.ts'
import type { KeyValueStore } from '../../runtime/store.ts'
import { appendLink, emptyRunState, type ChainLink, type RunChainState } from './chain.ts'
import { signDigests, type DigestHead, type DigestRecord, type Signer, type TenantDigestState } from './digest.ts'

/**
 * The notary's domain over a store the runtime owns (the changelog is the store's decorator, not
 * the notary's job). Two steps:
 *
 * - `append(event)`: extends the event's run chain by one link, in the order events are handed
 *   in (the log order). Nothing is reordered, deduplicated or dropped here.
 * - `digest(issuedAt, signer)`: signs, per tenant, the heads that moved since that tenant's last
 *   digest, and records in each run's state which head was covered.
 *
 * Which runs moved is kept in memory and rebuilt from the store (`seq > digested`), so after a
 * restore from the changelog the next digest covers exactly what the previous instance had not.
 */

export type NotaryState = RunChainState | TenantDigestState

export const runKey = (tenant: string, runId: string) => `run/${tenant}/${runId}`
export const tenantKey = (tenant: string) => `tenant/${tenant}`

/** An event the notary cannot chain (no tenant or run id); the runner dead-letters it. */
export class UnchainableEventError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UnchainableEventError'
  }
}

export class Notary {
  private readonly moved = new Set<string>()

  constructor(private readonly store: KeyValueStore<NotaryState>) {
    this.recover()
  }

  /** Rebuilds which runs moved since their last digest from the store (after a restore or a rollback). */
  recover(): void {
    this.moved.clear()
    for (const [key, s] of this.store.entries()) if (s.kind === 'run' && s.seq > s.digested) this.moved.add(key)
  }

  /** Runs whose head moved since it was last signed. */
  get movedRuns(): number {
    return this.moved.size
  }

  append(event: Record<string, unknown>, source: ChainLink['source']): ChainLink {
    const tenant = event.tenant
    const runId = event.run_id
    if (typeof tenant !== 'string' || tenant === '' || tenant.includes('/')) throw new UnchainableEventError('tenant: missing or not a tenant id')
    if (typeof runId !== 'string' || runId === '' || runId.includes('/')) throw new UnchainableEventError('run_id: missing or not a run id')
    const key = runKey(tenant, runId)
    const current = this.store.get(key)
    const before = current?.kind === 'run' ? current : emptyRunState(tenant, runId)
    const { state, link } = appendLink(before, event, canonicalJson(event), source)
    this.store.put(key, state)
    this.moved.add(key)
    return link
  }

  digest(issuedAt: number, signer: Signer): DigestRecord[] {
    if (this.moved.size === 0) return []
    const byTenant = new Map<string, { key: string; state: RunChainState }[]>()
    for (const key of this.moved) {
      const s = this.store.get(key)
      if (s?.kind !== 'run' || s.seq <= s.digested) continue
      let list = byTenant.get(s.tenant)
      if (list === undefined) byTenant.set(s.tenant, (list = []))
      list.push({ key, state: s })
    }
    const out: DigestRecord[] = []
    for (const tenant of [...byTenant.keys()].sort()) {
      const runs = byTenant.get(tenant)!
      const tKey = tenantKey(tenant)
      const prior = this.store.get(tKey)
      const chain: TenantDigestState = prior?.kind === 'tenant' ? prior : { kind: 'tenant', tenant, seq: 0, signature: null }
      const heads: DigestHead[] = runs.map((r) => ({ run_id: r.state.run_id, seq: r.state.seq, head: r.state.head }))
      const signed = signDigests(chain, heads, issuedAt, signer)
      this.store.put(tKey, signed.tenant)
      for (const r of runs) this.store.put(r.key, { ...r.state, digested: r.state.seq })
      out.push(...signed.digests)
    }
    this.moved.clear()
    return out
  }
}

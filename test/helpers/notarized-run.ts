import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import type { ChainLink } from '../../stream-processors/notary/domain/chain.ts'
import { createSigner, type DigestRecord, type Signer } from '../../stream-processors/notary/domain/digest.ts'
import { Notary, type NotaryState } from '../../stream-processors/notary/domain/notary.ts'
import { InMemoryStore } from '../../stream-processors/runtime/store.ts'
import { assembleRunReport, digestTrail, type ControlEntry, type RunReport } from '../../services/report/run-report.ts'

/** An Ed25519 key pair and its signer, made fresh for a test. */
export function testKeys(): { privateKey: KeyObject; publicKey: KeyObject; signer: Signer } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  return { privateKey, publicKey, signer: createSigner(privateKey) }
}

/**
 * Notarizes events (flat JSON, in log order) with no broker: every `digestEvery` events, and at
 * the end, a digest is signed. Returns the links and digests the notary would have emitted.
 */
export function notarize(events: readonly Record<string, unknown>[], signer: Signer, options: { digestEvery?: number; startAt?: number } = {}): { links: ChainLink[]; digests: DigestRecord[] } {
  const notary = new Notary(new InMemoryStore<NotaryState>())
  const links: ChainLink[] = []
  const digests: DigestRecord[] = []
  let at = options.startAt ?? Date.parse('2026-11-22T09:00:00Z')
  const every = options.digestEvery ?? 50
  events.forEach((e, i) => {
    links.push(notary.append(e, { partition: 0, offset: String(i) }))
    if ((i + 1) % every === 0) digests.push(...notary.digest((at += 5_000), signer))
  })
  digests.push(...notary.digest((at += 5_000), signer))
  return { links, digests }
}

/** The report of one run from what `notarize` produced, as the report route assembles it. */
export function reportOf(tenant: string, runId: string, links: readonly ChainLink[], digests: readonly DigestRecord[], control: ControlEntry[] = []): RunReport {
  const chain = links.filter((l) => l.tenant === tenant && l.run_id === runId).map((l) => ({ seq: l.seq, event_hash: l.event_hash, chain_hash: l.chain_hash, event: l.event }))
  const trail = digestTrail(
    digests.filter((d) => d.body.tenant === tenant),
    runId,
    chain.length - 1,
  )
  if (trail === undefined) throw new Error(`no digest covers run ${runId}`)
  return assembleRunReport({ tenant, runId, chain: chain.slice(0, trail.coveredThrough + 1), digests: trail.digests, pendingEvents: chain.length - trail.coveredThrough - 1, control, generatedAt: Date.parse('2026-11-22T12:00:00Z') })
}

import { createHash } from 'node:crypto'
import { canonicalJson } from '../../../services/shared/canonical-json.ts'

/**
 * The per-run hash chain, pure. Every audit event of a run, in log order, becomes one link:
 *
 *   genesis    = sha256(JCS({ kind: "agent-ledger/chain-genesis", v: 1, tenant, run_id }))
 *   event_hash = sha256(JCS(event))                         the event's flat JSON form, RFC 8785
 *   chain_hash = sha256(JCS({ event_hash, prev, seq }))     prev: the previous chain_hash, or genesis
 *
 * Hashes are lowercase hex. The genesis binds the chain to its tenant and run, so a link of another
 * run cannot be spliced in; `seq` (0, 1, 2, ...) and `prev` fix the order. Hashing only JCS bytes
 * means anyone can recompute every value from the events alone.
 */

export const CHAIN_VERSION = 1

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

export function genesisHash(tenant: string, runId: string): string {
  return sha256Hex(canonicalJson({ kind: 'agent-ledger/chain-genesis', v: CHAIN_VERSION, tenant, run_id: runId }))
}

/** The hash of an event's canonical bytes (`canonical` is `canonicalJson(event)`). */
export function eventHash(canonical: string): string {
  return sha256Hex(canonical)
}

export function linkHash(event_hash: string, prev: string, seq: number): string {
  return sha256Hex(canonicalJson({ event_hash, prev, seq }))
}

/** One link of a run's chain, as the notary emits it (canonical JSON on the chain topic). */
export interface ChainLink {
  v: typeof CHAIN_VERSION
  tenant: string
  run_id: string
  seq: number
  event_id: string
  event_type: string
  event_hash: string
  prev: string
  chain_hash: string
  /** Where the event was in the events topic: the log position that fixed its place in the chain. */
  source: { partition: number; offset: string }
  /** The event itself (flat JSON form); JCS of it is exactly what `event_hash` covers. */
  event: Record<string, unknown>
}

/** The notary's state of one run's chain. */
export interface RunChainState {
  kind: 'run'
  tenant: string
  run_id: string
  /** seq of the head link; -1 before the first. */
  seq: number
  head: string
  /** seq of the last head a signed digest covered; -1 if none yet. */
  digested: number
}

export function emptyRunState(tenant: string, runId: string): RunChainState {
  return { kind: 'run', tenant, run_id: runId, seq: -1, head: genesisHash(tenant, runId), digested: -1 }
}

/**
 * Appends one event to its run's chain. The log order is the truth: a late or duplicate event is
 * linked where it appears, never reordered or dropped (the report flags it).
 */
export function appendLink(state: RunChainState, event: Record<string, unknown>, canonical: string, source: ChainLink['source']): { state: RunChainState; link: ChainLink } {
  const seq = state.seq + 1
  const event_hash = eventHash(canonical)
  const chain_hash = linkHash(event_hash, state.head, seq)
  return {
    state: { ...state, seq, head: chain_hash },
    link: {
      v: CHAIN_VERSION,
      tenant: state.tenant,
      run_id: state.run_id,
      seq,
      event_id: String(event.event_id ?? ''),
      event_type: String(event.type ?? ''),
      event_hash,
      prev: state.head,
      chain_hash,
      source,
      event,
    },
  }
}

import type { KeyObject } from 'node:crypto'
import { canonicalJson } from '../shared/canonical-json.ts'
import { eventHash, genesisHash, linkHash } from '../../stream-processors/notary/domain/chain.ts'
import { keyFingerprint, leafData, signatureValid, type DigestBody, type HeadProof } from '../../stream-processors/notary/domain/digest.ts'
import { verifyInclusion } from '../../stream-processors/notary/domain/merkle.ts'
import { ALGORITHM, deriveSections, NOT_COVERED, REPORT_FORMAT, REPORT_VERSION, type ChainedEvent, type ControlEntry, type ReportDigest } from './run-report.ts'

/**
 * The offline verifier: checks a JSON run report with nothing but the notary's public key, which
 * the auditor obtained out of band. It trusts nothing the report says about itself: the tenant and
 * run come from the signed digests, every event hash and chain hash is recomputed from the events,
 * every signed head is compared with the recomputed chain, and the header, timeline, actions and
 * cost sections are derived again from the events and compared. The first problem, in chain order,
 * is returned with the event (or digest) it concerns.
 */

export type ProblemCode =
  | 'format'
  | 'key_mismatch'
  | 'bad_signature'
  | 'digest_chain'
  | 'bad_proof'
  | 'no_signed_head'
  | 'wrong_run'
  | 'order'
  | 'missing_event'
  | 'spliced'
  | 'event_altered'
  | 'link_broken'
  | 'signed_head_mismatch'
  | 'truncated'
  | 'unsigned_tail'
  | 'derived_mismatch'

export interface VerificationProblem {
  code: ProblemCode
  message: string
  seq?: number
  event_id?: string
  digest?: number
}

export interface VerificationResult {
  ok: boolean
  problem?: VerificationProblem
  /** What was checked, for the CLI's summary. */
  checked: { events: number; digests: number; signed_heads: number; head?: string; tenant?: string; run_id?: string; key_fingerprint: string }
  /** What the signatures do not cover (said, not failed). */
  notes: string[]
}

type Json = Record<string, unknown>
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

class Failure extends Error {
  constructor(readonly problem: VerificationProblem) {
    super(problem.message)
  }
}
const fail = (problem: VerificationProblem): never => {
  throw new Failure(problem)
}

/** Fails unless `o` has exactly these members: a renamed or extra member is not silently ignored. */
function exactKeys(o: Json, keys: readonly string[], where: string): void {
  const have = Object.keys(o).sort()
  const want = [...keys].sort()
  if (have.length !== want.length || have.some((k, i) => k !== want[i])) {
    const odd = have.filter((k) => !want.includes(k)).concat(want.filter((k) => !have.includes(k)))
    fail({ code: 'format', message: `${where}: unexpected or missing member ${odd.map((k) => JSON.stringify(k)).join(', ')}` })
  }
}

const eventName = (e: unknown, seq: number) => `event ${isObj(e) && typeof e.event_id === 'string' ? e.event_id : '(no id)'} (seq ${seq}${isObj(e) && typeof e.type === 'string' ? `, ${e.type}` : ''})`

export function verifyRunReport(report: unknown, publicKey: KeyObject): VerificationResult {
  const fingerprint = keyFingerprint(publicKey)
  const checked: VerificationResult['checked'] = { events: 0, digests: 0, signed_heads: 0, key_fingerprint: fingerprint }
  const notes: string[] = []
  try {
    verify(report, publicKey, fingerprint, checked, notes)
    return { ok: true, checked, notes }
  } catch (err) {
    if (err instanceof Failure) return { ok: false, problem: err.problem, checked, notes }
    throw err
  }
}

function verify(report: unknown, publicKey: KeyObject, fingerprint: string, checked: VerificationResult['checked'], notes: string[]): void {
  if (!isObj(report) || report.format !== REPORT_FORMAT) fail({ code: 'format', message: `not an Agent Ledger run report (format is not "${REPORT_FORMAT}")` })
  if ((report as Json).version !== REPORT_VERSION) fail({ code: 'format', message: `report version ${String((report as Json).version)}; this verifier reads version ${REPORT_VERSION}` })
  const r = report as Json
  if (!isObj(r.integrity) || !Array.isArray(r.integrity.chain) || !Array.isArray(r.integrity.digests)) fail({ code: 'format', message: 'the report has no integrity section with a chain and digests' })
  const integrity = r.integrity as Json
  exactKeys(r, ['format', 'version', 'generated_at', 'run', 'timeline', 'actions', 'cost', 'control', 'integrity'], 'the report')
  exactKeys(integrity, ['algorithm', 'tenant', 'run_id', 'genesis', 'chain', 'head', 'covering_digest', 'key_fingerprint', 'digests', 'pending_events', 'not_covered'], 'integrity')
  const { chain, digests } = integrity as { chain: unknown[]; digests: unknown[] }

  // 1. Digests: the given key signed each one, each follows the one before, and each that covers
  //    the run proves its head is under the signed root.
  let tenant: string | undefined
  let runId: string | undefined
  const signedHeads = new Map<number, { head: string; digest: number }>()
  let previous: { seq: number; signature: string } | undefined
  for (const [i, d] of digests.entries()) {
    if (!isObj(d) || !isObj(d.body) || typeof d.signature !== 'string') fail({ code: 'format', message: `integrity.digests[${i}]: not a digest (body and signature)` })
    exactKeys(d as Json, ['body', 'signature', 'covers'], `integrity.digests[${i}]`)
    const { body, signature, covers } = d as { body: DigestBody; signature: string; covers: HeadProof | null }
    const seq = body.seq
    if (body.key_fingerprint !== fingerprint) {
      fail({ code: 'key_mismatch', digest: seq, message: `digest #${seq} says it was signed by key ${String(body.key_fingerprint)}, not by the public key given (${fingerprint})` })
    }
    if (!signatureValid(body, signature, publicKey)) fail({ code: 'bad_signature', digest: seq, message: `digest #${seq}: its signature does not verify with the public key given (${fingerprint}); the digest was altered or signed with another key` })
    if (tenant === undefined) tenant = body.tenant
    else if (body.tenant !== tenant) fail({ code: 'digest_chain', digest: seq, message: `digest #${seq} belongs to tenant ${body.tenant}, not ${tenant}` })
    if (previous !== undefined && (seq !== previous.seq + 1 || body.previous_signature !== previous.signature)) {
      fail({ code: 'digest_chain', digest: seq, message: `digest #${seq} does not follow digest #${previous.seq}: the digest chain is broken (a digest was removed, reordered or replaced)` })
    }
    previous = { seq, signature }
    checked.digests += 1
    if (covers !== null && covers !== undefined) {
      if (!isObj(covers) || typeof covers.run_id !== 'string' || !Number.isInteger(covers.seq) || typeof covers.head !== 'string' || !Array.isArray(covers.proof)) {
        fail({ code: 'format', digest: seq, message: `digest #${seq}: covers is not a head with a proof` })
      }
      exactKeys(covers as unknown as Json, ['run_id', 'seq', 'head', 'leaf_index', 'proof'], `integrity.digests[${i}].covers`)
      if (!verifyInclusion(leafData(covers), covers.leaf_index, body.heads_count, covers.proof, body.heads_root)) {
        fail({ code: 'bad_proof', digest: seq, message: `digest #${seq} does not sign the head it is said to cover (run ${covers.run_id}, seq ${covers.seq}): the Merkle proof fails` })
      }
      if (runId === undefined) runId = covers.run_id
      else if (covers.run_id !== runId) fail({ code: 'wrong_run', digest: seq, message: `digest #${seq} covers run ${covers.run_id}, not ${runId}` })
      signedHeads.set(covers.seq, { head: covers.head, digest: seq })
      checked.signed_heads += 1
    }
  }
  if (tenant === undefined || runId === undefined) fail({ code: 'no_signed_head', message: 'no signed digest in the report covers the run: nothing vouches for its events' })
  checked.tenant = tenant
  checked.run_id = runId
  const run = r.run
  if (integrity.tenant !== tenant || integrity.run_id !== runId || !isObj(run) || run.tenant !== tenant || run.run_id !== runId) {
    fail({ code: 'wrong_run', message: `the report says run ${isObj(run) ? String(run.run_id) : '?'} of tenant ${isObj(run) ? String(run.tenant) : '?'}, but its signed digests cover run ${runId} of tenant ${tenant}` })
  }

  // 2. The chain, in order, from the genesis of this tenant and run.
  const seqs = new Set(chain.map((c) => (isObj(c) ? c.seq : undefined)))
  let prev = genesisHash(tenant!, runId!)
  let vouchedThrough = -1
  for (const [i, c] of chain.entries()) {
    if (!isObj(c) || !isObj(c.event) || typeof c.event_hash !== 'string' || typeof c.chain_hash !== 'string') fail({ code: 'format', seq: i, message: `integrity.chain[${i}]: not a chained event (seq, event_hash, chain_hash, event)` })
    exactKeys(c as Json, ['seq', 'event_hash', 'chain_hash', 'event'], `integrity.chain[${i}]`)
    const entry = c as unknown as ChainedEvent
    const name = eventName(entry.event, entry.seq)
    const id = typeof entry.event.event_id === 'string' ? entry.event.event_id : undefined
    const at = { ...(id ? { event_id: id } : {}) }
    if (entry.seq !== i) {
      if (Number.isInteger(entry.seq) && entry.seq > i && !seqs.has(i)) fail({ code: 'missing_event', seq: i, ...at, message: `seq ${i} is missing: ${name} comes right after seq ${i - 1}; the event at seq ${i} was deleted` })
      fail({ code: 'order', seq: i, ...at, message: `${name} is at position ${i} of the chain: events are out of chain order (moved or swapped)` })
    }
    if (entry.event.tenant !== tenant || entry.event.run_id !== runId) {
      fail({ code: 'spliced', seq: i, ...at, message: `${name} belongs to run ${String(entry.event.run_id)} of tenant ${String(entry.event.tenant)}, not run ${runId}: it was spliced in from another run` })
    }
    const eh = eventHash(canonicalJson(entry.event))
    if (eh !== entry.event_hash) fail({ code: 'event_altered', seq: i, ...at, message: `${name}: its content does not match its hash; it was altered after it was notarized` })
    const ch = linkHash(eh, prev, i)
    if (ch !== entry.chain_hash) {
      fail({ code: 'link_broken', seq: i, ...at, message: `${name}: the chain breaks here; its chain hash does not follow from the events before it (an event before it was removed, inserted or reordered)` })
    }
    const signed = signedHeads.get(i)
    if (signed !== undefined) {
      if (signed.head !== ch) {
        const first = chain[vouchedThrough + 1]
        fail({
          code: 'signed_head_mismatch',
          seq: vouchedThrough + 1,
          digest: signed.digest,
          ...(isObj(first) && isObj(first.event) && typeof first.event.event_id === 'string' ? { event_id: first.event.event_id } : {}),
          message: `the chain through seq ${i} does not match the head signed in digest #${signed.digest}: events were altered and the chain recomputed after they were notarized; the first event no earlier signed head vouches for is ${eventName(isObj(first) ? first.event : undefined, vouchedThrough + 1)}`,
        })
      }
      vouchedThrough = i
    }
    prev = ch
    checked.events += 1
  }
  const lastSigned = Math.max(...signedHeads.keys())
  if (lastSigned >= chain.length) {
    fail({ code: 'truncated', seq: chain.length, digest: signedHeads.get(lastSigned)!.digest, message: `the report ends at seq ${chain.length - 1}, but digest #${signedHeads.get(lastSigned)!.digest} signs the run's head at seq ${lastSigned}: events from seq ${chain.length} on were removed (truncated tail)` })
  }
  if (chain.length - 1 > lastSigned) {
    const first = chain[lastSigned + 1]
    fail({ code: 'unsigned_tail', seq: lastSigned + 1, message: `${eventName(isObj(first) ? first.event : undefined, lastSigned + 1)} and the events after it are not covered by any signed digest in the report` })
  }
  checked.head = prev
  if (!isObj(integrity.head) || integrity.head.chain_hash !== prev || integrity.head.seq !== chain.length - 1 || integrity.genesis !== genesisHash(tenant!, runId!)) {
    fail({ code: 'derived_mismatch', message: 'integrity.head or integrity.genesis does not match the recomputed chain' })
  }
  const covering = signedHeads.get(lastSigned)!.digest
  const said = { covering_digest: integrity.covering_digest, key_fingerprint: integrity.key_fingerprint, algorithm: integrity.algorithm, not_covered: integrity.not_covered }
  const path = firstDifference(said, { covering_digest: covering, key_fingerprint: fingerprint, algorithm: ALGORITHM, not_covered: NOT_COVERED }, 'integrity')
  if (path !== undefined) fail({ code: 'derived_mismatch', message: `${path} in the report does not match its signed digests or this format's definitions` })

  // 3. Every section derived from the events must be what the events say.
  const control = Array.isArray(r.control) ? (r.control as ControlEntry[]) : fail({ code: 'format', message: 'the report has no control section' })
  const derived = deriveSections(tenant!, runId!, chain as ChainedEvent[], control)
  for (const section of ['run', 'timeline', 'actions', 'cost'] as const) {
    const diff = firstDifference(r[section], derived[section], section)
    if (diff !== undefined) fail({ code: 'derived_mismatch', message: `${diff} in the report does not follow from its signed events (it was edited after the report was made)` })
  }
  notes.push('The control section (kill-switch decisions and budget alerts) is not covered by the chain or the signatures.')
  if (typeof integrity.pending_events === 'number' && integrity.pending_events > 0) notes.push(`${integrity.pending_events} later events were not yet signed when the report was made and are not in it.`)
}

/** The path of the first difference between two JSON values, or undefined when equal (a missing member differs from null). */
function firstDifference(a: unknown, b: unknown, path: string): string | undefined {
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      const d = firstDifference(a[i], b[i], `${path}[${i}]`)
      if (d !== undefined) return d
    }
    return undefined
  }
  if (isObj(a) && isObj(b)) {
    const has = (o: Json, k: string) => Object.hasOwn(o, k) && o[k] !== undefined
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      if (has(a, k) !== has(b, k)) return `${path}.${k}`
      const d = firstDifference(a[k], b[k], `${path}.${k}`)
      if (d !== undefined) return d
    }
    return undefined
  }
  if (a === undefined || b === undefined) return a === b ? undefined : path
  return canonicalJson(a) === canonicalJson(b) ? undefined : path
}

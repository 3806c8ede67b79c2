import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import { canonicalJson } from '../../../services/shared/canonical-json.ts'
import { sha256Hex } from './chain.ts'
import { inclusionProof, merkleRoot } from './merkle.ts'

/**
 * Signed digests, pure. At each interval the notary signs, per tenant, a digest of every run
 * chain head that moved since the tenant's previous digest:
 *
 *   body      = { kind: "agent-ledger/notary-digest", v: 1, tenant, seq, issued_at, key_fingerprint,
 *                 previous_signature, heads_root, heads_count }
 *   signature = base64(Ed25519(JCS(body)))
 *
 * `heads_root` is the RFC 6962 Merkle root over the heads sorted by run id, each leaf
 * JCS({ run_id, seq, head }). `previous_signature` is the signature of the tenant's digest seq-1
 * (null for seq 1), so the digests form a chain: one cannot be removed or replaced without
 * breaking the next. This is CloudTrail's digest-file design, with a Merkle root instead of a
 * list so a report proves its own run's head without carrying (or leaking) any other run's.
 */

export const DIGEST_VERSION = 1
export const DIGEST_KIND = 'agent-ledger/notary-digest'
/** The most heads one digest signs; more moved heads make several digests in a row. */
export const MAX_HEADS_PER_DIGEST = 1_000

export interface DigestBody {
  kind: typeof DIGEST_KIND
  v: typeof DIGEST_VERSION
  tenant: string
  seq: number
  issued_at: number
  key_fingerprint: string
  previous_signature: string | null
  heads_root: string
  heads_count: number
}

export interface DigestHead {
  run_id: string
  /** seq of the head link. */
  seq: number
  head: string
}

/** A digest as it is stored: the signed body, its signature and the heads its root covers. */
export interface DigestRecord {
  body: DigestBody
  signature: string
  heads: DigestHead[]
}

/** A tenant's digest chain so far. */
export interface TenantDigestState {
  kind: 'tenant'
  tenant: string
  seq: number
  signature: string | null
}

export interface Signer {
  readonly fingerprint: string
  sign(data: Buffer): Buffer
}

export const leafData = (h: DigestHead): string => canonicalJson({ run_id: h.run_id, seq: h.seq, head: h.head })

/** `sha256:<hex>` of the raw 32-byte Ed25519 public key. */
export function keyFingerprint(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' }) as { x?: string; crv?: string }
  if (jwk.crv !== 'Ed25519' || jwk.x === undefined) throw new TypeError('not an Ed25519 public key')
  return `sha256:${sha256Hex(Buffer.from(jwk.x, 'base64url'))}`
}

export function createSigner(privateKey: KeyObject): Signer {
  const fingerprint = keyFingerprint(createPublicKey(privateKey))
  return { fingerprint, sign: (data) => sign(null, data, privateKey) }
}

export function signatureValid(body: DigestBody, signature: string, publicKey: KeyObject): boolean {
  try {
    // Only the canonical base64 of 64 bytes: Node's decoder skips stray characters and ignores the
    // last character's unused bits, so other spellings of the same bytes would pass as the same signature.
    const bytes = Buffer.from(signature, 'base64')
    if (bytes.length !== 64 || bytes.toString('base64') !== signature) return false
    return verify(null, Buffer.from(canonicalJson(body)), publicKey, bytes)
  } catch {
    return false
  }
}

/**
 * The next digests of a tenant over `heads` (any order; at most one per run): sorted by run id,
 * in chunks of MAX_HEADS_PER_DIGEST, each signed and chained to the one before.
 */
export function signDigests(tenant: TenantDigestState, heads: readonly DigestHead[], issuedAt: number, signer: Signer, maxHeads = MAX_HEADS_PER_DIGEST): { tenant: TenantDigestState; digests: DigestRecord[] } {
  const sorted = [...heads].sort((a, b) => (a.run_id < b.run_id ? -1 : a.run_id > b.run_id ? 1 : 0))
  const digests: DigestRecord[] = []
  let state = tenant
  for (let i = 0; i < sorted.length; i += maxHeads) {
    const chunk = sorted.slice(i, i + maxHeads)
    const body: DigestBody = {
      kind: DIGEST_KIND,
      v: DIGEST_VERSION,
      tenant: state.tenant,
      seq: state.seq + 1,
      issued_at: issuedAt,
      key_fingerprint: signer.fingerprint,
      previous_signature: state.signature,
      heads_root: merkleRoot(chunk.map(leafData)),
      heads_count: chunk.length,
    }
    const signature = signer.sign(Buffer.from(canonicalJson(body))).toString('base64')
    digests.push({ body, signature, heads: chunk })
    state = { ...state, seq: body.seq, signature }
  }
  return { tenant: state, digests }
}

/** Where one run's head sits in a digest, with its audit path to the signed root. */
export interface HeadProof {
  run_id: string
  seq: number
  head: string
  leaf_index: number
  proof: string[]
}

export function proveHead(digest: Pick<DigestRecord, 'heads'>, runId: string): HeadProof | undefined {
  const index = digest.heads.findIndex((h) => h.run_id === runId)
  if (index < 0) return undefined
  const h = digest.heads[index]!
  return { run_id: h.run_id, seq: h.seq, head: h.head, leaf_index: index, proof: inclusionProof(digest.heads.map(leafData), index) }
}

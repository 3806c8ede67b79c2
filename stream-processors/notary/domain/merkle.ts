import { createHash } from 'node:crypto'

/**
 * A Merkle tree over a digest's chain heads, as RFC 6962 (Certificate Transparency) defines it:
 * leaf = sha256(0x00 || data), node = sha256(0x01 || left || right), split at the largest power
 * of two below n. A digest signs only the root, so a report carries its run's head and a proof of
 * log2(n) hashes instead of every other run's head: it stays small and leaks no other run.
 */

const LEAF = Buffer.from([0])
const NODE = Buffer.from([1])

export function leafHash(data: string): Buffer {
  return createHash('sha256').update(LEAF).update(data).digest()
}

function nodeHash(left: Buffer, right: Buffer): Buffer {
  return createHash('sha256').update(NODE).update(left).update(right).digest()
}

function split(n: number): number {
  let k = 1
  while (k * 2 < n) k *= 2
  return k
}

function root(leaves: readonly Buffer[]): Buffer {
  if (leaves.length === 0) return createHash('sha256').digest()
  if (leaves.length === 1) return leaves[0]!
  const k = split(leaves.length)
  return nodeHash(root(leaves.slice(0, k)), root(leaves.slice(k)))
}

/** The root (hex) over leaf data in order. */
export function merkleRoot(leafData: readonly string[]): string {
  return root(leafData.map(leafHash)).toString('hex')
}

/** The audit path of leaf `index` (RFC 6962 PATH), hex hashes from the leaf up. */
export function inclusionProof(leafData: readonly string[], index: number): string[] {
  if (index < 0 || index >= leafData.length) throw new RangeError(`leaf ${index} is outside a tree of ${leafData.length}`)
  const path = (leaves: readonly Buffer[], m: number): Buffer[] => {
    if (leaves.length <= 1) return []
    const k = split(leaves.length)
    return m < k ? [...path(leaves.slice(0, k), m), root(leaves.slice(k))] : [...path(leaves.slice(k), m - k), root(leaves.slice(0, k))]
  }
  return path(leafData.map(leafHash), index).map((b) => b.toString('hex'))
}

/** Checks an audit path (RFC 9162 §2.1.3.2): true when `data` is leaf `index` of `size` under `rootHex`. */
export function verifyInclusion(data: string, index: number, size: number, proof: readonly string[], rootHex: string): boolean {
  if (!Number.isInteger(index) || !Number.isInteger(size) || index < 0 || index >= size) return false
  let fn = index
  let sn = size - 1
  let r = leafHash(data)
  for (const p of proof) {
    if (!/^[0-9a-f]{64}$/.test(p)) return false
    const h = Buffer.from(p, 'hex')
    if (sn === 0) return false
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(h, r)
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn >>= 1
          sn >>= 1
        }
      }
    } else {
      r = nodeHash(r, h)
    }
    fn >>= 1
    sn >>= 1
  }
  return sn === 0 && r.toString('hex') === rootHex
}

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { canonicalJson } from '../../services/shared/canonical-json.ts'
import { emptyRunState, eventHash, genesisHash, linkHash } from '../../stream-processors/notary/domain/chain.ts'
import { leafData, signatureValid, signDigests, type DigestRecord } from '../../stream-processors/notary/domain/digest.ts'
import { inclusionProof, leafHash, merkleRoot, verifyInclusion } from '../../stream-processors/notary/domain/merkle.ts'
import { Notary, runKey, type NotaryState } from '../../stream-processors/notary/domain/notary.ts'
import { ChangeloggingStore, InMemoryStore, type ChangelogRecord } from '../../stream-processors/runtime/store.ts'
import { testKeys } from '../helpers/notarized-run.ts'
import { refundRunEvents } from '../helpers/refund-events.ts'
import { interleave, syntheticRuns } from '../helpers/synthetic-runs.ts'

describe('Merkle tree (RFC 6962)', () => {
  test('every leaf of trees of 1 to 40 leaves has an audit path that verifies, and only for its own data, index and root', () => {
    for (let n = 1; n <= 40; n++) {
      const leaves = Array.from({ length: n }, (_, i) => `leaf-${i}`)
      const root = merkleRoot(leaves)
      for (let i = 0; i < n; i++) {
        const proof = inclusionProof(leaves, i)
        assert.ok(verifyInclusion(leaves[i]!, i, n, proof, root), `n=${n} i=${i}`)
        assert.ok(proof.length <= Math.ceil(Math.log2(n)), 'a path has at most log2(n) hashes')
        assert.equal(verifyInclusion(`${leaves[i]}x`, i, n, proof, root), false)
        if (n > 1) assert.equal(verifyInclusion(leaves[i]!, (i + 1) % n, n, proof, root), false)
        assert.equal(verifyInclusion(leaves[i]!, i, n, proof, merkleRoot([...leaves, 'extra'])), false)
      }
    }
  })

  test('the shapes RFC 6962 defines: one leaf is its leaf hash; two is a node over both', () => {
    assert.equal(merkleRoot(['a']), leafHash('a').toString('hex'))
    assert.notEqual(merkleRoot(['a', 'b']), merkleRoot(['b', 'a']))
    assert.equal(inclusionProof(['a', 'b'], 0)[0], leafHash('b').toString('hex'))
  })
})

describe('the per-run hash chain', () => {
  test('the genesis binds the tenant and the run', () => {
    assert.notEqual(genesisHash('acme', 'run-1'), genesisHash('globex', 'run-1'))
    assert.notEqual(genesisHash('acme', 'run-1'), genesisHash('acme', 'run-2'))
    assert.match(genesisHash('acme', 'run-1'), /^[0-9a-f]{64}$/)
  })

  test('each link hashes the canonical event and chains to the one before, in the order events arrive', () => {
    const notary = new Notary(new InMemoryStore<NotaryState>())
    const events = refundRunEvents()
    const links = events.map((e, i) => notary.append(e, { partition: 2, offset: String(100 + i) }))
    let prev = genesisHash('acme', 'run-refund-1')
    links.forEach((l, i) => {
      assert.equal(l.seq, i)
      assert.equal(l.event_hash, eventHash(canonicalJson(events[i])))
      assert.equal(l.prev, prev)
      assert.equal(l.chain_hash, linkHash(l.event_hash, prev, i))
      assert.deepEqual(l.source, { partition: 2, offset: String(100 + i) })
      prev = l.chain_hash
    })
    // A duplicate (same event id, later in the log) is chained where it appears, not dropped.
    const dup = notary.append(events[2]!, { partition: 2, offset: '200' })
    assert.equal(dup.seq, 10)
    assert.equal(dup.event_id, events[2]!.event_id)
    assert.equal(dup.prev, prev)
  })

  test('an event without a tenant or run id cannot be chained', () => {
    const notary = new Notary(new InMemoryStore<NotaryState>())
    assert.throws(() => notary.append({ type: 'model.call', run_id: 'r' }, { partition: 0, offset: '0' }), /tenant/)
    assert.throws(() => notary.append({ type: 'model.call', tenant: 'acme' }, { partition: 0, offset: '0' }), /run_id/)
  })
})

describe('signed digests', () => {
  test('a digest signs the root over every head that moved, per tenant, chained to the previous digest', () => {
    const { signer, publicKey } = testKeys()
    const notary = new Notary(new InMemoryStore<NotaryState>())
    const a = refundRunEvents({ runId: 'run-a' })
    const b = refundRunEvents({ runId: 'run-b' })
    const g = refundRunEvents({ tenant: 'globex', runId: 'run-g' })
    for (const e of [...a.slice(0, 4), ...b.slice(0, 2), ...g.slice(0, 3)]) notary.append(e, { partition: 0, offset: '0' })
    const first = notary.digest(1_000, signer)
    assert.deepEqual(first.map((d) => [d.body.tenant, d.body.seq, d.body.heads_count]), [['acme', 1, 2], ['globex', 1, 1]])
    const acme1 = first[0]!
    assert.equal(acme1.body.previous_signature, null)
    assert.deepEqual(acme1.heads.map((h) => [h.run_id, h.seq]), [['run-a', 3], ['run-b', 1]])
    assert.equal(acme1.body.heads_root, merkleRoot(acme1.heads.map(leafData)))
    assert.ok(signatureValid(acme1.body, acme1.signature, publicKey))
    assert.equal(acme1.body.key_fingerprint, signer.fingerprint)

    assert.deepEqual(notary.digest(2_000, signer), [], 'nothing moved: no digest')
    notary.append(a[4]!, { partition: 0, offset: '0' })
    const second = notary.digest(3_000, signer)
    assert.equal(second.length, 1)
    assert.deepEqual([second[0]!.body.tenant, second[0]!.body.seq, second[0]!.body.previous_signature], ['acme', 2, acme1.signature])
    assert.deepEqual(second[0]!.heads.map((h) => [h.run_id, h.seq]), [['run-a', 4]], 'only the run that moved')
  })

  test('more moved heads than one digest holds make several digests in a row, each chained', () => {
    const { signer, publicKey } = testKeys()
    const heads = Array.from({ length: 25 }, (_, i) => ({ run_id: `r-${String(i).padStart(2, '0')}`, seq: i, head: 'f'.repeat(64) }))
    const { tenant, digests } = signDigests({ kind: 'tenant', tenant: 'acme', seq: 4, signature: 'prev' }, heads, 1, signer, 10)
    assert.deepEqual(digests.map((d: DigestRecord) => [d.body.seq, d.body.heads_count]), [[5, 10], [6, 10], [7, 5]])
    assert.equal(digests[0]!.body.previous_signature, 'prev')
    assert.equal(digests[1]!.body.previous_signature, digests[0]!.signature)
    assert.equal(digests[2]!.body.previous_signature, digests[1]!.signature)
    assert.deepEqual([tenant.seq, tenant.signature], [7, digests[2]!.signature])
    for (const d of digests) assert.ok(signatureValid(d.body, d.signature, publicKey))
    assert.equal(signatureValid({ ...digests[0]!.body, heads_count: 11 }, digests[0]!.signature, publicKey), false)
    assert.equal(signatureValid(digests[0]!.body, digests[0]!.signature, testKeys().publicKey), false, 'another key does not verify it')
  })

  test('restored from its changelog at any point, the notary continues exactly as one that never stopped', () => {
    const { signer } = testKeys()
    const events: Record<string, unknown>[] = interleave(syntheticRuns({ seed: 7, runs: 30, tenant: "acme" }), 7).map((e) => ({ ...e, occurred_at: Date.parse(String(e.occurred_at)) }))
    const run = (cuts: number[]) => {
      let changelog: ChangelogRecord<NotaryState>[] = []
      let store = new ChangeloggingStore(new InMemoryStore<NotaryState>())
      let notary = new Notary(store)
      const out: string[] = []
      events.forEach((e, i) => {
        if (cuts.includes(i)) {
          // A crash: only what was committed to the changelog survives.
          store = new ChangeloggingStore(new InMemoryStore<NotaryState>())
          store.restore(changelog)
          notary = new Notary(store)
        }
        out.push(canonicalJson(notary.append(e, { partition: 0, offset: String(i) })))
        if (i % 37 === 36) for (const d of notary.digest(i, signer)) out.push(canonicalJson(d))
        changelog = [...changelog, ...store.drain()]
        store.commit()
      })
      return out
    }
    const straight = run([])
    assert.ok(straight.length > events.length)
    assert.deepEqual(run([1, 100, 250, events.length - 3]), straight)
    const st = new ChangeloggingStore(new InMemoryStore<NotaryState>())
    const n = new Notary(st)
    n.append(events[0]!, { partition: 0, offset: '0' })
    assert.equal((st.get(runKey('acme', String(events[0]!.run_id))) as { seq: number }).seq, 0)
    assert.equal(emptyRunState('acme', 'x').seq, -1)
  })
})

import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import type { LedgerError } from '../../services/shared/errors.ts'
import { createLogger } from '../../services/shared/log.ts'
import { createSigner, keyFingerprint } from '../../stream-processors/notary/domain/digest.ts'
import { notarySinkSources } from '../../stream-processors/notary/notary-sink.ts'
import { loadNotaryKey, parseSigningKey } from '../../stream-processors/notary/signing-key.ts'
import { notarize, testKeys } from '../helpers/notarized-run.ts'
import { refundRunEvents } from '../helpers/refund-events.ts'
import { scratchDir } from '../helpers/stack.ts'

const quiet = createLogger('silent')

test('a signing key is read from PKCS#8 PEM or a 64-hex seed; the same seed is the same key', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  assert.equal(keyFingerprint(publicKey), createSigner(parseSigningKey(pem, 'X')).fingerprint)
  const seed = 'ab'.repeat(32)
  assert.equal(createSigner(parseSigningKey(seed, 'X')).fingerprint, createSigner(parseSigningKey(seed.toUpperCase(), 'X')).fingerprint)
  assert.match(createSigner(parseSigningKey(seed, 'X')).fingerprint, /^sha256:[0-9a-f]{64}$/)
})

test('a bad or non-Ed25519 key, or both variables, is a configuration error naming the variable', () => {
  const fails = (fn: () => unknown, re: RegExp) =>
    assert.throws(fn, (err: LedgerError) => {
      assert.equal(err.code, 'LEDGER_ERR_CONFIG')
      assert.match(err.message, re)
      return true
    })
  fails(() => parseSigningKey('not a key', 'LEDGER_NOTARY_SIGNING_KEY'), /^LEDGER_NOTARY_SIGNING_KEY: not an Ed25519 private key/)
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  fails(() => parseSigningKey(rsa, 'LEDGER_NOTARY_SIGNING_KEY'), /is rsa, not Ed25519/)
  fails(() => loadNotaryKey({ LEDGER_NOTARY_SIGNING_KEY: 'ab'.repeat(32), LEDGER_NOTARY_SIGNING_KEY_FILE: '/x' }, scratchDir('k'), quiet), /both set/)
  fails(() => loadNotaryKey({ LEDGER_NOTARY_SIGNING_KEY_FILE: '/no/such/key.pem' }, scratchDir('k'), quiet), /^LEDGER_NOTARY_SIGNING_KEY_FILE: cannot read/)
})

test('with no key configured, a dev key is generated once into the data dir (mode 600) and reused', () => {
  const dir = scratchDir('dev-key')
  const first = loadNotaryKey({}, dir, quiet)
  const file = path.join(dir, 'notary-signing-key.pem')
  assert.equal(first.file, file)
  assert.equal(statSync(file).mode & 0o777, 0o600)
  assert.ok(existsSync(path.join(dir, 'notary-public-key.pem')))
  assert.equal(loadNotaryKey({}, dir, quiet).signer.fingerprint, first.signer.fingerprint, 'reused, not regenerated')
  const viaFile = path.join(dir, 'copy.pem')
  writeFileSync(viaFile, readFileSync(file))
  assert.equal(loadNotaryKey({ LEDGER_NOTARY_SIGNING_KEY_FILE: viaFile }, scratchDir('other'), quiet).signer.fingerprint, first.signer.fingerprint)
})

test('the sink maps links, digests and key announcements to their tables, and refuses what the notary never writes', async () => {
  const [chain, digests] = notarySinkSources({ chain: 'c', digests: 'd' })
  const { links, digests: signed } = notarize(refundRunEvents(), testKeys().signer)
  const position = { topic: 'c', partition: 2, offset: '41' }
  const [linkRow] = await chain!.toRows({ key: null, value: Buffer.from(JSON.stringify(links[3])) } as never, position)
  assert.equal(linkRow!.table, 'notary_chain')
  assert.deepEqual([linkRow!.row.seq, linkRow!.row.chain_hash, linkRow!.row.kafka_offset], [3, links[3]!.chain_hash, '41'])
  const rows = await digests!.toRows({ key: null, value: Buffer.from(JSON.stringify(signed[0])) } as never, position)
  assert.deepEqual(rows.map((r) => r.table), ['notary_digests', 'notary_digest_heads'])
  assert.equal(rows[0]!.row.signature, signed[0]!.signature)
  const key = await digests!.toRows({ key: null, value: Buffer.from(JSON.stringify({ kind: 'agent-ledger/notary-key', fingerprint: 'sha256:x', algorithm: 'Ed25519', public_key_pem: 'PEM', announced_at: 1 })) } as never, position)
  assert.equal(key[0]!.table, 'notary_keys')
  await assert.rejects(chain!.toRows({ key: null, value: Buffer.from('{"tenant":"acme","event":{}}') } as never, position), /run_id: missing/)
  await assert.rejects(digests!.toRows({ key: null, value: Buffer.from('not json') } as never, position), /not a JSON object/)
})

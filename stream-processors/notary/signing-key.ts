import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { LedgerError } from '../../services/shared/errors.ts'
import type { Logger } from '../../services/shared/log.ts'
import { createSigner, type Signer } from './domain/digest.ts'

export interface NotaryKey {
  privateKey: KeyObject
  publicKey: KeyObject
  publicKeyPem: string
  signer: Signer
  /** Where the key came from, for the start-up log. */
  source: 'LEDGER_NOTARY_SIGNING_KEY' | 'LEDGER_NOTARY_SIGNING_KEY_FILE' | 'dev key file'
  /** The dev key's file, when the key was generated or read from LEDGER_DATA_DIR. */
  file?: string
}

/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows (RFC 8410). */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

/** A PKCS#8 PEM Ed25519 private key, or its 32-byte seed as 64 hex characters. */
export function parseSigningKey(text: string, variable: string): KeyObject {
  const value = text.trim()
  let key: KeyObject
  try {
    key = /^[0-9a-fA-F]{64}$/.test(value)
      ? createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, Buffer.from(value, 'hex')]), format: 'der', type: 'pkcs8' })
      : createPrivateKey({ key: value, format: 'pem' })
  } catch (err) {
    throw new LedgerError('LEDGER_ERR_CONFIG', `${variable}: not an Ed25519 private key (PKCS#8 PEM, or the 32-byte seed as 64 hex characters): ${(err as Error).message}`, { cause: err })
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new LedgerError('LEDGER_ERR_CONFIG', `${variable}: the key is ${key.asymmetricKeyType ?? 'unknown'}, not Ed25519`)
  return key
}

function make(privateKey: KeyObject, source: NotaryKey['source'], file?: string): NotaryKey {
  const publicKey = createPublicKey(privateKey)
  return { privateKey, publicKey, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), signer: createSigner(privateKey), source, ...(file ? { file } : {}) }
}

/**
 * The notary's signing key: LEDGER_NOTARY_SIGNING_KEY (the key itself), or
 * LEDGER_NOTARY_SIGNING_KEY_FILE (a file holding it). With neither, a development key is generated
 * once into LEDGER_DATA_DIR/notary-signing-key.pem (mode 600) and reused, its public key written
 * beside it, and its fingerprint logged: fine on one machine, never for production, where the key
 * comes from a secret store and auditors get the public key out of band.
 */
export function loadNotaryKey(config: { LEDGER_NOTARY_SIGNING_KEY?: string | undefined; LEDGER_NOTARY_SIGNING_KEY_FILE?: string | undefined }, dataDir: string, logger: Logger): NotaryKey {
  if (config.LEDGER_NOTARY_SIGNING_KEY !== undefined && config.LEDGER_NOTARY_SIGNING_KEY_FILE !== undefined) {
    throw new LedgerError('LEDGER_ERR_CONFIG', 'LEDGER_NOTARY_SIGNING_KEY and LEDGER_NOTARY_SIGNING_KEY_FILE are both set; set one')
  }
  if (config.LEDGER_NOTARY_SIGNING_KEY !== undefined) return make(parseSigningKey(config.LEDGER_NOTARY_SIGNING_KEY, 'LEDGER_NOTARY_SIGNING_KEY'), 'LEDGER_NOTARY_SIGNING_KEY')
  if (config.LEDGER_NOTARY_SIGNING_KEY_FILE !== undefined) {
    let text: string
    try {
      text = readFileSync(config.LEDGER_NOTARY_SIGNING_KEY_FILE, 'utf8')
    } catch (err) {
      throw new LedgerError('LEDGER_ERR_CONFIG', `LEDGER_NOTARY_SIGNING_KEY_FILE: cannot read ${config.LEDGER_NOTARY_SIGNING_KEY_FILE}: ${(err as Error).message}`, { cause: err })
    }
    return make(parseSigningKey(text, 'LEDGER_NOTARY_SIGNING_KEY_FILE'), 'LEDGER_NOTARY_SIGNING_KEY_FILE', config.LEDGER_NOTARY_SIGNING_KEY_FILE)
  }
  const file = path.join(dataDir, 'notary-signing-key.pem')
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true })
    const { privateKey } = generateKeyPairSync('ed25519')
    writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
    chmodSync(file, 0o600)
    const key = make(privateKey, 'dev key file', file)
    writeFileSync(path.join(dataDir, 'notary-public-key.pem'), key.publicKeyPem)
    logger.warn('generated a development signing key for the notary; set LEDGER_NOTARY_SIGNING_KEY or LEDGER_NOTARY_SIGNING_KEY_FILE in production', { file, fingerprint: key.signer.fingerprint })
    return key
  }
  return make(parseSigningKey(readFileSync(file, 'utf8'), file), 'dev key file', file)
}

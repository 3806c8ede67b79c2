import { createPublicKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { verifyRunReport } from './report-verifier.ts'

/**
 * `npm run verify -- <report.json> --public-key <notary-public-key.pem>` checks a JSON run report
 * offline: every event hash, the chain order, each digest's signature and the digest chain, with
 * only the notary's public key (obtained out of band). Needs no network and no Agent Ledger
 * service. Exit codes: 0 verified, 1 the report fails (the message names the first bad event or
 * digest), 2 usage (unreadable file, not a key).
 */
const usage = 'usage: npm run verify -- <report.json> --public-key <public-key.pem> [--json]'
const { positionals, values } = parseArgs({ allowPositionals: true, options: { 'public-key': { type: 'string' }, json: { type: 'boolean', default: false } } })

function fail(message: string, code: 1 | 2): never {
  console.error(message)
  process.exit(code)
}

const [file, ...extra] = positionals
if (file === undefined || extra.length > 0 || values['public-key'] === undefined) fail(usage, 2)
let report: unknown
try {
  report = JSON.parse(readFileSync(file, 'utf8'))
} catch (err) {
  fail(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `not JSON (${(err as Error).message})`}`, 2)
}
let key: KeyObject
try {
  key = createPublicKey(readFileSync(values['public-key'], 'utf8'))
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`an ${String(key.asymmetricKeyType)} key, not Ed25519`)
} catch (err) {
  fail(`${values['public-key']}: not an Ed25519 public key in PEM (${(err as Error).message})`, 2)
}

const started = performance.now()
let result: ReturnType<typeof verifyRunReport>
try {
  result = verifyRunReport(report, key)
} catch (err) {
  // A report malformed in a way the checks did not foresee is still a report that does not verify.
  fail(`FAILED: the report could not be checked: ${(err as Error).message}`, 1)
}
const ms = performance.now() - started
if (values.json) process.stdout.write(JSON.stringify({ ...result, ms: Math.round(ms) }) + '\n')
if (!result.ok) fail(`FAILED: ${result.problem!.message}`, 1)
if (!values.json) {
  const c = result.checked
  console.log(`OK: run ${c.run_id} of tenant ${c.tenant}: ${c.events} events, ${c.signed_heads} signed heads in ${c.digests} digests, all signed by ${c.key_fingerprint}`)
  console.log(`head ${c.head}`)
  for (const note of result.notes) console.log(`note: ${note}`)
  console.log(`verified in ${ms.toFixed(0)} ms`)
}

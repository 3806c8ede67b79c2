import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { ContractError, parseAgentContract } from '../../stream-processors/contracts/agent-contract.ts'

/**
 * `npm run contracts -- publish <contract.yaml> [--url http://127.0.0.1:8080] [--key <admin key>]` posts an agent
 * contract to `POST /v1/contracts` of a running gateway; the key is `--key` or LEDGER_ADMIN_KEY, the URL `--url` or
 * LEDGER_API_URL. `npm run contracts -- validate <contract.yaml>` checks a contract offline with the gateway's own
 * validation. Exit codes: 0 done, 1 refused (invalid contract, bad key, gateway unreachable), 2 usage.
 */
const usage = 'usage: npm run contracts -- publish <contract.yaml> [--url <gateway url>] [--key <admin key>] | validate <contract.yaml>'
const { positionals, values } = parseArgs({ allowPositionals: true, options: { url: { type: 'string' }, key: { type: 'string' } } })
const [command, file, ...extra] = positionals

function fail(message: string, code: 1 | 2 = 1): never {
  console.error(message)
  process.exit(code)
}

if ((command !== 'publish' && command !== 'validate') || file === undefined || extra.length > 0) fail(usage, 2)
let text: string
try {
  text = readFileSync(file, 'utf8')
} catch (err) {
  fail(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`, 2)
}

if (command === 'validate') {
  try {
    const contract = parseAgentContract(text)
    console.log(`${file}: valid contract for ${contract.name}${contract.version !== undefined ? `@${contract.version}` : ' (no version: the gateway versions it by a digest of the text)'}`)
  } catch (err) {
    if (err instanceof ContractError) fail(`${file}: invalid contract\n${err.message}`)
    throw err
  }
} else {
  const key = values.key ?? process.env.LEDGER_ADMIN_KEY
  if (key === undefined || key === '') fail(`an admin API key is required: --key <key> or LEDGER_ADMIN_KEY (create one with npm run keys -- create --tenant <tenant> --role admin)\n${usage}`, 2)
  const base = (values.url ?? process.env.LEDGER_API_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '')
  let res: Response
  try {
    res = await fetch(`${base}/v1/contracts`, { method: 'POST', headers: { 'content-type': 'application/yaml', authorization: `Bearer ${key}` }, body: text })
  } catch (err) {
    fail(`could not reach the gateway at ${base}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`)
  }
  const body = (await res.json().catch(() => undefined)) as { key?: string; version?: string; error?: { code: string; message: string } } | undefined
  if (res.status === 201 && body?.key !== undefined) {
    console.log(`published ${body.key}`)
  } else {
    const why = body?.error !== undefined ? `${body.error.code}: ${body.error.message}` : `HTTP ${res.status}`
    fail(`${file}: the gateway refused the contract (${res.status})\n${why}`)
  }
}

import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

/**
 * `npm run report -- <run-id> [--format json|csv|html] [--out <file>] [--url <api url>] [--key <read or audit key>]`
 * fetches a run's audit report from `GET /v1/runs/{id}/report` of a running backbone and writes it
 * to `--out` (default: stdout). The key is `--key` or LEDGER_API_KEY, the URL `--url` or
 * LEDGER_API_URL (default http://127.0.0.1:8080). Exit codes: 0 written, 1 refused or unreachable
 * (the message says why; a run not yet signed says to retry), 2 usage.
 */
const usage = 'usage: npm run report -- <run-id> [--format json|csv|html] [--out <file>] [--url <api url>] [--key <read or audit key>]'
const { positionals, values } = parseArgs({ allowPositionals: true, options: { format: { type: 'string', default: 'json' }, out: { type: 'string' }, url: { type: 'string' }, key: { type: 'string' } } })

function fail(message: string, code: 1 | 2 = 1): never {
  console.error(message)
  process.exit(code)
}

const [runId, ...extra] = positionals
if (runId === undefined || extra.length > 0) fail(usage, 2)
if (!['json', 'csv', 'html'].includes(values.format!)) fail(`--format: one of json, csv, html\n${usage}`, 2)
const key = values.key ?? process.env.LEDGER_API_KEY
if (key === undefined || key === '') fail(`a read or audit API key is required: --key <key> or LEDGER_API_KEY\n${usage}`, 2)
const base = (values.url ?? process.env.LEDGER_API_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '')

let res: Response
try {
  res = await fetch(`${base}/v1/runs/${encodeURIComponent(runId)}/report?format=${values.format}`, { headers: { authorization: `Bearer ${key}` } })
} catch (err) {
  fail(`could not reach the API at ${base}: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`)
}
const body = Buffer.from(await res.arrayBuffer())
if (res.status !== 200) {
  let why = `HTTP ${res.status}`
  try {
    const e = JSON.parse(body.toString('utf8')) as { error?: { code: string; message: string } }
    if (e.error) why = `${e.error.code}: ${e.error.message}`
  } catch {
    // not JSON: the status says it
  }
  fail(`run ${runId}: the API refused the report (${res.status})\n${why}${res.headers.get('retry-after') ? `\nretry after ${res.headers.get('retry-after')} s` : ''}`)
}
if (values.out !== undefined) {
  writeFileSync(values.out, body)
  console.error(`wrote the ${values.format} report of run ${runId} to ${values.out} (${body.length} bytes)`)
} else process.stdout.write(body)

import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createEmbeddedKafka } from '../infra/kafka/broker.ts'
import { REPO_ROOT } from '../infra/paths.ts'
import { createLogger } from '../services/shared/log.ts'
import { freePort } from '../infra/ports.ts'

/**
 * `npm test`: unit tests, then integration tests against a real Kafka broker this script starts
 * (fetched on first use) in a throw-away directory and stops at the end. With
 * LEDGER_KAFKA_BROKERS set, the integration tests use that cluster instead. `--unit` runs the
 * unit tests only; any other argument filters test files by substring.
 */
const args = process.argv.slice(2)
const unitOnly = args.includes('--unit')
const filters = args.filter((a) => !a.startsWith('--'))

function findTests(dir: string): string[] {
  const out: string[] = []
  for (const entry of readdirSync(dir)) {
    const full = path.join(dir, entry)
    if (statSync(full).isDirectory()) out.push(...findTests(full))
    else if (entry.endsWith('.test.ts')) out.push(full)
  }
  return out.sort()
}

const selected = (files: string[]) => (filters.length === 0 ? files : files.filter((f) => filters.some((s) => f.includes(s))))
const unit = selected(findTests(path.join(REPO_ROOT, 'test', 'unit')))
const integration = unitOnly ? [] : selected(findTests(path.join(REPO_ROOT, 'test', 'integration')))


const env: NodeJS.ProcessEnv = { ...process.env }
let broker: ReturnType<typeof createEmbeddedKafka> | undefined
const scratch = mkdtempSync(path.join(os.tmpdir(), 'ledger-test-'))

if (integration.length > 0 && !process.env.LEDGER_KAFKA_BROKERS) {
  const started = Date.now()
  broker = createEmbeddedKafka({
    dataDir: path.join(scratch, 'kafka'),
    port: await freePort(),
    controllerPort: await freePort(),
    heap: '768m',
    logger: createLogger('info'),
  })
  await broker.start()
  env.LEDGER_KAFKA_BROKERS = broker.brokers.join(',')
  console.log(`# embedded Kafka for tests on ${env.LEDGER_KAFKA_BROKERS} (ready in ${Date.now() - started} ms)`)
}
env.LEDGER_TEST_SCRATCH = scratch

const files = [...unit, ...integration]
if (files.length === 0) {
  console.error('no test files matched')
  process.exit(1)
}
// One file at a time, each in its own process: the machine has two cores and the integration
// tests share one broker. A file whose process outlives its deadline (a hung test, or a handle
// that keeps the process alive after its tests ended) is killed and fails the run, naming the
// file, so CI never waits on it.
const fileDeadlineMs = Number(process.env.LEDGER_TEST_FILE_TIMEOUT_S ?? 900) * 1_000
let current: ReturnType<typeof spawn> | undefined
/** Signals the file's whole process group: `node --test` runs the file in a child of its own, which must go too. */
const signalGroup = (child: ReturnType<typeof spawn>, signal: NodeJS.Signals) => {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal)
  } catch {
    child.kill(signal)
  }
}
for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => current && signalGroup(current, s))
const results: { file: string; ms: number; outcome: string }[] = []
for (const file of files) {
  const started = Date.now()
  const outcome = await new Promise<string>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', file], { stdio: 'inherit', env, cwd: REPO_ROOT, detached: true })
    current = child
    const timer = setTimeout(() => {
      console.error(`# ${path.relative(REPO_ROOT, file)} did not finish within ${fileDeadlineMs / 1000} s: killed`)
      signalGroup(child, 'SIGKILL')
    }, fileDeadlineMs)
    child.on('exit', (c, signal) => {
      clearTimeout(timer)
      resolve(c === 0 ? 'ok' : signal === 'SIGKILL' ? 'timed out' : `failed (${c ?? signal})`)
    })
  })
  results.push({ file: path.relative(REPO_ROOT, file), ms: Date.now() - started, outcome })
}
current = undefined
console.log('\n# test files')
for (const r of results) console.log(`#   ${r.outcome.padEnd(12)} ${(r.ms / 1000).toFixed(1).padStart(7)} s  ${r.file}`)
const failed = results.filter((r) => r.outcome !== 'ok')
console.log(`# ${results.length - failed.length} of ${results.length} files passed`)
const code = failed.length === 0 ? 0 : 1

await broker?.stop()
rmSync(scratch, { recursive: true, force: true })
process.exit(code)

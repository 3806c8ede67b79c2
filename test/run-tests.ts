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
// One file at a time: the machine has two cores and the integration tests share one broker.
const code = await new Promise<number>((resolve) => {
  const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
    stdio: 'inherit',
    env,
    cwd: REPO_ROOT,
  })
  child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)))
  for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => child.kill(s))
})

await broker?.stop()
rmSync(scratch, { recursive: true, force: true })
process.exit(code)

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { REPO_ROOT } from '../../infra/paths.ts'
import { portOpen } from '../../infra/ports.ts'
import { scratchDir, waitFor } from '../helpers/stack.ts'
import { emitRefundRun } from '../helpers/refund-scenario.ts'
import { freePort } from '../../infra/ports.ts'


/**
 * The README's first command, as a newcomer runs it: the whole backbone on its embedded
 * defaults (its own broker, registry and chDB), healthy, then SIGTERM leaves no port or process.
 */
test('npm start: embedded backbone becomes healthy and SIGTERM leaves nothing behind', { timeout: 120_000 }, async (t) => {
  const ports = { kafka: await freePort(), controller: await freePort(), registry: await freePort(), http: await freePort() }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LEDGER_KAFKA_BROKERS: '',
    LEDGER_DATA_DIR: scratchDir('npm-start'),
    LEDGER_EMBEDDED_KAFKA_PORT: String(ports.kafka),
    LEDGER_EMBEDDED_KAFKA_CONTROLLER_PORT: String(ports.controller),
    LEDGER_EMBEDDED_KAFKA_HEAP: '512m',
    LEDGER_REGISTRY_PORT: String(ports.registry),
    LEDGER_HTTP_PORT: String(ports.http),
    LEDGER_LOG_LEVEL: 'warn',
  }
  const started = Date.now()
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'services', 'main.ts')], { env, stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO_ROOT })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  try {
    const exitedEarly = exited.then((code) => {
      throw new Error(`npm start exited with ${code} before it was healthy:\n${output}`)
    })
    exitedEarly.catch(() => undefined) // once healthy, the stop below is expected
    const health = await Promise.race([exitedEarly, waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${ports.http}/healthz`)
        return res.status === 200 ? ((await res.json()) as { status: string; dependencies: Record<string, { ok: boolean }> }) : undefined
      },
      90_000,
      () => `healthz on ${ports.http}; output so far:\n${output}`,
    )])
    const readyMs = Date.now() - started
    assert.equal(health.status, 'ok')
    for (const part of ['clickhouse', 'kafka', 'schemaRegistry', 'lineageSink']) assert.ok(part in health.dependencies, `healthz reports ${part}`)
    assert.ok(Object.values(health.dependencies).every((d) => d.ok))
    assert.match(output, /Agent Ledger is up/)
    t.diagnostic(`ready in ${readyMs} ms`)

    // End to end on what npm start brought up: the dev keys it printed, the seeds' refund run
    // through the client, its lineage through the query API, the sink's work in /metrics.
    const keys = Object.fromEntries(
      readFileSync(path.join(env.LEDGER_DATA_DIR!, 'dev-credentials.txt'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => l.split('\t') as [string, string]),
    )
    const api = `http://127.0.0.1:${ports.http}`
    const run = await emitRefundRun(api, keys.emit!)
    const lineage = await waitFor(
      async () => {
        const res = await fetch(`${api}/v1/actions/${run.ids.refund}/lineage`, { headers: { authorization: `Bearer ${keys.read}` } })
        return res.status === 200 ? ((await res.json()) as { who: { approver: unknown }; policy: { permitted: boolean } }) : undefined
      },
      15_000,
      'the refund lineage through the query API',
    )
    assert.deepEqual(lineage.who.approver, { type: 'user', id: 'u-7' })
    assert.equal(lineage.policy.permitted, true)
    // The sink counts rows as each insert returns; the lineage above may have been read a moment before.
    await waitFor(
      async () => {
        const metrics = await (await fetch(`${api}/metrics`, { headers: { authorization: `Bearer ${keys.admin}` } })).text()
        return Number(/^ledger_sink_rows_total (\d+)$/m.exec(metrics)?.[1]) >= 10
      },
      5_000,
      'ledger_sink_rows_total to count the run',
    )
    assert.equal((await fetch(`${api}/metrics`)).status, 401)
  } finally {
    child.kill('SIGTERM')
  }
  assert.equal(await exited, 0, output)
  for (const [name, port] of Object.entries(ports)) assert.equal(await portOpen(port), false, `${name} port ${port} still open`)
  // No process (the broker JVM above all) still refers to this run's data directory.
  const leftovers = readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(env.LEDGER_DATA_DIR!)
      } catch {
        return false
      }
    })
  assert.deepEqual(leftovers, [], 'processes left behind')
})

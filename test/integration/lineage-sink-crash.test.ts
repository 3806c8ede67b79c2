import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import path from 'node:path'
import { test } from 'node:test'
import { migrate } from '../../infra/clickhouse/migrate.ts'
import { ensureTopics, TOPICS } from '../../infra/kafka/topics.ts'
import { REPO_ROOT } from '../../infra/paths.ts'
import { createLedgerClickHouse } from '../../services/shared/clickhouse.ts'
import { clickhouseEnv, commonEnv, parseConfig } from '../../services/shared/config.ts'
import { bulkEvents } from '../helpers/bulk-events.ts'
import { startTestGateway } from '../helpers/gateway.ts'
import { scratchDir, testLogger, waitFor } from '../helpers/stack.ts'
import { mulberry32 } from '../helpers/synthetic-runs.ts'

/**
 * Exactly-once into ClickHouse: the lineage sink runs as its own process (`npm run sink`, embedded
 * chDB in its own data directory) and is killed with SIGKILL at random moments while it is
 * inserting, at least LEDGER_SINK_CRASH_KILLS times, during a LEDGER_SINK_CRASH_EVENTS-event stream.
 * A last instance drains the topic and stops cleanly. Then ClickHouse must hold exactly the events
 * produced: the raw row count (no FINAL, no merge to hide behind), the distinct count, a SHA-256
 * over the sorted event ids, and the materialized views' counts.
 */
const EVENTS = Number(process.env.LEDGER_SINK_CRASH_EVENTS ?? 1_000_000)
const KILLS = Number(process.env.LEDGER_SINK_CRASH_KILLS ?? 10)

test(`the lineage sink killed with SIGKILL ${KILLS}+ times during a ${EVENTS}-event stream stores every event exactly once`, { timeout: 1_200_000 }, async () => {
  const gw = await startTestGateway()
  const dataDir = scratchDir('sink-crash')
  try {
    const admin = gw.kafka.admin()
    await admin.connect()
    await ensureTopics(admin, Object.values(TOPICS), gw.prefix)

    // The stream, encoded as the gateway encodes, keyed by run id.
    const encoder = gw.runtime.deps.codec
    const ids: string[] = []
    const messages: { key: string; value: Buffer }[] = []
    for (const e of bulkEvents(EVENTS, 7)) {
      ids.push(e.eventId)
      messages.push({ key: e.runId, value: encoder.encode(e.eventType, e.record) })
    }

    const env = {
      ...process.env,
      LEDGER_KAFKA_BROKERS: process.env.LEDGER_KAFKA_BROKERS!,
      LEDGER_REGISTRY_URL: gw.registryUrl,
      LEDGER_TOPIC_PREFIX: gw.prefix,
      LEDGER_DATA_DIR: dataDir,
      LEDGER_SINK_MAX_BATCH: '20000',
      LEDGER_SINK_LINGER_MS: '200',
      LEDGER_SINK_SESSION_TIMEOUT_MS: '6000',
      LEDGER_LOG_LEVEL: 'debug',
    }
    // `node --import tsx` directly, so SIGKILL hits the sink itself and not a wrapper that would orphan it.
    // Debug logs say when each flush starts, so kills can land inside the write-then-commit window.
    let redone = 0
    const startSink = (): { child: ChildProcess; running: Promise<void>; flushes: () => number } => {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'stream-processors', 'lineage', 'main.ts')], { env, cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
      let flushes = 0
      let pending = ''
      const running = new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (chunk: Buffer) => {
          const lines = (pending + chunk.toString()).split('\n')
          pending = lines.pop()!
          for (const line of lines) {
            if (line.includes('"lineage sink running"')) resolve()
            else if (line.includes('"flush started"')) flushes += 1
            else if (line.includes('"redid a logged flush')) redone += 1
          }
        })
        child.once('exit', (code, signal) => reject(new Error(`the sink exited before it ran (${code ?? signal})`)))
      })
      running.catch(() => undefined)
      return { child, running, flushes: () => flushes }
    }
    const exited = (c: ChildProcess) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(undefined) : c.once('exit', r)))

    const producer = gw.kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    let produced = false
    const producing = (async () => {
      const chunk = 10_000
      for (let i = 0; i < messages.length; i += chunk) {
        await producer.send({ topic: gw.topic, acks: -1, messages: messages.slice(i, i + chunk) })
        await new Promise((r) => setTimeout(r, 40))
      }
      produced = true
    })()

    const rnd = mulberry32(2026)
    let kills = 0
    const sinkGroup = `${gw.prefix}ledger.lineage-sink`
    while (kills < KILLS || !produced) {
      const { child, running, flushes } = startSink()
      await running
      // Kill it while it writes: a few flushes in, a random moment after one began.
      const target = 1 + Math.floor(rnd() * 3)
      await waitFor(() => flushes() >= target || produced, 120_000, 'the sink to flush')
      await new Promise((r) => setTimeout(r, rnd() * 250))
      child.kill('SIGKILL')
      await exited(child)
      kills += 1
    }
    await producing
    await producer.disconnect()

    // A last instance drains the topic, then stops cleanly (SIGTERM: flush, commit, leave).
    const { child: last, running } = startSink()
    await running
    const high = new Map((await admin.fetchTopicOffsets(gw.topic)).map((o) => [o.partition, o.high]))
    await waitFor(
      async () => {
        const [committed] = await admin.fetchOffsets({ groupId: sinkGroup, topics: [gw.topic] })
        return committed!.partitions.every((p) => p.offset === high.get(p.partition))
      },
      600_000,
      'the last sink to commit the whole topic',
    )
    last.kill('SIGTERM')
    await exited(last)
    assert.equal(last.exitCode, 0, 'the last sink stopped cleanly')
    await admin.disconnect()

    // The sink's own chDB, opened here now that no sink holds it.
    const ch = await createLedgerClickHouse(parseConfig(commonEnv.extend(clickhouseEnv.shape), { LEDGER_DATA_DIR: dataDir }))
    try {
      await migrate(ch, testLogger)
      const db = ch.database
      const expected = createHash('sha256').update([...ids].sort().join('\n')).digest('hex')
      const [stored] = await ch.query<{ rows: string; distinct: string; checksum: string }>(
        `SELECT count() AS rows, uniqExact(event_id) AS distinct, lower(hex(SHA256(arrayStringConcat(arraySort(groupArray(event_id)), '\n')))) AS checksum FROM ${db}.events`,
      )
      const [views] = await ch.query<{ located: string; usage: string; hourly: string; batches: string }>(
        `SELECT (SELECT count() FROM ${db}.event_locator) AS located, (SELECT sum(events) FROM ${db}.run_usage) AS usage,
                (SELECT sum(events) FROM ${db}.usage_hourly) AS hourly, (SELECT uniqExact(flush_id) FROM ${db}.sink_log) AS batches`,
      )
      console.log(`# sink crash test: ${kills} SIGKILLs, ${EVENTS} events produced, ${stored!.rows} rows stored, ${views!.batches} logged flushes, ${redone} unfinished flushes redone after a kill`)
      assert.equal(Number(stored!.rows), EVENTS, 'raw rows: none lost, none duplicated')
      assert.equal(Number(stored!.distinct), EVENTS)
      assert.equal(stored!.checksum, expected, 'the stored event ids are exactly the produced ones')
      assert.equal(Number(views!.located), EVENTS, 'event_locator: each event once')
      assert.equal(Number(views!.usage), EVENTS, 'run_usage: each event counted once')
      assert.equal(Number(views!.hourly), EVENTS, 'usage_hourly: each event counted once')
      assert.ok(kills >= KILLS)
      assert.ok(redone >= 1, 'at least one kill landed between a flush being logged and being done')
    } finally {
      await ch.close()
    }
  } finally {
    await gw.stop()
  }
})

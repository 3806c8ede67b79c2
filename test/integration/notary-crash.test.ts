import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { createPublicKey } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import type { Kafka, KafkaMessage } from 'kafkajs'
import { TOPICS, topicName } from '../../infra/kafka/topics.ts'
import { REPO_ROOT } from '../../infra/paths.ts'
import { eventSchemas } from '../../schemas/event-schemas.ts'
import { toAvroRecord } from '../../schemas/json-form.ts'
import { validateEvent } from '../../services/gateway/event-validation.ts'
import { canonicalJson } from '../../services/shared/canonical-json.ts'
import { readToEnd } from '../../services/shared/kafka.ts'
import type { ChainLink } from '../../stream-processors/notary/domain/chain.ts'
import { signatureValid, type DigestRecord } from '../../stream-processors/notary/domain/digest.ts'
import { Notary, type NotaryState } from '../../stream-processors/notary/domain/notary.ts'
import { InMemoryStore } from '../../stream-processors/runtime/store.ts'
import { startTestGateway } from '../helpers/gateway.ts'
import { ensureNotaryTopics, testNotaryKey } from '../helpers/notary.ts'
import { scratchDir, unique, waitFor } from '../helpers/stack.ts'
import { interleave, mulberry32, syntheticRuns } from '../helpers/synthetic-runs.ts'

/**
 * The notary runs as its own process (`npm run notary`) and is killed with SIGKILL at random moments of its work
 * while a stream is produced; each time a new instance restores its changelog and continues. After a last instance
 * caught up and was stopped with SIGTERM:
 *
 * - every event of the log is chained exactly once: no link is missing, none is written twice, no run forks;
 * - the chains equal a replay of the log through the pure notary, link for link (the state after the crashes is the
 *   state of an uninterrupted run);
 * - every tenant's digests are signed by the key and chained by signature with no gap, and the last digest of each
 *   run signs its final head.
 */
const EVENTS = Number(process.env.LEDGER_NOTARY_CRASH_EVENTS ?? 20_000)
const KILLS = Number(process.env.LEDGER_NOTARY_CRASH_KILLS ?? 4)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function readAll(kafka: Kafka, topic: string): Promise<Map<number, KafkaMessage[]>> {
  const out = new Map<number, KafkaMessage[]>()
  await readToEnd(kafka, {
    topic,
    groupId: unique('notary-crash-reader'),
    readCommitted: true,
    onMessage: (m, p) => {
      out.set(p, [...(out.get(p) ?? []), m])
    },
  })
  return out
}

test(`the notary killed with SIGKILL ${KILLS} times during a ${EVENTS}-event stream chains every event once, as a replay does`, { timeout: 600_000 }, async () => {
  const gw = await startTestGateway()
  await ensureNotaryTopics(gw)
  const admin = gw.kafka.admin()
  await admin.connect()
  const key = testNotaryKey()
  const keyFile = path.join(scratchDir('notary-crash'), 'key.pem')
  writeFileSync(keyFile, key.privateKey.export({ type: 'pkcs8', format: 'pem' }))
  let child: ChildProcess | undefined
  const stderr: string[] = []
  try {
    const runs: Record<string, unknown>[][] = []
    let total = 0
    for (let seed = 1; total < EVENTS; seed++) {
      for (const run of syntheticRuns({ seed, runs: 100 })) {
        if (total >= EVENTS) break
        runs.push(run)
        total += run.length
      }
    }
    const schemas = eventSchemas()
    const encoder = gw.runtime.deps.codec
    const messages = interleave(runs, 42).map((e, i) => {
      const v = validateEvent(e, i)
      if (!v.ok) throw new Error(`synthetic event ${i} is invalid: ${JSON.stringify(v.problems)}`)
      // Two tenants, so digests are per tenant.
      const tenant = Number(String(e.run_id).split('-').at(-1)) % 2 === 0 ? 'acme' : 'globex'
      return { key: String(e.run_id), value: encoder.encode(v.eventType, toAvroRecord(schemas.get(v.eventType)!, v.value, tenant, Date.parse(String(e.occurred_at)))) }
    })

    const env = {
      ...process.env,
      LEDGER_KAFKA_BROKERS: process.env.LEDGER_KAFKA_BROKERS!,
      LEDGER_REGISTRY_URL: gw.registryUrl,
      LEDGER_TOPIC_PREFIX: gw.prefix,
      LEDGER_NOTARY_SIGNING_KEY_FILE: keyFile,
      LEDGER_NOTARY_DIGEST_INTERVAL_MS: '200',
      LEDGER_PROCESSOR_SESSION_TIMEOUT_MS: '6000',
      LEDGER_DATA_DIR: scratchDir('notary-data'),
      LEDGER_LOG_LEVEL: 'warn',
    }
    // node itself, not the tsx launcher, so SIGKILL reaches the process that does the work.
    const startChild = () => {
      const c = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'stream-processors', 'notary', 'main.ts')], { cwd: REPO_ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] })
      c.stderr!.setEncoding('utf8').on('data', (d: string) => stderr.push(...d.split('\n').filter((l) => l !== '')))
      child = c
      return c
    }
    const exited = (c: ChildProcess) => new Promise<NodeJS.Signals | number | null>((r) => (c.exitCode !== null || c.signalCode !== null ? r(c.signalCode ?? c.exitCode) : c.once('exit', (code, signal) => r(signal ?? code))))
    const committed = async () => {
      const [t] = await admin.fetchOffsets({ groupId: `${gw.prefix}ledger.notary`, topics: [gw.topic] })
      return t!.partitions.reduce((s, p) => s + (BigInt(p.offset) > 0n ? BigInt(p.offset) : 0n), 0n)
    }

    const producer = gw.kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    let produced = 0
    const producing = (async () => {
      const chunk = Math.ceil(messages.length / 60)
      for (let i = 0; i < messages.length; i += chunk) {
        await producer.send({ topic: gw.topic, acks: -1, messages: messages.slice(i, i + chunk) })
        produced = Math.min(messages.length, i + chunk)
        await sleep(500)
      }
    })()
    const rnd = mulberry32(6)
    for (let kills = 0; kills < KILLS; kills++) {
      const before = await committed()
      const c = startChild()
      await Promise.race([
        waitFor(async () => (await committed()) > before, 60_000, `notary instance ${kills + 1} to commit a transaction`),
        exited(c).then((code) => Promise.reject(new Error(`notary instance ${kills + 1} exited (${code}) before it was killed:\n${stderr.slice(-10).join('\n')}`))),
      ])
      await sleep(rnd() * 1_000)
      const behind = (await committed()) < BigInt(produced) || produced < messages.length
      c.kill('SIGKILL')
      assert.equal(await exited(c), 'SIGKILL')
      assert.ok(behind, `kill ${kills + 1} came after the notary had chained the whole stream; make the stream longer`)
    }
    await producing
    await producer.disconnect()

    const last = startChild()
    const high = new Map((await admin.fetchTopicOffsets(gw.topic)).map((o) => [o.partition, o.high]))
    await Promise.race([
      waitFor(
        async () => {
          const [t] = await admin.fetchOffsets({ groupId: `${gw.prefix}ledger.notary`, topics: [gw.topic] })
          return t!.partitions.every((p) => p.offset === high.get(p.partition))
        },
        300_000,
        async () => `the last notary to chain the whole stream (committed ${await committed()} of ${total}); its log:\n${stderr.slice(-15).join('\n')}`,
      ),
      exited(last).then((code) => Promise.reject(new Error(`the last notary exited (${code}) before it caught up:\n${stderr.slice(-15).join('\n')}`))),
    ])
    last.kill('SIGTERM')
    assert.equal(await exited(last), 0, 'SIGTERM stops the notary cleanly (after signing what moved)')

    // The replay: the log, partition by partition (a run never spans partitions), through the pure notary.
    const log = await readAll(gw.kafka, gw.topic)
    const replay = new Notary(new InMemoryStore<NotaryState>())
    const expected = new Map<string, string>()
    let logged = 0
    for (const p of [...log.keys()].sort((a, b) => a - b)) {
      for (const m of log.get(p)!) {
        const link = replay.append((await gw.codec.decode(m.value!)).json, { partition: p, offset: m.offset })
        expected.set(`${link.tenant}/${link.run_id}/${link.seq}`, canonicalJson(link))
        logged += 1
      }
    }
    assert.equal(logged, total, 'every produced event is in the log once')

    const chain = await readAll(gw.kafka, topicName(TOPICS.notaryChain, gw.prefix))
    const seen = new Map<string, string>()
    let duplicates = 0
    for (const records of chain.values()) {
      for (const r of records) {
        const k = r.key!.toString()
        if (seen.has(k)) duplicates += 1
        seen.set(k, r.value!.toString())
      }
    }
    assert.equal(duplicates, 0, 'no link was written twice (a committed batch is never redone)')
    assert.equal(seen.size, total, 'every event was chained')
    let differing = 0
    for (const [k, v] of expected) if (seen.get(k) !== v) differing += 1
    assert.equal(differing, 0, 'the chains equal the replay, link for link')

    const heads = new Map<string, { seq: number; head: string }>()
    for (const v of seen.values()) {
      const l = JSON.parse(v) as ChainLink
      const k = `${l.tenant}/${l.run_id}`
      if ((heads.get(k)?.seq ?? -1) < l.seq) heads.set(k, { seq: l.seq, head: l.chain_hash })
    }
    const digests = [...(await readAll(gw.kafka, topicName(TOPICS.notaryDigests, gw.prefix))).values()].flat()
    const publicKey = createPublicKey(key.publicKeyPem)
    const byTenant = new Map<string, DigestRecord[]>()
    for (const m of digests) {
      if (m.key!.toString().startsWith('key/')) continue
      const d = JSON.parse(m.value!.toString()) as DigestRecord
      byTenant.set(d.body.tenant, [...(byTenant.get(d.body.tenant) ?? []), d])
    }
    assert.deepEqual([...byTenant.keys()].sort(), ['acme', 'globex'])
    const lastSigned = new Map<string, { seq: number; head: string }>()
    for (const [tenant, list] of byTenant) {
      list.forEach((d, i) => {
        assert.equal(d.body.seq, i + 1, `${tenant}: digest seqs run 1, 2, 3, ... with no gap or repeat`)
        assert.equal(d.body.previous_signature, i === 0 ? null : list[i - 1]!.signature, `${tenant}: digest ${d.body.seq} chains to the one before`)
        assert.ok(signatureValid(d.body, d.signature, publicKey), `${tenant}: digest ${d.body.seq} is signed by the key`)
        for (const h of d.heads) lastSigned.set(`${tenant}/${h.run_id}`, { seq: h.seq, head: h.head })
      })
    }
    assert.equal(lastSigned.size, heads.size, 'every run was signed')
    for (const [run, h] of heads) assert.deepEqual(lastSigned.get(run), h, `${run}: the last digest signs its final head`)
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await admin.disconnect()
    await gw.stop()
  }
})

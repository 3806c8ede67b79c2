import { existsSync, mkdirSync, rmSync } from 'node:fs'
import path from 'node:path'
import { migrate } from '../../infra/clickhouse/migrate.ts'
import { resolveDataDir } from '../../infra/paths.ts'
import { addKey, ApiKeyStore } from '../../services/gateway/api-keys.ts'
import { createLineageStore } from '../../services/query/lineage-store.ts'
import { buildLineage, planLineage } from '../../services/query/action-lineage.ts'
import { queryRoutes } from '../../services/query/query-routes.ts'
import { createLedgerClickHouse } from '../../services/shared/clickhouse.ts'
import { clickhouseEnv, commonEnv, parseConfig, queryEnv } from '../../services/shared/config.ts'
import { createHttpApp } from '../../services/shared/http-app.ts'
import { createLogger } from '../../services/shared/log.ts'
import { percentile, printTable } from './bench-stack.ts'

/**
 * Lineage at scale: loads BENCH_EVENTS synthetic events (default 100M: 50 tenants, 5 agents with
 * versions that change week by week, ~1.8M runs from 5 to 1,000 events long, model calls,
 * evidence, policy decisions, approvals and tool calls linked as a real agent links them) into
 * embedded ClickHouse through the same tables and materialized views the sink writes, then
 * measures through the query API over HTTP on loopback — run timeline, action lineage, cost by
 * agent version over a week — beside the same reads as raw ClickHouse queries in the same run
 * (the API's overhead). Also load rows/s and disk bytes per event.
 *
 * The data stays in BENCH_DATA_DIR (default .data/bench-lineage) and is reused by the next run
 * when it holds BENCH_EVENTS events; BENCH_RELOAD=1 loads again. `npm run bench:lineage`.
 */
const EVENTS = Number(process.env.BENCH_EVENTS ?? 100_000_000)
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 2_000)
/** Picks which runs and actions are sampled; a new seed reads data no earlier run has cached. */
const SEED = Number(process.env.BENCH_SEED ?? 1)
const TENANTS = 50
const dataDir = resolveDataDir(process.env.BENCH_DATA_DIR ?? '.data/bench-lineage')
if (process.env.BENCH_RELOAD === '1' && existsSync(dataDir)) rmSync(dataDir, { recursive: true, force: true })
mkdirSync(dataDir, { recursive: true })

const logger = createLogger('warn')
const ch = await createLedgerClickHouse(parseConfig(commonEnv.extend(clickhouseEnv.shape), { LEDGER_DATA_DIR: dataDir, LEDGER_CLICKHOUSE_DATABASE: 'ledger_bench' }))
await migrate(ch, logger)
const db = ch.database
const count = async () => Number((await ch.query<{ n: string }>(`SELECT count() AS n FROM ${db}.events`))[0]!.n)

// Runs: 95% of 5-54 events, 5% of 100-999; start times spread over 28 days; agent versions move
// on by week. Event ids are ULIDs (time, then a per-event counter), so they are unique and valid.
const T0 = Date.parse('2026-10-01T00:00:00Z')
const RUNS_PER_CHUNK = 200_000
const runSql = (r0: number, count: number) => `
WITH
  'sha256:' AS p,
  (r, s) -> concat(p, lower(hex(SHA256(concat(toString(r), ':', toString(s)))))) AS digest,
  (n, t) -> concat(ledger_bench_b32(t, 10), '000', ledger_bench_b32(n, 13)) AS eid
SELECT
  tenant, run_id, toUInt32(st) AS step, eid(n, ms) AS event_id, etype AS event_type,
  fromUnixTimestamp64Milli(toInt64(ms)) AS occurred_at, fromUnixTimestamp64Milli(toInt64(ms + 40)) AS received_at,
  agent, version, 'user' AS principal_type, principal AS principal_id,
  if(etype = 'approval.decided', 'human', 'agent') AS actor,
  multiIf(etype = 'evidence.retrieved', eid(n - 1, ms - 1500), etype = 'tool.call', eid(n - k, ms - k * 1500), '') AS parent_event_id,
  lower(hex(cityHash64(r, 5))) || lower(hex(cityHash64(r, 6))) AS trace_id, '' AS span_id,
  multiIf(
    etype = 'run.started', toJSONString(CAST((agent, version, 'execute_with_approval', CAST((1.0, 1000), 'Tuple(max_cost_usd Float64, max_steps UInt32)'), eid(n, ms), toInt64(ms), 'finance-ops', CAST(('user', principal), 'Tuple(type String, id String)'), run_id, toUInt32(step), tenant, 'run.started') AS Tuple(agent_name String, agent_version String, autonomy_mode String, budget Tuple(max_cost_usd Float64, max_steps UInt32), event_id String, occurred_at Int64, owner String, principal Tuple(type String, id String), run_id String, step UInt32, tenant String, type String))),
    etype = 'model.call', toJSONString(CAST((agent, version, 0.01, eid(n, ms), toUInt32(1200 + h2 % 800), 820, 'gpt-4.1', toInt64(ms), toUInt32(180 + h2 % 200), CAST(('user', principal), 'Tuple(type String, id String)'), 'openai', run_id, toUInt32(step), tenant, 'model.call') AS Tuple(agent_name String, agent_version String, cost_usd Float64, event_id String, input_tokens UInt32, latency_ms UInt32, model String, occurred_at Int64, output_tokens UInt32, principal Tuple(type String, id String), provider String, run_id String, step UInt32, tenant String, type String))),
    etype = 'evidence.retrieved', toJSONString(CAST((agent, version, [concat('sha256:', lower(hex(SHA256(toString(n)))))], [concat('ZD-', toString(r))], eid(n, ms), toInt64(ms), eid(n - 1, ms - 1500), CAST(('user', principal), 'Tuple(type String, id String)'), run_id, 'zendesk', toUInt32(step), tenant, 'evidence.retrieved') AS Tuple(agent_name String, agent_version String, content_hashes Array(String), document_ids Array(String), event_id String, occurred_at Int64, parent_event_id String, principal Tuple(type String, id String), run_id String, source String, step UInt32, tenant String, type String))),
    etype = 'policy.decision', toJSONString(CAST((digest(r, step + 2), agent, version, 'rev-42', decision, concat('d-', toString(n)), 'opa', eid(n, ms), toInt64(ms), 'refunds/allow', CAST(('user', principal), 'Tuple(type String, id String)'), [if(decision = 'allow', 'within limits', 'amount_usd >= 200')], run_id, toUInt32(step), tenant, 'policy.decision') AS Tuple(action_digest String, agent_name String, agent_version String, bundle_revision String, decision String, decision_id String, engine String, event_id String, occurred_at Int64, policy_id String, principal Tuple(type String, id String), reasons Array(String), run_id String, step UInt32, tenant String, type String))),
    etype = 'approval.decided', toJSONString(CAST((digest(r, step + 1), 'human', agent, version, concat('ap-', toString(n)), CAST(('user', 'u-approver'), 'Tuple(type String, id String)'), 'granted', eid(n, ms), toInt64(ms), CAST(('user', 'u-approver'), 'Tuple(type String, id String)'), run_id, toUInt32(step), tenant, 'approval.decided') AS Tuple(action_digest String, actor String, agent_name String, agent_version String, approval_id String, approver Tuple(type String, id String), decision String, event_id String, occurred_at Int64, principal Tuple(type String, id String), run_id String, step UInt32, tenant String, type String))),
    etype = 'tool.call', toJSONString(CAST((action_class, agent, version, amount, digest(r, step), concat('{"charge_id":"ch_', toString(n), '"}'), eid(n, ms), toUInt32(140), toInt64(ms), eid(n - k, ms - k * 1500), CAST(('user', principal), 'Tuple(type String, id String)'), run_id, 'ok', toUInt32(step), tenant, tool, 'tool.call') AS Tuple(action_class String, agent_name String, agent_version String, amount_usd Nullable(Float64), argument_digest String, arguments String, event_id String, latency_ms UInt32, occurred_at Int64, parent_event_id String, principal Tuple(type String, id String), run_id String, status String, step UInt32, tenant String, tool String, type String))),
    toJSONString(CAST((agent, version, eid(n, ms), toInt64(ms), 'succeeded', CAST(('user', principal), 'Tuple(type String, id String)'), run_id, toUInt32(step), tenant, 'run.ended') AS Tuple(agent_name String, agent_version String, event_id String, occurred_at Int64, outcome String, principal Tuple(type String, id String), run_id String, step UInt32, tenant String, type String)))
  ) AS payload,
  toUInt32(r % 6) AS kafka_partition, toUInt64(n) AS kafka_offset, 'bench' AS source_topic, toUInt32(1) AS schema_id, '' AS contract_version,
  if(etype = 'run.started', 'finance-ops', '') AS owner, if(etype = 'run.started', 'execute_with_approval', '') AS autonomy_mode,
  if(etype = 'tool.call', tool, '') AS tool, if(etype = 'tool.call', action_class, '') AS action_class,
  multiIf(etype = 'tool.call', digest(r, step), etype = 'policy.decision', digest(r, step + 2), etype = 'approval.decided', digest(r, step + 1), '') AS action_digest,
  multiIf(etype = 'tool.call', 'ok', etype = 'model.call', 'ok', '') AS status, if(etype = 'run.ended', 'succeeded', '') AS outcome,
  if(etype = 'tool.call', amount, NULL) AS amount_usd,
  if(etype = 'policy.decision', 'refunds/allow', '') AS policy_id, if(etype = 'policy.decision', 'rev-42', '') AS bundle_revision,
  multiIf(etype = 'policy.decision', decision, etype = 'approval.decided', 'granted', '') AS decision,
  if(etype = 'policy.decision', concat('d-', toString(n)), '') AS decision_id, '' AS subject_event_id,
  if(etype = 'approval.decided', concat('ap-', toString(n)), '') AS approval_id,
  if(etype = 'model.call', 'openai', '') AS provider, if(etype = 'model.call', 'gpt-4.1', '') AS model,
  if(etype = 'model.call', toUInt64(1200 + h2 % 800), 0) AS input_tokens, if(etype = 'model.call', toUInt64(180 + h2 % 200), 0) AS output_tokens,
  if(etype = 'model.call', 0.01, 0) AS cost_usd, toUInt32(if(etype = 'model.call', 820, if(etype = 'tool.call', 140, 0))) AS latency_ms
FROM (
  SELECT *, st,
    r * 2000 + st AS n,
    start_ms + st * 1500 AS ms,
    cityHash64(r, st) AS h2,
    (st - 1) % 6 AS k6,
    multiIf(st = 0, 'run.started', st = len - 1, 'run.ended', k6 = 0, 'model.call', k6 = 1, 'evidence.retrieved', k6 = 2, 'policy.decision', k6 = 3, 'approval.decided', 'tool.call') AS etype,
    if(k6 = 4, 4, 5) AS k,
    multiIf(k6 = 5, 'zendesk.read_ticket', h2 % 3 = 0, 'stripe.create_refund', 'stripe.lookup_charge') AS tool,
    if(tool = 'stripe.create_refund', 'irreversible', 'read') AS action_class,
    if(tool = 'stripe.create_refund', toNullable(toFloat64(20 + h2 % 400)), CAST(NULL, 'Nullable(Float64)')) AS amount,
    multiIf(h2 % 100 < 85, 'allow', h2 % 100 < 97, 'require_approval', 'deny') AS decision
  FROM (
    SELECT number AS r, cityHash64(r, 11) AS h,
      toUInt32(if(h % 100 < 95, 5 + intDiv(h, 100) % 50, 100 + intDiv(h, 100) % 900)) AS len,
      concat('t', toString(r % ${TENANTS})) AS tenant,
      concat('run-', toString(r)) AS run_id,
      ${T0} + (cityHash64(r, 2) % (28 * 86400000)) AS start_ms,
      concat('agent-', toString(cityHash64(r, 3) % 5)) AS agent,
      concat('1.', toString(intDiv(start_ms - ${T0}, 7 * 86400000) + cityHash64(r, 4) % 2), '.0') AS version,
      concat('u-', toString(cityHash64(r, 7) % 10000)) AS principal
    FROM numbers(${r0}, ${count})
  ) ARRAY JOIN range(len) AS st
)`

const have = await count()
let loadFigure: Record<string, string | number> | undefined
if (have < EVENTS) {
  if (have > 0) throw new Error(`${dataDir} holds ${have} events, fewer than ${EVENTS}: run with BENCH_RELOAD=1`)
  await ch.command(
    `CREATE FUNCTION IF NOT EXISTS ledger_bench_b32 AS (x, w) -> arrayStringConcat(arrayMap(i -> substring('0123456789ABCDEFGHJKMNPQRSTVWXYZ', toUInt8(bitAnd(bitShiftRight(toUInt64(x), 5 * (w - 1 - i)), 31)) + 1, 1), range(w)))`,
  )
  console.log(`loading ${EVENTS.toLocaleString()} events into ${dataDir} (through the events table and every materialized view) ...`)
  const started = Date.now()
  let r0 = 0
  let loaded = 0
  while (loaded < EVENTS) {
    // Runs average ~55 events; the last chunk is sized to land near BENCH_EVENTS.
    const perRun = loaded > 0 ? loaded / r0 : 55
    const chunk = Math.max(1, Math.min(RUNS_PER_CHUNK, Math.ceil((EVENTS - loaded) / perRun)))
    await ch.client.command({ query: `INSERT INTO ${db}.events (tenant, run_id, step, event_id, event_type, occurred_at, received_at, agent_name, agent_version, principal_type, principal_id, actor, parent_event_id, trace_id, span_id, payload, kafka_partition, kafka_offset, source_topic, schema_id, contract_version, owner, autonomy_mode, tool, action_class, action_digest, status, outcome, amount_usd, policy_id, bundle_revision, decision, decision_id, subject_event_id, approval_id, provider, model, input_tokens, output_tokens, cost_usd, latency_ms) ${runSql(r0, chunk)}`, clickhouse_settings: { async_insert: 0, max_insert_threads: '2' } }).catch((err: Error) => {
      throw new Error(`loading runs ${r0}..${r0 + chunk}: ${err.message.slice(0, 600)}`)
    })
    r0 += chunk
    loaded = await count()
    const s = (Date.now() - started) / 1000
    console.log(`  ${loaded.toLocaleString()} events, ${r0.toLocaleString()} runs, ${s.toFixed(0)} s, ${Math.round(loaded / s).toLocaleString()} rows/s`)
  }
  loadFigure = { what: 'bulk load through the events table + 8 materialized views', events: loaded, seconds: ((Date.now() - started) / 1000).toFixed(0), 'rows/s': Math.round(loaded / ((Date.now() - started) / 1000)) }
}
const events = await count()
console.log(`${events.toLocaleString()} events in ${db}`)

// Disk: what an event costs on disk, in the events table and in everything derived from it.
const disk = await ch.query<{ table: string; bytes: string; rows: string; parts: string }>(
  `SELECT table, sum(bytes_on_disk) AS bytes, sum(rows) AS rows, count() AS parts FROM system.parts WHERE database = {db:String} AND active GROUP BY table ORDER BY bytes DESC`,
  { db },
)
const eventsBytes = Number(disk.find((d) => d.table === 'events')?.bytes ?? 0)
const allBytes = disk.reduce((n, d) => n + Number(d.bytes), 0)

// The query API over HTTP on loopback: one read key per tenant.
const keysFile = path.join(dataDir, 'api-keys.json')
const keys = new Map<string, string>()
for (let t = 0; t < TENANTS; t++) keys.set(`t${t}`, addKey(keysFile, `t${t}`, 'read').key)
const config = parseConfig(queryEnv, {})
const store = createLineageStore(ch, { timeoutMs: config.LEDGER_QUERY_TIMEOUT_MS, maxRunEvents: 200_000 })
const app = createHttpApp({ bodyLimitBytes: 1_048_576 })
await app.register(queryRoutes, { keys: ApiKeyStore.load(keysFile), store, config })
const url = await app.listen({ host: '127.0.0.1', port: 0 })
const api = async (tenant: string, p: string) => {
  const res = await fetch(`${url}${p}`, { headers: { authorization: `Bearer ${keys.get(tenant)}` } })
  if (res.status !== 200) throw new Error(`${p}: HTTP ${res.status} ${await res.text()}`)
  return (await res.json()) as Record<string, any>
}

// Targets, sampled once: random runs and random tool calls.
const runs = await ch.query<{ tenant: string; run_id: string }>(`SELECT tenant, run_id FROM ${db}.runs WHERE cityHash64(run_id, {seed:UInt32}) % 1000 < 5 ORDER BY cityHash64(run_id, 98) LIMIT {n:UInt32}`, { n: SAMPLES, seed: SEED })
const actions = await ch.query<{ tenant: string; event_id: string; run_id: string }>(
  `SELECT tenant, event_id, run_id FROM ${db}.actions WHERE cityHash64(event_id, {seed:UInt32}) % 10000 < 3 ORDER BY cityHash64(event_id, 96) LIMIT {n:UInt32}`,
  { n: SAMPLES, seed: SEED },
)

function summarize(name: string, times: number[]): Record<string, string | number> {
  times.sort((a, b) => a - b)
  return { what: name, samples: times.length, 'p50 ms': percentile(times, 50).toFixed(1), 'p99 ms': percentile(times, 99).toFixed(1), 'max ms': times.at(-1)!.toFixed(1) }
}

async function measure(name: string, items: number, fn: (i: number) => Promise<unknown>): Promise<Record<string, string | number>> {
  for (let i = 0; i < Math.min(20, items); i++) await fn(i) // warm-up
  const times: number[] = []
  for (let i = 0; i < items; i++) {
    const s = performance.now()
    await fn(i)
    times.push(performance.now() - s)
  }
  return summarize(name, times)
}

/**
 * The API and the raw queries over the same samples, alternating which goes first for each
 * sample, so neither always finds the other's data already in the page cache.
 */
async function measurePair(name: string, items: number, api: (i: number) => Promise<unknown>, raw: (i: number) => Promise<unknown>, rawName: string): Promise<Record<string, string | number>[]> {
  const a: number[] = []
  const r: number[] = []
  for (let i = 0; i < items; i++) {
    for (const [fn, times] of i % 2 === 0 ? ([[api, a], [raw, r]] as const) : ([[raw, r], [api, a]] as const)) {
      const s = performance.now()
      await fn(i)
      times.push(performance.now() - s)
    }
  }
  return [summarize(`${name} — API (HTTP)`, a), summarize(`${name} — ${rawName}`, r)]
}

const rawTimeline = (i: number) => store.timeline(runs[i]!.tenant, runs[i]!.run_id, 501)
const rawLineage = async (i: number) => {
  const a = actions[i]!
  const { refs, payloads } = await store.lineageEvents(a.tenant, a.event_id)
  const plan = planLineage(refs, a.event_id)!
  const kills = await store.killsTrippedBy(a.tenant, a.run_id, a.event_id)
  return buildLineage(plan, payloads, { outcome: 'succeeded', killSwitch: kills })
}
// Check the two paths agree before timing them.
const sampleDoc = await api(actions[0]!.tenant, `/v1/actions/${actions[0]!.event_id}/lineage`)
if (sampleDoc.action.event_id !== actions[0]!.event_id || sampleDoc.evidence.proposed_by?.event_id !== sampleDoc.action.parent_event_id) throw new Error(`unexpected lineage document: ${JSON.stringify(sampleDoc).slice(0, 500)}`)
const timelineSizes = (await Promise.all(runs.slice(0, 200).map((r) => store.timeline(r.tenant, r.run_id, 501)))).map((t) => t.length)

const weekFrom = T0 + 14 * 86_400_000
const weekTo = weekFrom + 7 * 86_400_000
const rows: Record<string, string | number>[] = []
rows.push(...(await measurePair('run timeline', runs.length, (i) => api(runs[i]!.tenant, `/v1/runs/${runs[i]!.run_id}/timeline`), rawTimeline, 'raw ClickHouse')))
rows.push(...(await measurePair('action lineage', actions.length, (i) => api(actions[i]!.tenant, `/v1/actions/${actions[i]!.event_id}/lineage`), rawLineage, 'raw ClickHouse (2 queries + build)')))
rows.push(await measure('cost by agent version, one week by day — API', TENANTS * 4, (i) => api(`t${i % TENANTS}`, `/v1/usage/agent-versions?agent=agent-${i % 5}&granularity=day&from=${weekFrom}&to=${weekTo}`)))
rows.push(await measure('cost by agent version, one week by day — raw', TENANTS * 4, (i) => store.usageByVersion(`t${i % TENANTS}`, { agent: `agent-${i % 5}` }, { from: weekFrom, to: weekTo }, 'day')))
rows.push(await measure('actions search: refunds over a day — API', TENANTS * 2, (i) => api(`t${i % TENANTS}`, `/v1/actions?tool=stripe.create_refund&from=${weekFrom + (i % 7) * 86_400_000}&to=${weekFrom + ((i % 7) + 1) * 86_400_000}&limit=100`)))
rows.push(await measure('runs list: a tenant, one day — API', TENANTS * 2, (i) => api(`t${i % TENANTS}`, `/v1/runs?from=${weekFrom + (i % 7) * 86_400_000}&to=${weekFrom + ((i % 7) + 1) * 86_400_000}`)))

console.log(`\nLineage benchmark on embedded chDB (${process.arch}, ${(await import('node:os')).cpus().length} cores), ${events.toLocaleString()} events, ${runs.length} runs (median ${percentile(timelineSizes.sort((a, b) => a - b), 50)} events) and ${actions.length} actions sampled`)
if (loadFigure) printTable('Load', [loadFigure])
printTable('Reads (sequential; goals: timeline p99 ≤ 50 ms, lineage p99 ≤ 100 ms)', rows)
printTable('Disk', [
  { what: 'events table', bytes: eventsBytes, 'bytes/event': (eventsBytes / events).toFixed(1) },
  { what: 'all ledger tables (events, look-ups, rollups)', bytes: allBytes, 'bytes/event': (allBytes / events).toFixed(1) },
])
printTable('Parts per table', disk.map((d) => ({ table: d.table, rows: Number(d.rows), parts: Number(d.parts), bytes: Number(d.bytes) })))
await app.close()
await ch.close()

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { loadMigrations, migrate } from '../../infra/clickhouse/migrate.ts'
import { createLedgerClickHouse, type LedgerClickHouse } from '../../services/shared/clickhouse.ts'
import { clickhouseEnv, commonEnv, parseConfig } from '../../services/shared/config.ts'
import { scratchDir } from '../helpers/stack.ts'

describe('ClickHouse access layer on embedded chDB', () => {
  let ch: LedgerClickHouse

  before(async () => {
    const config = parseConfig(commonEnv.extend(clickhouseEnv.shape), { LEDGER_DATA_DIR: scratchDir('chdb'), LEDGER_CLICKHOUSE_DATABASE: 'ledger_test' })
    ch = await createLedgerClickHouse(config)
  })
  after(async () => {
    await ch.close()
  })

  test('runs embedded when no URL is configured', () => {
    assert.equal(ch.mode, 'embedded')
  })

  test('migrations apply once, and applying them again changes nothing', async () => {
    const first = await migrate(ch)
    assert.deepEqual(first, loadMigrations().map((m) => m.version))
    const second = await migrate(ch)
    assert.deepEqual(second, [])
    const rows = await ch.query<{ n: string }>(`SELECT count() AS n FROM ${ch.database}.schema_migrations FINAL`)
    assert.equal(Number(rows[0]?.n), loadMigrations().length)
  })

  test('rows round-trip through insert and a parameterized query', async () => {
    await migrate(ch)
    const row = {
      tenant: 't1', run_id: 'run-1', step: 1, event_id: '01J00000000000000000000001', event_type: 'tool.call',
      occurred_at: '2026-11-22 10:00:00.123', received_at: '2026-11-22 10:00:00.200', agent_name: 'refund-assistant',
      agent_version: '1.4.2', principal_type: 'user', principal_id: 'u-42', actor: 'agent', parent_event_id: '',
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736', span_id: '00f067aa0ba902b7', payload: '{"tool":"stripe.refund"}',
      kafka_partition: 0, kafka_offset: 7,
    }
    await ch.insert('events', [row])
    const rows = await ch.query<Record<string, unknown>>(
      `SELECT run_id, step, event_type, toString(occurred_at) AS occurred_at, payload FROM ${ch.database}.events WHERE tenant = {tenant:String} AND run_id = {run:String}`,
      { tenant: 't1', run: 'run-1' },
    )
    assert.deepEqual(rows, [{ run_id: 'run-1', step: 1, event_type: 'tool.call', occurred_at: '2026-11-22 10:00:00.123', payload: '{"tool":"stripe.refund"}' }])
  })

  test('a bad statement becomes a classified LedgerError', async () => {
    await assert.rejects(ch.query('SELECT * FROM no_such_table_here'), (err: Error & { code?: string; retriable?: boolean }) => {
      assert.equal(err.code, 'LEDGER_ERR_CLICKHOUSE')
      assert.equal(err.retriable, false)
      return true
    })
  })
})

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { loadMigrations } from '../../infra/clickhouse/migrate.ts'

test('migrations are numbered without gaps and every statement is safe to run twice', () => {
  const migrations = loadMigrations()
  assert.ok(migrations.length > 0)
  migrations.forEach((m, i) => assert.equal(m.version, i + 1, `migration ${m.name} is numbered ${m.version}`))
  for (const m of migrations) {
    for (const s of m.statements) {
      assert.match(s, /IF NOT EXISTS|^ALTER TABLE .* (ADD|MODIFY) .* IF (NOT )?EXISTS|^DROP (TABLE|VIEW) IF EXISTS/is, `${m.version}_${m.name}: ${s.slice(0, 80)}`)
      assert.match(s, /\{\{db\}\}\./, `${m.version}_${m.name} qualifies tables with {{db}}`)
    }
  }
})

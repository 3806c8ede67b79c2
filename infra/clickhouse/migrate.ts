import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { LedgerError } from '../../services/shared/errors.ts'
import type { LedgerClickHouse } from '../../services/shared/clickhouse.ts'
import type { Logger } from '../../services/shared/log.ts'
import { REPO_ROOT } from '../paths.ts'

export const MIGRATIONS_DIR = path.join(REPO_ROOT, 'infra', 'clickhouse', 'migrations')

export interface Migration {
  version: number
  name: string
  checksum: string
  statements: string[]
}

/**
 * Reads `NNNN_name.sql` files in order. `{{db}}` in a file stands for the configured database.
 * Statements are separated by a `;` at the end of a line. Every statement must be safe to run
 * twice (IF NOT EXISTS), because a crash between a statement and its bookkeeping row re-runs it.
 */
export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((file) => {
      const text = readFileSync(path.join(dir, file), 'utf8')
      const statements = text
        .split(/;\s*$/m)
        .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
        .filter((s) => s.length > 0)
      return {
        version: Number(file.slice(0, 4)),
        name: file.slice(5, -4),
        checksum: createHash('sha256').update(text).digest('hex'),
        statements,
      }
    })
}

/** Applies pending migrations; returns the versions applied by this call. Safe to call twice. */
export async function migrate(ch: LedgerClickHouse, logger?: Logger, migrations = loadMigrations()): Promise<number[]> {
  const db = ch.database
  await ch.command(`CREATE DATABASE IF NOT EXISTS ${db}`)
  await ch.command(
    `CREATE TABLE IF NOT EXISTS ${db}.schema_migrations (version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = ReplacingMergeTree ORDER BY version`,
  )
  const applied = new Map(
    (await ch.query<{ version: number; checksum: string }>(`SELECT version, argMax(checksum, applied_at) AS checksum FROM ${db}.schema_migrations GROUP BY version`)).map((r) => [
      Number(r.version),
      r.checksum,
    ]),
  )
  const done: number[] = []
  for (const m of migrations) {
    const known = applied.get(m.version)
    if (known !== undefined) {
      if (known !== m.checksum) {
        throw new LedgerError('LEDGER_ERR_MIGRATION', `migration ${m.version}_${m.name} changed after it was applied; add a new migration instead`)
      }
      continue
    }
    for (const statement of m.statements) {
      try {
        await ch.command(statement.replaceAll('{{db}}', db))
      } catch (err) {
        throw new LedgerError('LEDGER_ERR_MIGRATION', `migration ${m.version}_${m.name} failed: ${(err as Error).message}`, { cause: err })
      }
    }
    await ch.insert('schema_migrations', [{ version: m.version, name: m.name, checksum: m.checksum }])
    logger?.info('applied ClickHouse migration', { version: m.version, name: m.name })
    done.push(m.version)
  }
  return done
}

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { REPO_ROOT } from '../../infra/paths.ts'
import { backboneConfigSchema, parseConfig, registryConfigSchema } from '../../services/shared/config.ts'
import { ERROR_CATALOG, LedgerError } from '../../services/shared/errors.ts'

const readme = () => readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8')

test('defaults bring up everything embedded', () => {
  const config = parseConfig(backboneConfigSchema, {})
  assert.equal(config.LEDGER_KAFKA_BROKERS, undefined)
  assert.equal(config.LEDGER_REGISTRY_URL, undefined)
  assert.equal(config.LEDGER_CLICKHOUSE_URL, undefined)
  assert.equal(config.LEDGER_HTTP_PORT, 8080)
  assert.equal(config.LEDGER_REGISTRY_PORT, 8081)
  assert.equal(config.LEDGER_EMBEDDED_KAFKA_PORT, 9092)
  assert.ok(Object.isFrozen(config))
})

test('each URL variable switches its part to external; blank means embedded', () => {
  const config = parseConfig(backboneConfigSchema, {
    LEDGER_KAFKA_BROKERS: 'k1:9092,k2:9092',
    LEDGER_REGISTRY_URL: 'http://registry:8081',
    LEDGER_CLICKHOUSE_URL: ' ',
  })
  assert.equal(config.LEDGER_KAFKA_BROKERS, 'k1:9092,k2:9092')
  assert.equal(config.LEDGER_REGISTRY_URL, 'http://registry:8081')
  assert.equal(config.LEDGER_CLICKHOUSE_URL, undefined)
})

test('bad values fail at start-up naming every variable', () => {
  assert.throws(
    () => parseConfig(backboneConfigSchema, { LEDGER_HTTP_PORT: 'eighty', LEDGER_LOG_LEVEL: 'loud', LEDGER_CLICKHOUSE_DATABASE: 'drop table' }),
    (err: LedgerError) => {
      assert.equal(err.code, 'LEDGER_ERR_CONFIG')
      for (const v of ['LEDGER_HTTP_PORT', 'LEDGER_LOG_LEVEL', 'LEDGER_CLICKHOUSE_DATABASE']) assert.match(err.message, new RegExp(v))
      return true
    },
  )
})

test('the README documents every configuration variable', () => {
  const text = readme()
  const variables = new Set([...Object.keys(backboneConfigSchema.shape), ...Object.keys(registryConfigSchema.shape)])
  const missing = [...variables].filter((v) => !text.includes(`\`${v}\``))
  assert.deepEqual(missing, [])
})

test('the README documents every error code', () => {
  const text = readme()
  const missing = Object.keys(ERROR_CATALOG).filter((code) => !text.includes(`\`${code}\``))
  assert.deepEqual(missing, [])
})

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { parse } from 'yaml'
import { REPO_ROOT } from '../../infra/paths.ts'
import { backboneConfigSchema, EMBEDDED_ONLY_VARIABLES } from '../../services/shared/config.ts'

interface Compose {
  services: Record<string, { image?: string; build?: unknown; environment?: Record<string, string>; command?: string[] }>
}

/** No Docker engine runs here, so this keeps the production-shaped stack honest instead. */
const compose = parse(readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as Compose

test('docker-compose.yml names Kafka, a Confluent-compatible registry, ClickHouse and our services', () => {
  assert.match(compose.services.kafka?.image ?? '', /^apache\/kafka:3\.9\.1$/)
  assert.match(compose.services['schema-registry']?.image ?? '', /schema-registry/)
  assert.match(compose.services.clickhouse?.image ?? '', /^clickhouse\/clickhouse-server:/)
  assert.ok(compose.services.ledger?.build, 'ledger is built from this repository')
})

test('our services get every variable the code reads, pointing at the compose services', () => {
  const env = compose.services.ledger?.environment ?? {}
  const expected = Object.keys(backboneConfigSchema.shape).filter((v) => !(EMBEDDED_ONLY_VARIABLES as readonly string[]).includes(v))
  assert.deepEqual(expected.filter((v) => !(v in env)), [])
  assert.deepEqual(Object.keys(env).filter((v) => v.startsWith('LEDGER_') && !expected.includes(v)), [], 'variables the code does not read')
  assert.equal(env.LEDGER_KAFKA_BROKERS, 'kafka:9092')
  assert.match(env.LEDGER_REGISTRY_URL ?? '', /^http:\/\/schema-registry:8081$/)
  assert.match(env.LEDGER_CLICKHOUSE_URL ?? '', /^http:\/\/clickhouse:8123$/)
})

test('the image it builds exists in the repository', () => {
  const build = compose.services.ledger?.build as { dockerfile: string }
  assert.ok(readFileSync(path.join(REPO_ROOT, build.dockerfile), 'utf8').includes('FROM node:20'))
})

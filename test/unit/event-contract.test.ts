import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import avro from 'avsc'
import { REPO_ROOT } from '../../infra/paths.ts'
import { composeEventSchema, eventSchemas, type AvroRecord } from '../../schemas/event-schemas.ts'
import { toAvroRecord, fromAvroRecord } from '../../schemas/json-form.ts'
import { generateClientTypes, GENERATED_FILE } from '../../schemas/codegen.ts'
import { validateEvent } from '../../services/gateway/event-validation.ts'
import { RegistryService, type RegistryLog } from '../../services/registry/registry-service.ts'
import { RegistryState } from '../../services/registry/registry-state.ts'
import { sampleEvents } from '../helpers/sample-events.ts'

describe('event contract', () => {
  test('every event type has a sample that validates and round-trips through Avro', () => {
    const samples = sampleEvents()
    assert.deepEqual(new Set(samples.map((s) => s.type)), new Set(eventSchemas().keys()))
    samples.forEach((sample, i) => {
      const result = validateEvent(sample, i)
      assert.ok(result.ok, `${String(sample.type)}: ${JSON.stringify(!result.ok && result.problems)}`)
      const schema = eventSchemas().get(result.eventType)!
      const record = toAvroRecord(schema, result.value, 'acme', 1_795_341_600_000)
      const back = fromAvroRecord(schema, schema.type.fromBuffer(schema.type.toBuffer(record)) as Record<string, unknown>)
      assert.equal(back.event_id, sample.event_id)
      assert.equal(back.tenant, 'acme')
    })
  })

  test('Avro is at most 0.6x the size of the same event as JSON', () => {
    let avroBytes = 0
    let jsonBytes = 0
    for (const [i, sample] of sampleEvents().entries()) {
      const result = validateEvent(sample, i)
      assert.ok(result.ok)
      const schema = eventSchemas().get(result.eventType)!
      const record = toAvroRecord(schema, result.value, 'acme', 1_795_341_600_000)
      avroBytes += 5 + schema.type.toBuffer(record).length
      jsonBytes += Buffer.byteLength(JSON.stringify({ ...sample, tenant: 'acme', received_at: '2026-11-22T10:00:00.000Z' }))
    }
    const ratio = avroBytes / jsonBytes
    assert.ok(ratio <= 0.6, `Avro/JSON = ${ratio.toFixed(3)}`)
  })

  test("the client's generated types are up to date with the schemas (npm run codegen)", () => {
    assert.equal(readFileSync(GENERATED_FILE, 'utf8'), generateClientTypes())
  })

  test('field names follow OpenTelemetry GenAI and OPA where documented', () => {
    const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8')
    for (const attr of ['gen_ai.provider.name', 'gen_ai.request.model', 'gen_ai.usage.input_tokens', 'gen_ai.tool.name', 'decision_id', 'bundles']) {
      assert.ok(readme.includes(attr), `README maps ${attr}`)
    }
  })
})

/** An in-memory log: the registry's own rules, no broker, for the evolution check. */
function memoryRegistry(): RegistryService {
  const state = new RegistryState()
  const log: RegistryLog = {
    append: async (key, value) => void state.apply(key, value),
    catchUp: async () => undefined,
  }
  return new RegistryService(state, log)
}

function git(args: string[]): string {
  return execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
}

describe('schema evolution against git history', () => {
  test('every schema registers over all its earlier committed versions under BACKWARD_TRANSITIVE', async () => {
    let commits: string[] = []
    try {
      commits = git(['log', '--format=%H', '--reverse', '--', 'schemas']).split('\n').filter(Boolean)
    } catch {
      // Not a git checkout (an unpacked tarball): only the working tree is checked.
    }
    const registry = memoryRegistry()
    await registry.setConfig(null, 'BACKWARD_TRANSITIVE')
    const versions = (commit: string | undefined): Map<string, AvroRecord> => {
      const read = (file: string) => (commit ? git(['show', `${commit}:schemas/${file}`]) : readFileSync(path.join(REPO_ROOT, 'schemas', file), 'utf8'))
      let files: string[]
      try {
        files = commit ? git(['ls-tree', '--name-only', commit, 'schemas/']).split('\n').map((f) => f.replace('schemas/', '')) : readdirSync(path.join(REPO_ROOT, 'schemas'))
      } catch {
        return new Map()
      }
      if (!files.includes('envelope.avsc')) return new Map()
      const envelope = JSON.parse(read('envelope.avsc')) as AvroRecord
      const out = new Map<string, AvroRecord>()
      for (const f of files.filter((x) => x.endsWith('.avsc') && x !== 'envelope.avsc')) {
        const raw = JSON.parse(read(f)) as AvroRecord
        out.set(raw['ledger.event_type'] ?? f, composeEventSchema(envelope, raw))
      }
      return out
    }
    let registered = 0
    for (const commit of [...commits, undefined]) {
      for (const [type, schema] of versions(commit)) {
        avro.Type.forSchema(schema as avro.Schema)
        try {
          await registry.register(`ledger.events.v1-${type}`, { schema: JSON.stringify(schema) })
          registered += 1
        } catch (err) {
          assert.fail(`${type} at ${commit ?? 'the working tree'} is incompatible with an earlier version: ${(err as Error).message}`)
        }
      }
    }
    assert.ok(registered >= eventSchemas().size)
  })
})

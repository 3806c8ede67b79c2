import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { compatibilityProblems, parseAvroSchema, type CompatibilityLevel } from '../../services/registry/compatibility.ts'
import { RegistryState } from '../../services/registry/registry-state.ts'

const record = (fields: unknown[]) => parseAvroSchema(JSON.stringify({ type: 'record', name: 'R', fields })).type
const base = record([{ name: 'a', type: 'string' }])
const addedWithDefault = record([{ name: 'a', type: 'string' }, { name: 'b', type: 'int', default: 0 }])
const addedNoDefault = record([{ name: 'a', type: 'string' }, { name: 'b', type: 'int' }])
const removed = record([])
const widened = record([{ name: 'a', type: ['null', 'string'], default: null }])
const enumAB = parseAvroSchema(JSON.stringify({ type: 'enum', name: 'E', symbols: ['A', 'B'] })).type
const enumA = parseAvroSchema(JSON.stringify({ type: 'enum', name: 'E', symbols: ['A'] })).type
const intT = parseAvroSchema('"int"').type
const longT = parseAvroSchema('"long"').type

const ok = (c: typeof base, prev: (typeof base)[], level: CompatibilityLevel) =>
  compatibilityProblems(c, prev.map((type, i) => ({ version: i + 1, type })), level).length === 0

describe('Avro compatibility levels', () => {
  const table: [string, typeof base, (typeof base)[], CompatibilityLevel, boolean][] = [
    ['add field with default, BACKWARD', addedWithDefault, [base], 'BACKWARD', true],
    ['add field without default, BACKWARD', addedNoDefault, [base], 'BACKWARD', false],
    ['add field without default, FORWARD', addedNoDefault, [base], 'FORWARD', true],
    ['remove a field without default, FORWARD', removed, [base], 'FORWARD', false],
    ['remove a field, BACKWARD', removed, [base], 'BACKWARD', true],
    ['add field with default, FULL', addedWithDefault, [base], 'FULL', true],
    ['add field without default, FULL', addedNoDefault, [base], 'FULL', false],
    ['string to nullable union, BACKWARD', widened, [base], 'BACKWARD', true],
    ['int promoted to long, BACKWARD', longT, [intT], 'BACKWARD', true],
    ['long narrowed to int, BACKWARD', intT, [longT], 'BACKWARD', false],
    ['enum loses a symbol, BACKWARD', enumA, [enumAB], 'BACKWARD', false],
    ['enum gains a symbol, BACKWARD', enumAB, [enumA], 'BACKWARD', true],
    ['enum gains a symbol, FORWARD', enumAB, [enumA], 'FORWARD', false],
    ['anything goes under NONE', intT, [base], 'NONE', true],
    // Non-transitive looks at the latest only; transitive at all of them.
    ['BACKWARD checks only the latest', addedNoDefault, [base, addedNoDefault], 'BACKWARD', true],
    ['BACKWARD_TRANSITIVE checks every version', addedNoDefault, [base, addedNoDefault], 'BACKWARD_TRANSITIVE', false],
    ['FULL_TRANSITIVE with defaults throughout', addedWithDefault, [base, addedWithDefault], 'FULL_TRANSITIVE', true],
  ]
  for (const [name, candidate, previous, level, expected] of table) {
    test(name, () => assert.equal(ok(candidate, previous, level), expected))
  }

  test('problems name the version and the reason', () => {
    const [problem] = compatibilityProblems(addedNoDefault, [{ version: 3, type: base }], 'BACKWARD')
    assert.match(problem ?? '', /version 3/)
    assert.match(problem ?? '', /R\.b/)
  })

  test('invalid schemas are refused with the reason', () => {
    assert.throws(() => parseAvroSchema('{"type":"record","name":"X","fields":[{"name":"a","type":"nope"}]}'), /undefined type name: nope/)
    assert.throws(() => parseAvroSchema('not json'), /not JSON/)
  })
})

describe('registry state applied from the log', () => {
  const rec = (subject: string, version: number, id: number, schema: string) => ({ subject, version, id, schema, schemaType: 'AVRO' as const, deleted: false })

  test('a record that conflicts with an earlier one is ignored by every instance', () => {
    const state = new RegistryState()
    assert.equal(state.apply({ keytype: 'SCHEMA', subject: 's', version: 1 }, rec('s', 1, 1, '"int"')), true)
    // Another instance raced for version 1 with another schema: the later record loses.
    assert.equal(state.apply({ keytype: 'SCHEMA', subject: 's', version: 1 }, rec('s', 1, 2, '"long"')), false)
    // …or for id 1 under another subject.
    assert.equal(state.apply({ keytype: 'SCHEMA', subject: 't', version: 1 }, rec('t', 1, 1, '"long"')), false)
    assert.equal(state.version('s', 1)?.schema, '"int"')
    assert.equal(state.schemaById(1), '"int"')
    assert.equal(state.nextId(), 2)
  })

  test('soft-deleted versions still count for the next version; tombstones remove them', () => {
    const state = new RegistryState()
    state.apply({ keytype: 'SCHEMA', subject: 's', version: 1 }, rec('s', 1, 1, '"int"'))
    state.apply({ keytype: 'SCHEMA', subject: 's', version: 1 }, { ...rec('s', 1, 1, '"int"'), deleted: true })
    assert.deepEqual(state.versions('s'), [])
    assert.equal(state.nextVersion('s'), 2)
    assert.deepEqual(state.listSubjects(), [])
    assert.deepEqual(state.listSubjects(true), ['s'])
    state.apply({ keytype: 'SCHEMA', subject: 's', version: 1 }, null)
    assert.equal(state.hasSubject('s'), false)
  })
})

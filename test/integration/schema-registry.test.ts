import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry'
import type { Kafka } from 'kafkajs'
import { createRegistryRuntime, type RegistryRuntime } from '../../services/registry/runtime.ts'
import { testKafka, testLogger, unique, waitFor } from '../helpers/stack.ts'

const refundV1 = {
  type: 'record',
  name: 'Refund',
  namespace: 'dev.agentledger.test',
  fields: [
    { name: 'ticket', type: 'string' },
    { name: 'amount_cents', type: 'long' },
  ],
}
const refundV2 = { ...refundV1, fields: [...refundV1.fields, { name: 'currency', type: 'string', default: 'USD' }] }
const refundIncompatible = { ...refundV1, fields: [...refundV1.fields, { name: 'reason', type: 'string' }] }

describe('schema registry on a compacted Kafka topic', () => {
  let kafka: Kafka
  let topic: string
  let runtime: RegistryRuntime
  let url: string

  async function startRegistry(): Promise<void> {
    runtime = await createRegistryRuntime({ kafka, topic, logger: testLogger })
    url = await runtime.listen('127.0.0.1', 0)
  }

  before(async () => {
    kafka = testKafka('registry-test')
    topic = unique('_schemas-test')
    await startRegistry()
  })
  after(async () => {
    await runtime.stop()
  })

  const client = () => new SchemaRegistry({ host: url, retry: { retries: 0 } })

  test('@kafkajs/confluent-schema-registry registers, encodes and decodes unmodified', async () => {
    const registry = client()
    const subject = unique('refund-value')
    const { id } = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(refundV1) }, { subject })
    assert.ok(id > 0)
    const encoded = await registry.encode(id, { ticket: 'T-1', amount_cents: 4200 })
    assert.equal(encoded[0], 0, 'magic byte')
    assert.equal(encoded.readInt32BE(1), id, 'schema id in the wire format')
    assert.deepEqual({ ...(await client().decode(encoded)) }, { ticket: 'T-1', amount_cents: 4200 })
    assert.equal(await registry.getLatestSchemaId(subject), id)
  })

  test('registering the identical schema again returns the same id and no new version', async () => {
    const registry = client()
    const subject = unique('same')
    const a = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(refundV1) }, { subject })
    const b = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(refundV1, null, 2) }, { subject })
    assert.equal(a.id, b.id)
    const versions = await fetch(`${url}/subjects/${subject}/versions`).then((r) => r.json())
    assert.deepEqual(versions, [1])
  })

  test('a compatible change becomes version 2; an incompatible one is rejected with 409', async () => {
    const registry = client()
    const subject = unique('evolve')
    const v1 = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(refundV1) }, { subject })
    const v2 = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(refundV2) }, { subject })
    assert.notEqual(v1.id, v2.id)
    await assert.rejects(
      registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(refundIncompatible) }, { subject }),
      (err: Error & { status?: number }) => {
        assert.equal(err.status, 409)
        assert.match(err.message, /incompatible/i)
        return true
      },
    )
    const raw = await fetch(`${url}/subjects/${subject}/versions`, {
      method: 'POST',
      headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
      body: JSON.stringify({ schema: JSON.stringify(refundIncompatible) }),
    })
    assert.equal(raw.status, 409)
    const body = (await raw.json()) as { error_code: number; message: string }
    assert.equal(body.error_code, 409)
    assert.match(body.message, /default-less|reason/)
  })

  test('compatibility levels: NONE accepts what BACKWARD refuses; FORWARD_TRANSITIVE checks every version', async () => {
    const subject = unique('levels')
    const post = (path: string, body: unknown, method = 'POST') =>
      fetch(`${url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    assert.equal((await post(`/subjects/${subject}/versions`, { schema: JSON.stringify(refundV1) })).status, 200)
    const check = await post(`/compatibility/subjects/${subject}/versions/latest?verbose=true`, { schema: JSON.stringify(refundIncompatible) })
    assert.deepEqual(((await check.json()) as { is_compatible: boolean }).is_compatible, false)
    assert.equal((await post(`/config/${subject}`, { compatibility: 'NONE' }, 'PUT')).status, 200)
    assert.equal((await post(`/subjects/${subject}/versions`, { schema: JSON.stringify(refundIncompatible) })).status, 200)
    assert.deepEqual(await fetch(`${url}/config/${subject}`).then((r) => r.json()), { compatibilityLevel: 'NONE' })
    assert.equal((await post(`/config/${subject}`, { compatibility: 'FORWARD_TRANSITIVE' }, 'PUT')).status, 200)
    // Dropping `ticket`: every earlier version requires it and has no default, so none can read the new data.
    const dropTicket = { ...refundV1, fields: [{ name: 'amount_cents', type: 'long' }] }
    assert.equal((await post(`/subjects/${subject}/versions`, { schema: JSON.stringify(dropTicket) })).status, 409)
  })

  test('bad input gets Confluent error codes and never a 5xx', async () => {
    const subject = unique('bad')
    await fetch(`${url}/subjects/${subject}/versions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ schema: JSON.stringify(refundV1) }),
    })
    const cases: { name: string; method: string; path: string; body?: string; contentType?: string; status: number; code: number; message?: RegExp }[] = [
      { name: 'invalid Avro type name', method: 'POST', path: `/subjects/${subject}/versions`, body: JSON.stringify({ schema: '{"type":"record","name":"X","fields":[{"name":"a","type":"strin"}]}' }), status: 422, code: 42201, message: /undefined type name: strin/ },
      { name: 'schema is not JSON', method: 'POST', path: `/subjects/${subject}/versions`, body: JSON.stringify({ schema: '{not json' }), status: 422, code: 42201, message: /not JSON/ },
      { name: 'no schema field', method: 'POST', path: `/subjects/${subject}/versions`, body: JSON.stringify({ schemma: 'x' }), status: 422, code: 42201, message: /"schema"/ },
      { name: 'record without fields', method: 'POST', path: `/subjects/${subject}/versions`, body: JSON.stringify({ schema: '{"type":"record","name":"X"}' }), status: 422, code: 42201 },
      { name: 'unsupported schema type', method: 'POST', path: `/subjects/${subject}/versions`, body: JSON.stringify({ schema: '{}', schemaType: 'PROTOBUF' }), status: 422, code: 42201, message: /PROTOBUF/ },
      { name: 'body is not JSON', method: 'POST', path: `/subjects/${subject}/versions`, body: '{oops', status: 400, code: 400 },
      { name: 'body is an array', method: 'POST', path: `/subjects/${subject}/versions`, body: '[]', status: 422, code: 42201 },
      { name: 'unknown subject', method: 'GET', path: `/subjects/${unique('nope')}/versions`, status: 404, code: 40401 },
      { name: 'unknown subject, version', method: 'GET', path: `/subjects/${unique('nope')}/versions/1`, status: 404, code: 40401 },
      { name: 'unknown version', method: 'GET', path: `/subjects/${subject}/versions/99`, status: 404, code: 40402 },
      { name: 'invalid version', method: 'GET', path: `/subjects/${subject}/versions/abc`, status: 422, code: 42202 },
      { name: 'version zero', method: 'GET', path: `/subjects/${subject}/versions/0`, status: 422, code: 42202 },
      { name: 'unknown id', method: 'GET', path: `/schemas/ids/987654`, status: 404, code: 40403 },
      { name: 'non-numeric id', method: 'GET', path: `/schemas/ids/abc`, status: 404, code: 40403 },
      { name: 'lookup of an unregistered schema', method: 'POST', path: `/subjects/${subject}`, body: JSON.stringify({ schema: JSON.stringify(refundV2) }), status: 404, code: 40403 },
      { name: 'lookup under an unknown subject', method: 'POST', path: `/subjects/${unique('nope')}`, body: JSON.stringify({ schema: JSON.stringify(refundV1) }), status: 404, code: 40401 },
      { name: 'invalid compatibility level', method: 'PUT', path: `/config/${subject}`, body: JSON.stringify({ compatibility: 'SIDEWAYS' }), status: 422, code: 42203 },
      { name: 'subject config not set', method: 'GET', path: `/config/${subject}`, status: 404, code: 40408 },
      { name: 'permanent delete before soft delete', method: 'DELETE', path: `/subjects/${subject}?permanent=true`, status: 404, code: 40405 },
      { name: 'delete unknown subject', method: 'DELETE', path: `/subjects/${unique('nope')}`, status: 404, code: 40401 },
      { name: 'unknown route', method: 'GET', path: `/nothing/here`, status: 404, code: 404 },
      { name: 'wrong media type', method: 'POST', path: `/subjects/${subject}/versions`, body: 'schema', contentType: 'text/plain', status: 415, code: 415 },
    ]
    for (const c of cases) {
      const res = await fetch(`${url}${c.path}`, {
        method: c.method,
        headers: c.body === undefined ? {} : { 'content-type': c.contentType ?? 'application/vnd.schemaregistry.v1+json' },
        body: c.body,
      })
      const body = (await res.json()) as { error_code: number; message: string }
      assert.equal(res.status, c.status, `${c.name}: status (${body.message})`)
      assert.equal(body.error_code, c.code, `${c.name}: error_code`)
      assert.equal(typeof body.message, 'string', `${c.name}: message`)
      if (c.message) assert.match(body.message, c.message, c.name)
    }
  })

  test('soft then permanent delete of a version and a subject', async () => {
    const subject = unique('del')
    const registry = client()
    await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(refundV1) }, { subject })
    await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(refundV2) }, { subject })
    const del = (path: string) => fetch(`${url}${path}`, { method: 'DELETE' }).then(async (r) => ({ status: r.status, body: await r.json() }))
    assert.deepEqual(await del(`/subjects/${subject}/versions/2`), { status: 200, body: 2 })
    assert.deepEqual(await fetch(`${url}/subjects/${subject}/versions`).then((r) => r.json()), [1])
    assert.deepEqual(await del(`/subjects/${subject}/versions/2?permanent=true`), { status: 200, body: 2 })
    assert.deepEqual(await del(`/subjects/${subject}`), { status: 200, body: [1] })
    assert.equal((await fetch(`${url}/subjects/${subject}/versions`)).status, 404)
    assert.ok(!((await fetch(`${url}/subjects`).then((r) => r.json())) as string[]).includes(subject))
    assert.deepEqual(await del(`/subjects/${subject}?permanent=true`), { status: 200, body: [1] })
  })

  test('state survives a restart, and two instances agree on ids', async () => {
    const subject = unique('durable')
    const { id } = await client().register({ type: SchemaType.AVRO, schema: JSON.stringify(refundV1) }, { subject })
    await runtime.stop()
    await startRegistry()
    const again = await fetch(`${url}/subjects/${subject}/versions/latest`).then((r) => r.json())
    assert.deepEqual(again, { subject, version: 1, id, schema: JSON.stringify(refundV1) })

    const second = await createRegistryRuntime({ kafka, topic, logger: testLogger })
    const secondUrl = await second.listen('127.0.0.1', 0)
    try {
      // Concurrent registrations of different schemas on both instances: the log orders them,
      // and both instances end with the same subject → version → id mapping.
      const subjectB = unique('race')
      const schemas = Array.from({ length: 6 }, (_, i) => ({ ...refundV1, fields: [...refundV1.fields, { name: `f${i}`, type: 'int', default: i }] }))
      await Promise.all(
        schemas.map((s, i) =>
          fetch(`${i % 2 === 0 ? url : secondUrl}/subjects/${subjectB}/versions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ schema: JSON.stringify(s), schemaType: 'AVRO' }),
          }).then((r) => assert.equal(r.status, 200)),
        ),
      )
      const view = async (base: string) => {
        const versions = (await fetch(`${base}/subjects/${subjectB}/versions`).then((r) => r.json())) as number[]
        return Promise.all(versions.map((v) => fetch(`${base}/subjects/${subjectB}/versions/${v}`).then((r) => r.json())))
      }
      // Reads are served from each instance's copy of the log: they agree once both caught up.
      const a = await waitFor(async () => ((await view(url)).length === 6 ? view(url) : undefined), 10_000, 'six versions on the first instance')
      const b = await waitFor(async () => ((await view(secondUrl)).length === 6 ? view(secondUrl) : undefined), 10_000, 'six versions on the second')
      assert.equal(a.length, 6)
      assert.deepEqual(a, b)
      assert.equal(new Set(a.map((r) => (r as { id: number }).id)).size, 6)
    } finally {
      await second.stop()
    }
  })
})

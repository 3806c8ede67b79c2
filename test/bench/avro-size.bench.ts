import { eventSchemas } from '../../schemas/event-schemas.ts'
import { toAvroRecord } from '../../schemas/json-form.ts'
import { validateEvent } from '../../services/gateway/event-validation.ts'
import { sampleEvents } from '../helpers/sample-events.ts'
import { printTable } from './bench-stack.ts'

/**
 * Bytes per event: Avro in the registry wire format (5-byte header included) beside the same
 * event as JSON (with the tenant and received_at the gateway adds). `npm run bench:avro-size`.
 */
const rows: Record<string, string | number>[] = []
let avroTotal = 0
let jsonTotal = 0
for (const [i, sample] of sampleEvents().entries()) {
  const result = validateEvent(sample, i)
  if (!result.ok) throw new Error(JSON.stringify(result.problems))
  const schema = eventSchemas().get(result.eventType)!
  const avroBytes = 5 + schema.type.toBuffer(toAvroRecord(schema, result.value, 'acme', Date.now())).length
  const jsonBytes = Buffer.byteLength(JSON.stringify({ ...sample, tenant: 'acme', received_at: new Date().toISOString() }))
  avroTotal += avroBytes
  jsonTotal += jsonBytes
  rows.push({ event: String(sample.type), 'avro bytes': avroBytes, 'json bytes (baseline)': jsonBytes, ratio: (avroBytes / jsonBytes).toFixed(2) })
}
rows.push({ event: 'all', 'avro bytes': avroTotal, 'json bytes (baseline)': jsonTotal, ratio: (avroTotal / jsonTotal).toFixed(3) })
printTable('Avro (registry wire format) vs JSON, one sample of every event type', rows)

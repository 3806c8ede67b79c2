import type { SinkSource } from '../lineage/lineage-sink.ts'
import { UnmappableRecordError } from '../lineage/domain/event-rows.ts'
import { canonicalJson } from '../../services/shared/canonical-json.ts'

/**
 * The notary's topics as lineage-sink sources (registered through the sink host's
 * `extraSources`), so chains and digests reach ClickHouse exactly once like every other record:
 * links → notary_chain; digests → notary_digests and one notary_digest_heads row per head;
 * key announcements → notary_keys. A record that is not what the notary writes is a poison
 * record (dead-lettered by the sink).
 */
type Json = Record<string, unknown>

const need = (o: Json, field: string, type: 'string' | 'number'): unknown => {
  const v = o[field]
  if (typeof v !== type || (type === 'string' && v === '')) throw new UnmappableRecordError(`${field}: missing or not a ${type}`)
  return v
}

function parse(value: Buffer | null): Json | undefined {
  if (value === null) return undefined
  try {
    const v = JSON.parse(value.toString('utf8')) as unknown
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object')
    return v as Json
  } catch (err) {
    throw new UnmappableRecordError(`not a JSON object: ${(err as Error).message}`)
  }
}

export function notarySinkSources(topics: { chain: string; digests: string }): SinkSource[] {
  return [
    {
      topic: topics.chain,
      async toRows(message, position) {
        const link = parse(message.value)
        if (link === undefined) return []
        const source = (link.source ?? {}) as Json
        const event = link.event
        if (typeof event !== 'object' || event === null) throw new UnmappableRecordError('event: missing')
        return [
          {
            table: 'notary_chain',
            row: {
              tenant: need(link, 'tenant', 'string'),
              run_id: need(link, 'run_id', 'string'),
              seq: need(link, 'seq', 'number'),
              event_id: need(link, 'event_id', 'string'),
              event_type: need(link, 'event_type', 'string'),
              event_hash: need(link, 'event_hash', 'string'),
              prev: need(link, 'prev', 'string'),
              chain_hash: need(link, 'chain_hash', 'string'),
              source_partition: typeof source.partition === 'number' ? source.partition : 0,
              source_offset: typeof source.offset === 'string' ? source.offset : '0',
              payload: canonicalJson(event),
              kafka_partition: position.partition,
              kafka_offset: position.offset,
            },
          },
        ]
      },
    },
    {
      topic: topics.digests,
      async toRows(message, position) {
        const record = parse(message.value)
        if (record === undefined) return []
        if (record.kind === 'agent-ledger/notary-key') {
          return [{ table: 'notary_keys', row: { fingerprint: need(record, 'fingerprint', 'string'), algorithm: need(record, 'algorithm', 'string'), public_key_pem: need(record, 'public_key_pem', 'string'), announced_at: need(record, 'announced_at', 'number') } }]
        }
        const body = (record.body ?? {}) as Json
        const heads = record.heads
        if (!Array.isArray(heads)) throw new UnmappableRecordError('heads: missing')
        const tenant = need(body, 'tenant', 'string')
        const seq = need(body, 'seq', 'number')
        return [
          {
            table: 'notary_digests',
            row: {
              tenant,
              seq,
              issued_at: need(body, 'issued_at', 'number'),
              key_fingerprint: need(body, 'key_fingerprint', 'string'),
              previous_signature: typeof body.previous_signature === 'string' ? body.previous_signature : '',
              heads_root: need(body, 'heads_root', 'string'),
              heads_count: need(body, 'heads_count', 'number'),
              signature: need(record, 'signature', 'string'),
              body: canonicalJson(body),
              heads: canonicalJson(heads),
              kafka_partition: position.partition,
              kafka_offset: position.offset,
            },
          },
          ...heads.map((h: Json) => ({ table: 'notary_digest_heads', row: { tenant, run_id: need(h, 'run_id', 'string'), digest_seq: seq, seq: need(h, 'seq', 'number'), head: need(h, 'head', 'string') } })),
        ]
      },
    },
  ]
}

import { createRequire } from 'node:module'
import path from 'node:path'

/**
 * kafkajs 2.2.4 lets read_committed consumers see records of aborted transactions. Its filter
 * (`consumer/filterAbortedMessages.js`) expects the fetch response's aborted transactions sorted
 * by first offset and starts at most one of them per record, but the broker lists them in the
 * order they were aborted (its transaction index is appended at each abort marker). So when
 * transactions of several producers are aborted in another order than they began — what happens
 * when a process running three transactional processors is killed and its successor fences them
 * one after another — records of the earlier-begun transaction reach the application. kafkajs is
 * unmaintained; this does the filtering the way the Java consumer does (CompletedFetch: aborted
 * transactions ordered by first offset, all that began at or before a record are open, an abort
 * marker closes its producer's) on every decoded fetch response, before kafkajs' own filter runs.
 * An aborted record is kept but flagged as a control record: kafkajs then hides it from the
 * application yet still counts its offset, so the consumer moves past it.
 */
interface DecodedRecord {
  offset: string
  key: Buffer | null
  isControlRecord: boolean
  batchContext?: { producerId: string; inTransaction: boolean; isControlBatch: boolean }
}
interface DecodedPartition {
  abortedTransactions?: { producerId: string; firstOffset: string }[]
  messages: DecodedRecord[]
}
interface DecodedFetch {
  responses: { partitions: DecodedPartition[] }[]
}

/** Control record key of an abort marker: version 0, type 0 (commit is type 1). */
const isAbortMarker = (r: DecodedRecord) => r.isControlRecord && r.key !== null && r.key.length >= 4 && r.key.readInt16BE(2) === 0

/** Flags the records of aborted transactions in one partition's records; returns how many. */
export function flagAbortedRecords(partition: DecodedPartition): number {
  const aborted = [...(partition.abortedTransactions ?? [])].sort((a, b) => (BigInt(a.firstOffset) < BigInt(b.firstOffset) ? -1 : BigInt(a.firstOffset) > BigInt(b.firstOffset) ? 1 : 0))
  if (aborted.length === 0) return 0
  const open = new Set<string>()
  let flagged = 0
  for (const record of partition.messages) {
    const ctx = record.batchContext
    if (ctx === undefined) continue
    while (aborted.length > 0 && BigInt(aborted[0]!.firstOffset) <= BigInt(record.offset)) open.add(aborted.shift()!.producerId)
    if (ctx.isControlBatch) {
      if (isAbortMarker(record)) open.delete(ctx.producerId)
    } else if (ctx.inTransaction && open.has(ctx.producerId)) {
      record.isControlRecord = true
      flagged += 1
    }
  }
  // Done here; kafkajs' own filter would only repeat it, wrongly.
  partition.abortedTransactions = []
  return flagged
}

const PATCHED = Symbol.for('agent-ledger.kafkajs-read-committed')

/** Wraps the decoders of every fetch response version that carries aborted transactions (v4–v11). Idempotent. */
export function installReadCommittedFix(): void {
  const require = createRequire(import.meta.url)
  const fetchDir = path.join(path.dirname(require.resolve('kafkajs')), 'src', 'protocol', 'requests', 'fetch')
  for (let v = 4; v <= 11; v++) {
    const response = require(path.join(fetchDir, `v${v}`, 'response.js')) as { decode(raw: Buffer): Promise<DecodedFetch>; [PATCHED]?: true }
    if (response[PATCHED]) continue
    const decode = response.decode
    response.decode = async (raw: Buffer) => {
      const data = await decode(raw)
      for (const topic of data.responses) for (const partition of topic.partitions) flagAbortedRecords(partition)
      return data
    }
    response[PATCHED] = true
  }
}

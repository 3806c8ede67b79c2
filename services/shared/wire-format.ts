/**
 * The schema registry's wire format: magic byte 0, the 4-byte big-endian schema id, then the Avro
 * binary body. Shared by the event and control codecs.
 */
export function toWireFormat(schemaId: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length)
  out[0] = 0
  out.writeInt32BE(schemaId, 1)
  body.copy(out, 5)
  return out
}

/** The schema id and the Avro body of a wire-format record; throws on anything else. */
export function fromWireFormat(buffer: Buffer): { schemaId: number; body: Buffer } {
  if (buffer.length < 5 || buffer[0] !== 0) throw new Error('not in the registry wire format (magic byte 0 and a schema id)')
  return { schemaId: buffer.readInt32BE(1), body: buffer.subarray(5) }
}

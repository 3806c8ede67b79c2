/**
 * RFC 8785 JSON Canonicalization Scheme (JCS): object members sorted by their names' UTF-16 code
 * units, no whitespace, strings escaped as ECMAScript's JSON.stringify does, and numbers in
 * ECMAScript's shortest round-trip form. Two parties that parse the same JSON get the same bytes,
 * so a hash over them can be checked by anyone. Used for stored event payloads, hash chains and
 * report exports.
 *
 * Throws `TypeError` for what JSON cannot carry faithfully: non-finite numbers, bigints,
 * functions, symbols and `undefined` inside arrays. `undefined` object members are left out,
 * as JSON.stringify does.
 */
export function canonicalJson(value: unknown): string {
  return write(value)
}

function write(value: unknown): string {
  if (value === null) return 'null'
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false'
    case 'string':
      return JSON.stringify(value)
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonical JSON cannot carry the number ${value}`)
      // ECMAScript's Number-to-string is exactly RFC 8785's number form (and -0 becomes 0).
      return JSON.stringify(value)
    case 'object': {
      if (Array.isArray(value)) {
        let out = '['
        for (let i = 0; i < value.length; i++) {
          if (value[i] === undefined) throw new TypeError(`canonical JSON cannot carry undefined (array index ${i})`)
          out += (i > 0 ? ',' : '') + write(value[i])
        }
        return out + ']'
      }
      if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return write((value as { toJSON: () => unknown }).toJSON())
      const record = value as Record<string, unknown>
      let out = '{'
      let first = true
      for (const k of sortedKeys(record)) {
        const v = record[k]
        if (v === undefined) continue
        out += (first ? '' : ',') + JSON.stringify(k) + ':' + write(v)
        first = false
      }
      return out + '}'
    }
    default:
      throw new TypeError(`canonical JSON cannot carry a ${typeof value}`)
  }
}

/**
 * An object's keys sorted by UTF-16 code units (the default sort). Events of one type have the same
 * keys, so the sorted order is cached by a cheap signature of the key list and reused only after
 * checking the cached list has exactly this object's keys: a signature collision costs a sort,
 * never a wrong order.
 */
const sortedByShape = new Map<string, string[]>()
function sortedKeys(record: Record<string, unknown>): string[] {
  const keys = Object.keys(record)
  const n = keys.length
  if (n < 2) return keys
  const signature = `${n}\u0000${keys[0]}\u0000${keys[n >> 1]}\u0000${keys[n - 1]}`
  const cached = sortedByShape.get(signature)
  if (cached !== undefined && cached.length === n && cached.every((k) => Object.hasOwn(record, k))) return cached
  keys.sort()
  if (sortedByShape.size < 10_000) sortedByShape.set(signature, keys)
  return keys
}

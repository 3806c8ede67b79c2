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
  const out: string[] = []
  write(value, out)
  return out.join('')
}

function write(value: unknown, out: string[]): void {
  if (value === null) {
    out.push('null')
    return
  }
  switch (typeof value) {
    case 'boolean':
      out.push(value ? 'true' : 'false')
      return
    case 'string':
      out.push(JSON.stringify(value))
      return
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonical JSON cannot carry the number ${value}`)
      // ECMAScript's Number-to-string is exactly RFC 8785's number form (and -0 becomes 0).
      out.push(JSON.stringify(value))
      return
    case 'object': {
      if (Array.isArray(value)) {
        out.push('[')
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out.push(',')
          if (value[i] === undefined) throw new TypeError(`canonical JSON cannot carry undefined (array index ${i})`)
          write(value[i], out)
        }
        out.push(']')
        return
      }
      if (typeof (value as { toJSON?: unknown }).toJSON === 'function') {
        write((value as { toJSON: () => unknown }).toJSON(), out)
        return
      }
      // Default sort compares UTF-16 code units, which is what RFC 8785 asks for.
      const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined).sort()
      out.push('{')
      keys.forEach((k, i) => {
        if (i > 0) out.push(',')
        out.push(JSON.stringify(k), ':')
        write((value as Record<string, unknown>)[k], out)
      })
      out.push('}')
      return
    }
    default:
      throw new TypeError(`canonical JSON cannot carry a ${typeof value}`)
  }
}

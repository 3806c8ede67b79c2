import { createHmac } from 'node:crypto'

/**
 * PII and secret redaction, applied at the gateway before an event leaves it. Each finding is
 * replaced by `[REDACTED:<kind>:<keyed hash>]`: an HMAC-SHA256 under the deployment's redaction
 * key, so equal values still join across events and runs, and nobody without the key can test a
 * guess against the hash. Pure: no I/O.
 */
export type FindingKind = 'secret' | 'email' | 'card' | 'national_id' | 'phone'

interface Detector {
  kind: FindingKind
  pattern: RegExp
  /** Extra check on a match (Luhn for cards, plausible ranges for SSNs). */
  accept?: (match: string) => boolean
}

const DETECTORS: Detector[] = [
  // Secrets first, so a key that contains digits is not half-taken by the card or phone rules.
  { kind: 'secret', pattern: /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g },
  { kind: 'secret', pattern: /\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}\b/g },
  { kind: 'secret', pattern: /\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}/g },
  { kind: 'secret', pattern: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g },
  { kind: 'secret', pattern: /\bgh[pousr]_[A-Za-z0-9]{30,}\b/g },
  { kind: 'secret', pattern: /\bxox[abprs]-[A-Za-z0-9-]{10,}/g },
  { kind: 'secret', pattern: /\bAIza[0-9A-Za-z_-]{35}\b/g },
  { kind: 'secret', pattern: /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g },
  { kind: 'secret', pattern: /\bBearer\s+[A-Za-z0-9._~+/-]{16,}=*/g },
  { kind: 'secret', pattern: /\b(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token)\b["']?\s*[:=]\s*["']?[^\s"',;]{6,}/gi },
  { kind: 'email', pattern: /\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b/g },
  { kind: 'card', pattern: /\b\d(?:[ -]?\d){12,18}\b/g, accept: luhn },
  { kind: 'national_id', pattern: /\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b/g },
  { kind: 'national_id', pattern: /\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b/g },
  {
    kind: 'phone',
    pattern: /(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])\d{3,4}[\s.-]\d{3,4}\b|\+\d{8,15}\b/g,
    accept: (m) => {
      const digits = m.replace(/\D/g, '').length
      return digits >= 8 && digits <= 15
    },
  },
]

export function luhn(candidate: string): boolean {
  const digits = candidate.replace(/\D/g, '')
  if (digits.length < 13 || digits.length > 19) return false
  let sum = 0
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48
    if (i % 2 === 1) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
  }
  return sum % 10 === 0
}

export type Findings = Partial<Record<FindingKind, number>>

export interface Redactor {
  /** Redacts free text; adds what it found to `findings`. */
  text(value: string, findings?: Findings): string
  /** Redacts every string value (and key) inside a JSON document; returns JSON. */
  json(document: string, findings?: Findings): string
}

/**
 * All detectors in one alternation, so a string is scanned once rather than once per detector.
 * At any position the first alternative wins, which keeps secrets ahead of cards and phones.
 * Case-insensitive detectors get a pass of their own.
 */
function combine(detectors: Detector[], flags: string): { regex: RegExp; detectors: Detector[] } {
  return { regex: new RegExp(detectors.map((d) => `(${d.pattern.source})`).join('|'), flags), detectors }
}
const PASSES = [
  combine(DETECTORS.filter((d) => !d.pattern.ignoreCase), 'g'),
  combine(DETECTORS.filter((d) => d.pattern.ignoreCase), 'gi'),
]
/** Strings this short, or with neither a digit nor an "@" nor a likely secret prefix, cannot hold a finding. */
const MIN_LENGTH = 6
const PREFILTER = /[@\d]|sk|pk|rk|AKIA|ASIA|gh[pousr]_|xox|AIza|eyJ|Bearer|pass|pwd|secret|key|token|BEGIN/i

export function createRedactor(key: Buffer): Redactor {
  if (key.length < 16) throw new Error('the redaction key must be at least 16 bytes')
  const tag = (kind: FindingKind, value: string): string => {
    const normalized = kind === 'email' ? value.toLowerCase() : kind === 'secret' ? value : value.replace(/[\s().-]/g, '')
    return `[REDACTED:${kind}:${createHmac('sha256', key).update(`${kind}:${normalized}`).digest('hex').slice(0, 16)}]`
  }
  const text = (value: string, findings?: Findings): string => {
    if (value.length < MIN_LENGTH || !PREFILTER.test(value)) return value
    let out = value
    for (const pass of PASSES) {
      out = out.replace(pass.regex, (match: string, ...groups: unknown[]) => {
        const which = groups.findIndex((g, i) => i < pass.detectors.length && g !== undefined)
        const d = pass.detectors[which]
        if (d === undefined || (d.accept && !d.accept(match))) return match
        if (findings) findings[d.kind] = (findings[d.kind] ?? 0) + 1
        return tag(d.kind, match)
      })
    }
    return out
  }
  const walk = (v: unknown, findings?: Findings): unknown => {
    if (typeof v === 'string') return text(v, findings)
    if (Array.isArray(v)) return v.map((x) => walk(x, findings))
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [text(k, findings), walk(x, findings)]))
    }
    // Numbers can be card numbers or phone numbers too.
    if (typeof v === 'number' && Number.isInteger(v) && Math.abs(v) >= 1e7) {
      const s = String(v)
      const r = text(s, findings)
      return r === s ? v : r
    }
    return v
  }
  return {
    text,
    json(document, findings) {
      return JSON.stringify(walk(JSON.parse(document), findings))
    },
  }
}

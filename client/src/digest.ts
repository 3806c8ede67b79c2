import { createHash } from 'node:crypto'

/** JSON with object keys sorted at every level: the same value always gives the same bytes. */
export function canonicalJson(value: unknown): string {
  if (value === undefined) return 'null'
  if (value === null || typeof value !== 'object') return JSON.stringify(value)
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
}

export function sha256(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`
}

/**
 * The digest of one exact action: the tool and its arguments. A tool call's argument_digest,
 * a policy decision's and an approval's action_digest are all this value, which is what binds an
 * approval to the action it approves.
 */
export function actionDigest(tool: string, args: unknown): string {
  return sha256(canonicalJson({ tool, arguments: args }))
}

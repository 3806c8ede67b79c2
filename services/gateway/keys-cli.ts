import path from 'node:path'
import { parseArgs } from 'node:util'
import { resolveDataDir } from '../../infra/paths.ts'
import { addKey, revokeKey, ROLES, type Role } from './api-keys.ts'

/**
 * `npm run keys -- create --tenant acme --role emit [--note "..."]` prints a new key once and
 * stores only its hash; `npm run keys -- revoke --id key_...`. The file is LEDGER_API_KEYS_FILE
 * or LEDGER_DATA_DIR/api-keys.json; a running gateway reads it at start.
 */
const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { tenant: { type: 'string' }, role: { type: 'string' }, note: { type: 'string' }, id: { type: 'string' } },
})
const file = process.env.LEDGER_API_KEYS_FILE || path.join(resolveDataDir(process.env.LEDGER_DATA_DIR || '.data'), 'api-keys.json')
const usage = 'usage: npm run keys -- create --tenant <tenant> --role <emit|read|audit|admin> [--note text] | revoke --id <key id>'
const command = positionals[0]
if (command === 'create') {
  if (!values.tenant || !/^[a-z0-9][a-z0-9_-]{0,63}$/.test(values.tenant)) {
    console.error(`--tenant: lowercase letters, digits, "_" and "-" (max 64)\n${usage}`)
    process.exit(2)
  }
  if (!values.role || !(ROLES as readonly string[]).includes(values.role)) {
    console.error(`--role: one of ${ROLES.join(', ')}\n${usage}`)
    process.exit(2)
  }
  const { key, id } = addKey(file, values.tenant, values.role as Role, values.note)
  console.log(`created ${id} (${values.role} for tenant ${values.tenant}) in ${file}\n${key}\nThis key is shown once; only its hash is stored.`)
} else if (command === 'revoke') {
  if (!values.id) {
    console.error(`--id is required\n${usage}`)
    process.exit(2)
  }
  if (!revokeKey(file, values.id)) {
    console.error(`no key ${values.id} in ${file}`)
    process.exit(1)
  }
  console.log(`revoked ${values.id}; restart the gateway to apply`)
} else {
  console.error(usage)
  process.exit(2)
}

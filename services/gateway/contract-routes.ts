import { createHash } from 'node:crypto'
import type { FastifyPluginAsync } from 'fastify'
import type { Producer } from 'kafkajs'
import { ContractError, parseAgentContract } from '../../stream-processors/contracts/agent-contract.ts'
import { LedgerError } from '../shared/errors.ts'
import type { ApiKeyStore } from './api-keys.ts'
import { requireRole } from './auth.ts'

export interface ContractDeps {
  keys: ApiKeyStore
  producer: Producer
  topic: string
}

/**
 * `POST /v1/contracts`: an admin publishes an agent contract (YAML body). It is validated, and
 * stored on the compacted contracts topic keyed `<tenant>/<agent>@<version>`, where the version is
 * `agent.version` or, without one, a digest of the text, so a changed contract is a new version.
 */
export const contractRoutes: FastifyPluginAsync<ContractDeps> = async (app, deps) => {
  app.addContentTypeParser(['application/yaml', 'application/x-yaml', 'text/yaml'], { parseAs: 'string' }, (_req, body, done) => done(null, body))

  app.post('/v1/contracts', { preHandler: requireRole(deps.keys, ['admin']) }, async (req, reply) => {
    const principal = req.principal!
    if (typeof req.body !== 'string' || req.body.trim() === '') {
      throw new LedgerError('LEDGER_ERR_CONTRACT_INVALID', 'body: send the contract as YAML with content-type application/yaml')
    }
    const text = req.body
    let contract
    try {
      contract = parseAgentContract(text)
    } catch (err) {
      if (err instanceof ContractError) throw new LedgerError('LEDGER_ERR_CONTRACT_INVALID', err.message, { context: { problems: err.problems } })
      throw err
    }
    const version = contract.version ?? `sha256:${createHash('sha256').update(text).digest('hex').slice(0, 12)}`
    const key = `${principal.tenant}/${contract.name}@${version}`
    const record = { tenant: principal.tenant, name: contract.name, version, contract, yaml: text, published_at: new Date().toISOString(), published_by: principal.keyId }
    await deps.producer.send({ topic: deps.topic, acks: -1, messages: [{ key, value: JSON.stringify(record) }] }).catch((err: unknown) => {
      throw new LedgerError('LEDGER_ERR_KAFKA_UNAVAILABLE', `Kafka: ${(err as Error).message}`, { cause: err })
    })
    return reply.status(201).send({ tenant: principal.tenant, name: contract.name, version, key })
  })
}

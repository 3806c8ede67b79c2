import type { FastifyPluginAsync } from 'fastify'
import { sendError } from '../shared/http.ts'
import { contractRoutes, type ContractDeps } from './contract-routes.ts'
import { ingestRoutes, type IngestDeps } from './ingest-routes.ts'
import { gatewayOpenApi } from './openapi.ts'

/** The ingest gateway's routes with their error handling, as one encapsulated plugin. */
export const gatewayPlugin: FastifyPluginAsync<IngestDeps & { contracts: ContractDeps }> = async (app, deps) => {
  app.setErrorHandler((err, req, reply) => sendError(reply, err, req))
  await app.register(ingestRoutes, deps)
  await app.register(contractRoutes, deps.contracts)
  const spec = gatewayOpenApi()
  app.get('/v1/openapi.json', async () => spec)
}

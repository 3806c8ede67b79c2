import type { FastifyPluginAsync } from 'fastify'
import { sendError } from '../shared/http.ts'
import { contractRoutes } from './contract-routes.ts'
import { controlRoutes } from './control-routes.ts'
import { ingestRoutes } from './ingest-routes.ts'
import type { GatewayDeps } from './runtime.ts'
import { gatewayOpenApi } from './openapi.ts'

/** The ingest gateway's routes with their error handling, as one encapsulated plugin. */
export const gatewayPlugin: FastifyPluginAsync<GatewayDeps & { openApiPaths?: Parameters<typeof gatewayOpenApi>[0] }> = async (app, deps) => {
  app.setErrorHandler((err, req, reply) => sendError(reply, err, req))
  await app.register(ingestRoutes, deps)
  await app.register(contractRoutes, deps.contracts)
  await app.register(controlRoutes, deps.control)
  // One document for everything the HTTP port serves: other services add their paths.
  const spec = gatewayOpenApi(deps.openApiPaths)
  app.get('/v1/openapi.json', async () => spec)
}

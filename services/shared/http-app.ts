import Fastify, { type FastifyInstance } from 'fastify'
import { LedgerError } from './errors.ts'
import { sendError } from './http.ts'

export interface HttpAppOptions {
  bodyLimitBytes: number
}

/**
 * The fastify instance our HTTP services share: JSON only (other media types are 415), a body
 * limit (413), errors as `{error: {code, message}}`, and a 404 that names the route.
 */
export function createHttpApp(options: HttpAppOptions): FastifyInstance {
  // maxParamLength: long path parameters reach the routes, which name the bad field (not a bare 414).
  const app = Fastify({ logger: false, bodyLimit: options.bodyLimitBytes, return503OnClosing: true, routerOptions: { maxParamLength: 1_000 } })
  app.removeContentTypeParser('text/plain')
  app.setErrorHandler((err, req, reply) => sendError(reply, err, req))
  app.setNotFoundHandler((req, reply) => sendError(reply, new LedgerError('LEDGER_ERR_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`), req))
  return app
}

/**
 * Stops accepting, lets in-flight requests finish for up to `graceMs`, then closes whatever
 * connections remain (a client whose request was cut retries with the same event ids, which the
 * gateway deduplicates). Without the deadline, idle keep-alive clients can hold a close open.
 */
export async function closeGracefully(app: FastifyInstance, graceMs: number): Promise<void> {
  const timer = setTimeout(() => app.server.closeAllConnections(), graceMs)
  try {
    await app.close()
  } finally {
    clearTimeout(timer)
  }
}

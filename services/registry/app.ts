import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { withSpan } from '../shared/telemetry.ts'
import { DEFAULT_COMPATIBILITY } from './compatibility.ts'
import { RegistryError, registryErrors } from './registry-errors.ts'
import type { RegistryService } from './registry-service.ts'

export interface RegistryAppOptions {
  service: RegistryService
  logger?: boolean
}

const REGISTRY_JSON = 'application/vnd.schemaregistry.v1+json'
type SchemaBody = { schema?: unknown; schemaType?: unknown; references?: unknown }
type SubjectParams = { subject: string }
type VersionParams = { subject: string; version: string }

/**
 * The Confluent-compatible schema registry API. Built here, listened on by `server.ts` or by the
 * all-in-one backbone; tests use `app.inject()`. Every error answers in Confluent's
 * `{error_code, message}` shape; nothing a client sends produces a 5xx (only a store failure does).
 */
export function buildRegistryApp(options: RegistryAppOptions): FastifyInstance {
  const { service } = options
  const app = Fastify({ logger: options.logger ?? false, bodyLimit: 4 * 1024 * 1024 })

  // Confluent clients send these media types; all are JSON. Plain text is not a schema request.
  app.removeContentTypeParser('text/plain')
  app.addContentTypeParser(
    ['application/vnd.schemaregistry.v1+json', 'application/vnd.schemaregistry+json', 'application/octet-stream'],
    { parseAs: 'string' },
    (_req, body, done) => {
      try {
        done(null, body === '' ? {} : JSON.parse(body as string))
      } catch (err) {
        done(registryErrors.badRequest(`Unrecognized JSON body: ${(err as Error).message}`), undefined)
      }
    },
  )

  app.addHook('onSend', async (_req, reply, payload) => {
    if (String(reply.getHeader('content-type') ?? '').startsWith('application/json')) reply.header('content-type', REGISTRY_JSON)
    return payload
  })

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err instanceof RegistryError) return reply.status(err.status).send(err.toJSON())
    const status = err.statusCode ?? 500
    if (status >= 400 && status < 500) {
      const code = err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 415 : status
      return reply.status(code).send({ error_code: code, message: err.message })
    }
    app.log.error(err)
    return reply.status(500).send({ error_code: 50001, message: `Error in the backend datastore: ${err.message}` })
  })
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ error_code: 404, message: `HTTP 404 Not Found: ${req.method} ${req.url}` }))

  const body = (req: FastifyRequest): SchemaBody => {
    if (req.body === null || typeof req.body !== 'object' || Array.isArray(req.body)) throw registryErrors.invalidSchema('Invalid schema: the body must be a JSON object with a "schema" string')
    return req.body as SchemaBody
  }
  const flag = (req: FastifyRequest, name: string): boolean => (req.query as Record<string, string | undefined>)[name] === 'true'
  const traced =
    <T>(name: string, fn: (req: FastifyRequest, reply: FastifyReply) => Promise<T> | T) =>
    (req: FastifyRequest, reply: FastifyReply): Promise<T> =>
      withSpan(`registry ${name}`, {}, async () => fn(req, reply))

  app.get('/', async () => ({}))
  app.get('/schemas/types', async () => ['AVRO'])

  app.get('/subjects', traced('list subjects', async (req) => {
    return service.state.listSubjects(flag(req, 'deleted'))
  }))

  app.get<{ Params: SubjectParams }>('/subjects/:subject/versions', traced('list versions', async (req) => {
    const { subject } = req.params as SubjectParams
    const versions = service.state.versions(subject, flag(req, 'deleted'))
    if (versions.length === 0) throw registryErrors.subjectNotFound(subject)
    return versions.map((r) => r.version)
  }))

  app.get('/subjects/:subject/versions/:version', traced('get version', async (req) => {
    const { subject, version } = req.params as VersionParams
    const r = service.getVersion(subject, version, flag(req, 'deleted'))
    return { subject: r.subject, version: r.version, id: r.id, schema: r.schema }
  }))

  app.get('/subjects/:subject/versions/:version/schema', traced('get raw schema', async (req, reply) => {
    const { subject, version } = req.params as VersionParams
    const r = service.getVersion(subject, version, flag(req, 'deleted'))
    return reply.type(REGISTRY_JSON).send(r.schema)
  }))

  app.post('/subjects/:subject/versions', traced('register', async (req) => {
    const { subject } = req.params as SubjectParams
    return service.register(subject, body(req))
  }))

  app.post('/subjects/:subject', traced('lookup', async (req) => {
    const { subject } = req.params as SubjectParams
    return service.lookup(subject, body(req), flag(req, 'deleted'))
  }))

  app.delete('/subjects/:subject', traced('delete subject', async (req) => {
    const { subject } = req.params as SubjectParams
    return service.deleteSubject(subject, flag(req, 'permanent'))
  }))

  app.delete('/subjects/:subject/versions/:version', traced('delete version', async (req) => {
    const { subject, version } = req.params as VersionParams
    return service.deleteVersion(subject, version, flag(req, 'permanent'))
  }))

  app.get('/schemas/ids/:id', traced('get by id', async (req) => {
    const id = parseId((req.params as { id: string }).id)
    const schema = service.state.schemaById(id)
    if (schema === undefined) throw registryErrors.schemaNotFound('Schema ' + id)
    return { schema }
  }))

  app.get('/schemas/ids/:id/versions', traced('get id versions', async (req) => {
    const id = parseId((req.params as { id: string }).id)
    if (service.state.schemaById(id) === undefined) throw registryErrors.schemaNotFound('Schema ' + id)
    return service.state.subjectsForId(id)
  }))

  app.get('/config', async () => ({ compatibilityLevel: service.state.config(null) ?? DEFAULT_COMPATIBILITY }))
  app.put('/config', traced('set global config', async (req) => {
    const level = await service.setConfig(null, compatibilityOf(req.body))
    return { compatibility: level }
  }))
  app.get('/config/:subject', traced('get subject config', async (req) => {
    const { subject } = req.params as SubjectParams
    const own = service.state.config(subject)
    if (own !== undefined) return { compatibilityLevel: own }
    if (flag(req, 'defaultToGlobal')) return { compatibilityLevel: service.compatibilityFor(subject) }
    throw registryErrors.subjectConfigNotFound(subject)
  }))
  app.put('/config/:subject', traced('set subject config', async (req) => {
    const { subject } = req.params as SubjectParams
    const level = await service.setConfig(subject, compatibilityOf(req.body))
    return { compatibility: level }
  }))
  app.delete('/config/:subject', traced('delete subject config', async (req) => {
    const { subject } = req.params as SubjectParams
    return { compatibilityLevel: await service.deleteConfig(subject) }
  }))

  app.post('/compatibility/subjects/:subject/versions/:version', traced('check compatibility', async (req) => {
    const { subject, version } = req.params as VersionParams
    const problems = service.checkCompatibility(subject, version, body(req))
    return flag(req, 'verbose') ? { is_compatible: problems.length === 0, messages: problems } : { is_compatible: problems.length === 0 }
  }))

  return app
}

function parseId(raw: string): number {
  if (!/^\d{1,10}$/.test(raw) || Number(raw) < 1 || Number(raw) > 2 ** 31 - 1) throw registryErrors.schemaNotFound(`Schema ${raw}`)
  return Number(raw)
}

function compatibilityOf(body: unknown): unknown {
  if (body === null || typeof body !== 'object') return undefined
  return (body as { compatibility?: unknown }).compatibility
}

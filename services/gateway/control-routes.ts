import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { Producer } from 'kafkajs'
import { z } from 'zod'
import { decisionKey, type KillSwitchDecision } from '../../schemas/control-schemas.ts'
import { deterministicId } from '../../stream-processors/kill-switch/domain/control-records.ts'
import type { ControlCodec } from '../shared/control-codec.ts'
import { LedgerError } from '../shared/errors.ts'
import { parseInput as parse } from '../shared/http.ts'
import type { ApiKeyStore } from './api-keys.ts'
import { requireRole } from './auth.ts'
import type { ControlView } from './control-view.ts'
import type { RunControl } from './run-control.ts'

export interface ControlDeps {
  keys: ApiKeyStore
  runControl: RunControl
  view: ControlView
  codec: ControlCodec
  producer: Producer
  controlTopic: string
  /** SSE keep-alive comment interval. */
  heartbeatMs?: number
}

const RUN_ID = /^[A-Za-z0-9._:-]{1,128}$/
const NAME = /^[A-Za-z0-9._:@/-]{1,200}$/

export const guardBody = z.strictObject({
  tool: z.string().regex(NAME, 'must be 1-200 characters of letters, digits and ._:@/-').optional(),
  estimated_cost_usd: z.number().nonnegative().max(1_000_000).optional(),
  agent_name: z.string().min(1).max(200).optional(),
  agent_version: z.string().min(1).max(200).optional(),
})

export const manualBody = z.strictObject({
  action: z.enum(['kill', 'release']),
  scope: z.enum(['run', 'agent_version', 'tool', 'tenant']),
  scope_key: z.string().regex(NAME, 'must be 1-200 characters of letters, digits and ._:@/-'),
  reason: z.string().trim().min(3, 'say why (at least 3 characters)').max(2_000),
  operator: z.string().trim().min(1).max(200),
})

const statusQuery = z.strictObject({ agent_name: z.string().min(1).max(200).optional(), agent_version: z.string().min(1).max(200).optional() })

function runIdOf(req: FastifyRequest): string {
  const id = (req.params as { id: string }).id
  if (!RUN_ID.test(id)) throw new LedgerError('LEDGER_ERR_BAD_REQUEST', 'id: a run id is 1-128 characters of letters, digits, ".", "_", ":" or "-"')
  return id
}

/**
 * Enforcement routes: run status, guard (with cost reservations), server-sent event streams of
 * decisions per run and per agent, and manual kill / release by an operator.
 */
export const controlRoutes: FastifyPluginAsync<ControlDeps> = async (app, deps) => {
  const readers = requireRole(deps.keys, ['emit', 'read', 'audit'])
  const heartbeatMs = deps.heartbeatMs ?? 15_000

  /** `GET /v1/runs/{id}/status`: killed or active, which decision and event killed it, open circuits, cost. */
  app.get('/v1/runs/:id/status', { preHandler: readers }, async (req) => {
    const runId = runIdOf(req)
    return deps.runControl.status(req.principal!.tenant, runId, parse(statusQuery, req.query, 'query'))
  })

  /**
   * `POST /v1/runs/{id}/guard`: may the run take its next action (calling `tool`, costing about
   * `estimated_cost_usd`)? 200 either way; `allowed: false` carries the refusal. An allowed guard
   * with an estimate returns a reservation to release with the event that carries the real cost.
   */
  app.post('/v1/runs/:id/guard', { preHandler: requireRole(deps.keys, ['emit']) }, async (req) => {
    const runId = runIdOf(req)
    return deps.runControl.guard(req.principal!.tenant, runId, parse(guardBody, req.body, 'body'))
  })

  function stream(req: FastifyRequest, reply: FastifyReply, initial: unknown, concerns: (d: KillSwitchDecision) => unknown): void {
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' })
    const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)
    send('status', initial)
    const onDecision = (d: KillSwitchDecision) => {
      const payload = concerns(d)
      if (payload !== undefined) send('decision', payload)
    }
    // The edge run guard's kills too: the same decision arrives again from the control topic (same decision_id).
    const offs = [deps.view.onDecision(onDecision), deps.runControl.onEdgeKill(onDecision)]
    const beat = setInterval(() => res.write(': keep-alive\n\n'), heartbeatMs)
    const close = () => {
      for (const off of offs) off()
      clearInterval(beat)
    }
    req.raw.on('close', close)
    res.on('close', close)
  }

  /** `GET /v1/runs/{id}/status/stream`: the run's status now, then every decision that concerns it. */
  app.get('/v1/runs/:id/status/stream', { preHandler: readers }, async (req, reply) => {
    const runId = runIdOf(req)
    const tenant = req.principal!.tenant
    const hint = parse(statusQuery, req.query, 'query')
    stream(req, reply, deps.runControl.status(tenant, runId, hint), (d) =>
      deps.runControl.concerns(tenant, runId, d) ? { decision: d, status: deps.runControl.status(tenant, runId, hint) } : undefined,
    )
  })

  /** `GET /v1/agents/{name}/status/stream?version=`: every decision about the agent's runs, version, tools and tenant. */
  app.get('/v1/agents/:name/status/stream', { preHandler: readers }, async (req, reply) => {
    const name = (req.params as { name: string }).name
    if (!NAME.test(name)) throw new LedgerError('LEDGER_ERR_BAD_REQUEST', 'name: an agent name is 1-200 characters of letters, digits and ._:@/-')
    const { version } = parse(z.strictObject({ version: z.string().min(1).max(200).optional() }), req.query, 'query')
    const tenant = req.principal!.tenant
    const matches = (d: KillSwitchDecision) =>
      d.tenant === tenant &&
      (d.scope === 'tenant' || d.scope === 'tool' || (d.agent_name === name && (version === undefined || d.agent_version === version || d.scope_key === `${name}@${version}`)))
    stream(req, reply, { agent: name, version: version ?? null }, (d) => (matches(d) ? { decision: d } : undefined))
  })

  /**
   * `POST /v1/control/decisions`: an operator kills or releases a run, agent version, tool or
   * tenant. The decision, with the operator's name, key and reason, goes on the control topic like
   * any processor's (and so into the lineage store). 202 after Kafka acknowledged it.
   */
  app.post('/v1/control/decisions', { preHandler: requireRole(deps.keys, ['admin']) }, async (req, reply) => {
    const body = parse(manualBody, req.body, 'body')
    const principal = req.principal!
    const now = Date.now()
    const d: KillSwitchDecision = {
      decision_id: deterministicId('manual', principal.keyId, body.scope, principal.tenant, body.scope_key, body.action, String(now)),
      tenant: principal.tenant,
      scope: body.scope,
      scope_key: body.scope_key,
      state: body.action === 'kill' ? 'killed' : 'released',
      trigger: 'manual',
      reason: body.reason,
      tripping_event_id: null,
      run_id: body.scope === 'run' ? body.scope_key : null,
      agent_name: body.scope === 'agent_version' ? (body.scope_key.split('@')[0] ?? null) : null,
      agent_version: body.scope === 'agent_version' ? (body.scope_key.split('@')[1] ?? null) : null,
      tool: body.scope === 'tool' ? body.scope_key : null,
      operator: { key_id: principal.keyId, name: body.operator },
      decided_at: now,
      decided_by: 'operator',
      retry_at: null,
    }
    await deps.producer
      .send({ topic: deps.controlTopic, acks: -1, messages: [{ key: decisionKey(d), value: deps.codec.encode('kill_switch.decision', d), headers: { 'ledger-control-kind': 'kill_switch.decision', 'ledger-tenant': d.tenant } }] })
      .catch((err: unknown) => {
        throw new LedgerError('LEDGER_ERR_KAFKA_UNAVAILABLE', `Kafka: ${(err as Error).message}`, { cause: err })
      })
    return reply.status(202).send(d)
  })
}

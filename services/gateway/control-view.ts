import { EventEmitter } from 'node:events'
import type { Kafka } from 'kafkajs'
import { decisionKey, type KillSwitchDecision } from '../../schemas/control-schemas.ts'
import type { ControlCodec } from '../shared/control-codec.ts'
import { caughtUp, createStoppableConsumer, endOffsets } from '../shared/kafka.ts'
import type { Logger } from '../shared/log.ts'

/**
 * The gateway's live view of the compacted control topic: the latest kill-switch decision per
 * scope. It reads read_committed, so it sees a processor's decision exactly when the processor's
 * transaction committed, and never an aborted one. Budget alerts on the same topic are ignored
 * here (they are history, not state). Listeners hear every decision as it arrives, for the
 * server-sent event streams.
 */
export interface ControlView {
  ready(): Promise<void>
  get(scope: KillSwitchDecision['scope'], tenant: string, scopeKey: string): KillSwitchDecision | undefined
  /** Non-closed circuits and tool-scope kills of a tenant. */
  toolStates(tenant: string): KillSwitchDecision[]
  onDecision(listener: (d: KillSwitchDecision) => void): () => void
  readonly stats: { decisions: number; lastAppliedAt: number | undefined }
  stop(): Promise<void>
}

export async function createControlView(options: { kafka: Kafka; topic: string; codec: ControlCodec; logger: Logger; readyTimeoutMs?: number }): Promise<ControlView> {
  const latest = new Map<string, KillSwitchDecision>()
  const tools = new Map<string, Map<string, KillSwitchDecision>>()
  const events = new EventEmitter()
  events.setMaxListeners(0)
  const stats = { decisions: 0, lastAppliedAt: undefined as number | undefined }
  const log = options.logger.child({ component: 'control-view' })
  const ends = await endOffsets(options.kafka, options.topic)
  const { consumer, stop } = createStoppableConsumer(options.kafka, { groupId: `ledger.control-view.${process.pid}.${Date.now()}`, readUncommitted: false, maxWaitTimeInMs: 100, minBytes: 1 })
  await consumer.connect()
  await consumer.subscribe({ topic: options.topic, fromBeginning: true })
  // Ready once the decisions that existed at start were read. A processor that died inside a
  // transaction holds read_committed readers back until its successor fences it (or the
  // transaction times out), so after readyTimeoutMs the view serves what it has, and says so.
  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000
  let timer: NodeJS.Timeout | undefined
  const ready = Promise.race([
    caughtUp(consumer, options.topic, ends),
    new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        log.warn('the control view is serving before it read the whole control topic', { topic: options.topic, waitedMs: readyTimeoutMs })
        resolve()
      }, readyTimeoutMs)
      timer.unref()
    }),
  ]).finally(() => clearTimeout(timer))
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ message }) => {
      if (message.value === null) return
      let decoded
      try {
        decoded = await options.codec.decode(message.value)
      } catch (err) {
        log.warn('skipping an unreadable control record', { offset: message.offset, error: err })
        return
      }
      if (decoded.kind !== 'kill_switch.decision') return
      const d = decoded.record
      latest.set(decisionKey(d), d)
      if (d.scope === 'tool') {
        let byTool = tools.get(d.tenant)
        if (byTool === undefined) tools.set(d.tenant, (byTool = new Map()))
        if (d.state === 'circuit_closed' || d.state === 'released') byTool.delete(d.scope_key)
        else byTool.set(d.scope_key, d)
      }
      stats.decisions += 1
      stats.lastAppliedAt = Date.now()
      events.emit('decision', d)
    },
  })
  return {
    ready: () => ready,
    get: (scope, tenant, scopeKey) => latest.get(decisionKey({ scope, tenant, scope_key: scopeKey })),
    toolStates: (tenant) => [...(tools.get(tenant)?.values() ?? [])],
    onDecision(listener) {
      events.on('decision', listener)
      return () => events.off('decision', listener)
    },
    stats,
    stop,
  }
}

import type { Kafka } from 'kafkajs'
import { createStoppableConsumer } from '../../services/shared/kafka.ts'
import type { Logger } from '../../services/shared/log.ts'
import type { ContractLookup } from '../kill-switch/domain/control-records.ts'
import type { AgentContract } from './agent-contract.ts'

/**
 * A live, read-only view of the compacted contracts topic (`<tenant>/<agent>@<version>` → the
 * published record). Processors and the gateway look contracts up here; published versions are
 * immutable, so a lookup by version gives the same answer during a replay.
 */
export interface PublishedContract {
  tenant: string
  name: string
  version: string
  contract: AgentContract
  published_at: string
}

export interface ContractsView {
  /** Resolves once everything on the topic at start has been read. */
  ready(): Promise<void>
  get(tenant: string, name: string, version: string): AgentContract | undefined
  /** The most recently published version of an agent's contract (what a new run runs under). */
  latest(tenant: string, name: string): PublishedContract | undefined
  /**
   * Waits up to `timeoutMs` for a version that an event names but this view has not read yet. A
   * version that did not arrive within one wait answers false at once afterwards (true as soon as
   * it is read), so a run naming an unpublished version costs one wait, not one per event.
   */
  waitFor(tenant: string, name: string, version: string, timeoutMs: number): Promise<boolean>
  stop(): Promise<void>
}

/**
 * The contract an event runs under, as the run guard and the aggregates look it up: the version
 * the run was stamped with, else the agent's own version. The processors and the gateway's edge
 * run guard share it, so they decide on the same contract.
 */
export function contractLookupOf(contracts: Pick<ContractsView, 'get'> | undefined): ContractLookup {
  return (tenant, name, contractVersion, agentVersion) =>
    (contractVersion !== undefined ? contracts?.get(tenant, name, contractVersion) : undefined) ?? contracts?.get(tenant, name, agentVersion)
}

export async function createContractsView(options: { kafka: Kafka; topic: string; logger: Logger }): Promise<ContractsView> {
  const byKey = new Map<string, PublishedContract>()
  const latest = new Map<string, PublishedContract>()
  const waiters = new Set<() => void>()
  const missing = new Set<string>()
  const log = options.logger.child({ component: 'contracts-view' })
  const admin = options.kafka.admin()
  await admin.connect()
  const targets = new Map((await admin.fetchTopicOffsets(options.topic).finally(() => admin.disconnect())).map((o) => [o.partition, BigInt(o.high)]))
  const positions = new Map<number, bigint>()
  let markReady: () => void = () => undefined
  const readyPromise = new Promise<void>((resolve) => (markReady = resolve))
  const checkReady = () => {
    if ([...targets].every(([p, high]) => high === 0n || (positions.get(p) ?? 0n) >= high)) markReady()
  }
  checkReady()

  const { consumer, stop } = createStoppableConsumer(options.kafka, { groupId: `ledger.contracts-view.${process.pid}.${Date.now()}`, maxWaitTimeInMs: 100 })
  await consumer.connect()
  await consumer.subscribe({ topic: options.topic, fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      positions.set(partition, BigInt(message.offset) + 1n)
      if (message.value !== null) {
        try {
          const record = JSON.parse(message.value.toString('utf8')) as PublishedContract
          byKey.set(`${record.tenant}/${record.name}@${record.version}`, record)
          const agentKey = `${record.tenant}/${record.name}`
          const current = latest.get(agentKey)
          if (current === undefined || current.published_at <= record.published_at) latest.set(agentKey, record)
        } catch (err) {
          log.warn('skipping an unreadable contract record', { offset: message.offset, error: err })
        }
      }
      checkReady()
      for (const w of waiters) w()
    },
  })

  return {
    ready: () => readyPromise,
    get: (tenant, name, version) => byKey.get(`${tenant}/${name}@${version}`)?.contract,
    latest: (tenant, name) => latest.get(`${tenant}/${name}`),
    async waitFor(tenant, name, version, timeoutMs) {
      const key = `${tenant}/${name}@${version}`
      if (byKey.has(key)) return true
      // Waited for once in vain: a version that was never published must not stall every later
      // event that names it (a processor's partition waits behind each one).
      if (missing.has(key)) return false
      return new Promise<boolean>((resolve) => {
        const done = (found: boolean) => {
          waiters.delete(check)
          clearTimeout(timer)
          if (!found) missing.add(key)
          resolve(found)
        }
        const check = () => {
          if (byKey.has(key)) done(true)
        }
        const timer = setTimeout(() => done(false), timeoutMs)
        waiters.add(check)
      })
    },
    stop,
  }
}

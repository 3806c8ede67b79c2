import type { Kafka } from 'kafkajs'
import { TOPICS, topicName, type TopicDefinition } from '../infra/kafka/topics.ts'
import { createControlCodec } from '../services/shared/control-codec.ts'
import { createEventCodec } from '../services/shared/event-codec.ts'
import type { Logger } from '../services/shared/log.ts'
import { createBudgetAggregatesProcessor, type TenantBudgetLimits } from './budget/domain/budget-aggregates.ts'
import { createContractsView, type ContractsView } from './contracts/contracts-view.ts'
import { controlKeyOf, type ContractLookup, type ControlEmit } from './kill-switch/domain/control-records.ts'
import { createRunGuardProcessor } from './kill-switch/domain/run-guard.ts'
import { createToolBreakerProcessor } from './kill-switch/domain/tool-breaker.ts'
import { createProcessorRunner, type ProcessorRunner } from './runtime/kafka-runner.ts'
import type { Processor } from './runtime/processor.ts'

export interface ControlProcessorsOptions {
  kafka: Kafka
  registryUrl: string
  topicPrefix: string
  tenantLimits: TenantBudgetLimits
  sessionTimeoutMs: number
  logger: Logger
  /** How long to wait for a contract an event names before processing it without one. */
  contractWaitMs?: number
}

export interface ControlProcessors {
  readonly runners: Record<string, ProcessorRunner<unknown>>
  readonly contracts: ContractsView
  stop(): Promise<void>
}

/**
 * Starts the budget and kill-switch processors: run guard (per run), tool breaker (per tenant and
 * tool) and budget aggregates (per agent version, principal and tenant per day and month). Each
 * has its own consumer group, transactional id and changelog, and reads events read_committed.
 * One instance per group: the transactional id fences a zombie, and the runner restores the
 * whole changelog.
 */
export async function startControlProcessors(options: ControlProcessorsOptions): Promise<ControlProcessors> {
  const { kafka, topicPrefix: prefix, logger } = options
  const t = (def: TopicDefinition) => topicName(def, prefix)
  const contracts = await createContractsView({ kafka, topic: t(TOPICS.contracts), logger })
  await contracts.ready()
  const codec = await createEventCodec({ registryUrl: options.registryUrl, topic: t(TOPICS.events), register: false })
  const control = await createControlCodec({ registryUrl: options.registryUrl, controlTopic: t(TOPICS.control), budgetStateTopic: t(TOPICS.budgetState) })
  const lookup: ContractLookup = (tenant, name, contractVersion, agentVersion) =>
    (contractVersion !== undefined ? contracts.get(tenant, name, contractVersion) : undefined) ?? contracts.get(tenant, name, agentVersion)
  const waitMs = options.contractWaitMs ?? 5_000

  const route = (emit: ControlEmit) => ({
    topic: emit.kind === 'budget.state' ? t(TOPICS.budgetState) : t(TOPICS.control),
    message: { key: controlKeyOf(emit), value: control.encode(emit.kind, emit.record as never), headers: { 'ledger-control-kind': emit.kind, 'ledger-tenant': emit.record.tenant } },
    latestOnly: emit.kind === 'budget.state',
  })
  const beforeApply = async (event: { tenant: string; agent_name: string; contract_version?: unknown }) => {
    if (typeof event.contract_version !== 'string') return
    const found = await contracts.waitFor(event.tenant, event.agent_name, event.contract_version, waitMs)
    if (!found) logger.warn('an event names a contract version that was never published; processing it without one', { tenant: event.tenant, agent: event.agent_name, contractVersion: event.contract_version })
  }

  const make = <S>(processor: Processor<S, ControlEmit>, changelog: TopicDefinition) =>
    createProcessorRunner<S, ControlEmit>({
      kafka,
      processor,
      codec,
      inputTopic: t(TOPICS.events),
      changelogTopic: t(changelog),
      deadLetterTopic: t(TOPICS.deadLetter),
      groupId: `${prefix}ledger.${processor.name}`,
      transactionalId: `${prefix}ledger.${processor.name}`,
      route,
      beforeApply,
      sessionTimeoutMs: options.sessionTimeoutMs,
      logger,
    })
  const runners: Record<string, ProcessorRunner<unknown>> = {
    'run-guard': make(createRunGuardProcessor(lookup), TOPICS.runGuardChangelog) as ProcessorRunner<unknown>,
    'tool-breaker': make(createToolBreakerProcessor(lookup), TOPICS.toolBreakerChangelog) as ProcessorRunner<unknown>,
    'budget-aggregates': make(createBudgetAggregatesProcessor(lookup, options.tenantLimits), TOPICS.budgetAggregatesChangelog) as ProcessorRunner<unknown>,
  }
  const started: ProcessorRunner<unknown>[] = []
  try {
    for (const runner of Object.values(runners)) {
      await runner.start()
      started.push(runner)
    }
  } catch (err) {
    for (const r of started.reverse()) await r.stop().catch(() => undefined)
    await contracts.stop()
    throw err
  }
  return {
    runners,
    contracts,
    async stop() {
      for (const r of Object.values(runners).reverse()) await r.stop()
      await contracts.stop()
    },
  }
}

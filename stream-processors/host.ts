import type { Kafka } from 'kafkajs'
import { TOPICS, topicName, type TopicDefinition } from '../infra/kafka/topics.ts'
import { createControlCodec } from '../services/shared/control-codec.ts'
import { createEventCodec } from '../services/shared/event-codec.ts'
import type { Logger } from '../services/shared/log.ts'
import { createBudgetAggregatesProcessor, type TenantBudgetLimits } from './budget/domain/budget-aggregates.ts'
import { contractLookupOf, createContractsView, type ContractsView } from './contracts/contracts-view.ts'
import { controlKeyOf, type ControlEmit } from './kill-switch/domain/control-records.ts'
import { createRunGuardProcessor } from './kill-switch/domain/run-guard.ts'
import { createToolBreakerProcessor } from './kill-switch/domain/tool-breaker.ts'
import { createProcessorGroupRunner, type ProcessorStats } from './runtime/kafka-runner.ts'
import type { ChangeloggingStore } from './runtime/store.ts'
import type { ProcessorsConfig } from '../services/shared/config.ts'

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

/** The processors' options from their configuration (the same for `npm start` and `npm run processors`). */
export function controlProcessorsOptionsFrom(
  config: Pick<ProcessorsConfig, 'LEDGER_TOPIC_PREFIX' | 'LEDGER_TENANT_MAX_COST_USD_PER_DAY' | 'LEDGER_TENANT_MAX_COST_USD_PER_MONTH' | 'LEDGER_PROCESSOR_SESSION_TIMEOUT_MS'>,
  runtime: { kafka: Kafka; registryUrl: string; logger: Logger },
): ControlProcessorsOptions {
  return {
    ...runtime,
    topicPrefix: config.LEDGER_TOPIC_PREFIX,
    tenantLimits: {
      ...(config.LEDGER_TENANT_MAX_COST_USD_PER_DAY !== undefined ? { maxCostUsdPerDay: config.LEDGER_TENANT_MAX_COST_USD_PER_DAY } : {}),
      ...(config.LEDGER_TENANT_MAX_COST_USD_PER_MONTH !== undefined ? { maxCostUsdPerMonth: config.LEDGER_TENANT_MAX_COST_USD_PER_MONTH } : {}),
    },
    sessionTimeoutMs: config.LEDGER_PROCESSOR_SESSION_TIMEOUT_MS,
  }
}

export interface ControlProcessors {
  /** Each processor's store and counters, by name. */
  readonly runners: Record<string, { readonly store: ChangeloggingStore<unknown>; readonly stats: ProcessorStats }>
  readonly contracts: ContractsView
  stop(): Promise<void>
}

/**
 * Starts the budget and kill-switch processors: run guard (per run), tool breaker (per tenant and
 * tool) and budget aggregates (per agent version, principal and tenant per day and month). They
 * share one consumer group (`ledger.control-processors`), one read_committed consumer, one decode
 * per event and one transaction per batch, and each keeps its own store and changelog. One
 * instance per group: the transactional id fences a zombie, and the runner restores the whole
 * changelogs.
 */
export async function startControlProcessors(options: ControlProcessorsOptions): Promise<ControlProcessors> {
  const { kafka, topicPrefix: prefix, logger } = options
  const t = (def: TopicDefinition) => topicName(def, prefix)
  const contracts = await createContractsView({ kafka, topic: t(TOPICS.contracts), logger })
  await contracts.ready()
  const codec = await createEventCodec({ registryUrl: options.registryUrl, topic: t(TOPICS.events), register: false })
  const control = await createControlCodec({ registryUrl: options.registryUrl, controlTopic: t(TOPICS.control), budgetStateTopic: t(TOPICS.budgetState) })
  const lookup = contractLookupOf(contracts)
  const waitMs = options.contractWaitMs ?? 5_000

  const route = (emit: ControlEmit) => ({
    topic: emit.kind === 'budget.state' ? t(TOPICS.budgetState) : t(TOPICS.control),
    message: { key: controlKeyOf(emit), value: control.encode(emit.kind, emit.record as never), headers: { 'ledger-control-kind': emit.kind, 'ledger-tenant': emit.record.tenant } },
  })
  // A budget state is a snapshot on a compacted topic: within a batch only the last per key counts.
  const coalesceKey = (emit: ControlEmit) => (emit.kind === 'budget.state' ? `budget.state/${controlKeyOf(emit)}` : undefined)
  const beforeApply = async (event: { tenant: string; agent_name: string; contract_version?: unknown }) => {
    if (typeof event.contract_version !== 'string') return
    const found = await contracts.waitFor(event.tenant, event.agent_name, event.contract_version, waitMs)
    if (!found) logger.warn('an event names a contract version that was never published; processing it without one', { tenant: event.tenant, agent: event.agent_name, contractVersion: event.contract_version })
  }

  const group = `${prefix}ledger.control-processors`
  const runner = createProcessorGroupRunner<ControlEmit>({
    kafka,
    stages: [
      { processor: createRunGuardProcessor(lookup), changelogTopic: t(TOPICS.runGuardChangelog) },
      { processor: createToolBreakerProcessor(lookup), changelogTopic: t(TOPICS.toolBreakerChangelog) },
      { processor: createBudgetAggregatesProcessor(lookup, options.tenantLimits), changelogTopic: t(TOPICS.budgetAggregatesChangelog) },
    ],
    codec,
    inputTopic: t(TOPICS.events),
    deadLetterTopic: t(TOPICS.deadLetter),
    groupId: group,
    transactionalId: group,
    route,
    coalesceKey,
    beforeApply,
    sessionTimeoutMs: options.sessionTimeoutMs,
    logger,
  })
  try {
    await runner.start()
  } catch (err) {
    await runner.stop().catch(() => undefined)
    await contracts.stop()
    throw err
  }
  const runners = runner.processors
  return {
    runners,
    contracts,
    async stop() {
      await runner.stop()
      await contracts.stop()
    },
  }
}

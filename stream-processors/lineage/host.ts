import type { Kafka } from 'kafkajs'
import { TOPICS, topicName } from '../../infra/kafka/topics.ts'
import type { LedgerClickHouse } from '../../services/shared/clickhouse.ts'
import type { SinkConfig } from '../../services/shared/config.ts'
import { createControlCodec } from '../../services/shared/control-codec.ts'
import { createEventCodec } from '../../services/shared/event-codec.ts'
import type { Logger } from '../../services/shared/log.ts'
import { controlRow, eventRow } from './domain/event-rows.ts'
import { notarySinkSourcesFor } from '../notary/host.ts'
import { createLineageSink, type LineageSink, type SinkSource } from './lineage-sink.ts'

export interface LineageSinkHostOptions {
  kafka: Kafka
  clickhouse: LedgerClickHouse
  registryUrl: string
  topicPrefix: string
  maxBatchRecords: number
  lingerMs: number
  sessionTimeoutMs?: number
  logger: Logger
  /** More topics to store (the notary's chain and digest topics register here). */
  extraSources?: SinkSource[]
}

/**
 * The sink's options from its configuration (the same for `npm start` and `npm run sink`): the
 * audit and control topics, and the notary's chains and digests.
 */
export function lineageSinkOptionsFrom(
  config: Pick<SinkConfig, 'LEDGER_TOPIC_PREFIX' | 'LEDGER_SINK_MAX_BATCH' | 'LEDGER_SINK_LINGER_MS' | 'LEDGER_SINK_SESSION_TIMEOUT_MS'>,
  runtime: { kafka: Kafka; clickhouse: LedgerClickHouse; registryUrl: string; logger: Logger },
): LineageSinkHostOptions {
  return {
    ...runtime,
    topicPrefix: config.LEDGER_TOPIC_PREFIX,
    maxBatchRecords: config.LEDGER_SINK_MAX_BATCH,
    lingerMs: config.LEDGER_SINK_LINGER_MS,
    extraSources: notarySinkSourcesFor(config.LEDGER_TOPIC_PREFIX),
    sessionTimeoutMs: config.LEDGER_SINK_SESSION_TIMEOUT_MS,
  }
}

/** The lineage sink on the audit-event and control topics, decoding both through the registry. */
export async function startLineageSink(options: LineageSinkHostOptions): Promise<LineageSink> {
  const t = (def: (typeof TOPICS)[keyof typeof TOPICS]) => topicName(def, options.topicPrefix)
  const events = await createEventCodec({ registryUrl: options.registryUrl, topic: t(TOPICS.events), register: false })
  const control = await createControlCodec({ registryUrl: options.registryUrl, controlTopic: t(TOPICS.control), budgetStateTopic: t(TOPICS.budgetState), register: false })
  const sources: SinkSource[] = [
    {
      topic: t(TOPICS.events),
      async toRows(message, position) {
        if (message.value === null) return []
        const decoded = await events.decode(message.value)
        return [{ table: 'events', row: eventRow(decoded.json, position, decoded.schemaId) }]
      },
    },
    {
      topic: t(TOPICS.control),
      async toRows(message, position) {
        // A tombstone on the compacted control topic clears a scope's state; history keeps the decisions.
        if (message.value === null) return []
        const decoded = await control.decode(message.value)
        if (decoded.kind === 'budget.state') return []
        return [{ table: 'control_events', row: controlRow(decoded.kind, decoded.record as unknown as Record<string, unknown>, position) }]
      },
    },
    ...(options.extraSources ?? []),
  ]
  const sink = createLineageSink({
    kafka: options.kafka,
    clickhouse: options.clickhouse,
    sources,
    deadLetterTopic: t(TOPICS.deadLetter),
    groupId: `${options.topicPrefix}ledger.lineage-sink`,
    maxBatchRecords: options.maxBatchRecords,
    lingerMs: options.lingerMs,
    ...(options.sessionTimeoutMs !== undefined ? { sessionTimeoutMs: options.sessionTimeoutMs } : {}),
    logger: options.logger,
  })
  await sink.start()
  return sink
}

import type { Admin, ITopicConfig } from 'kafkajs'
import type { Logger } from '../../services/shared/log.ts'

/**
 * The declarative topic definition. `ensureTopics()` creates whatever is missing at start and
 * leaves existing topics alone (it warns if one has fewer partitions than declared), so it is
 * safe to run on every start. `compact` marks topics whose latest value per key is state.
 */
export interface TopicDefinition {
  /** Logical name; the real name is LEDGER_TOPIC_PREFIX + name. */
  name: string
  partitions: number
  cleanupPolicy: 'delete' | 'compact'
  /** -1 keeps records forever. */
  retentionMs: number
  /** The topic's `max.message.bytes`, when its records can be larger than the broker's default (1 MiB). */
  maxMessageBytes?: number
  purpose: string
}

const DAY = 24 * 60 * 60 * 1000

export const TOPICS = {
  events: {
    name: 'ledger.events.v1',
    partitions: 6,
    cleanupPolicy: 'delete',
    retentionMs: 30 * DAY,
    purpose: 'Every audit event, Avro (registry wire format), keyed by run id so one run stays in order on one partition.',
  },
  control: {
    name: 'ledger.control.v1',
    partitions: 3,
    cleanupPolicy: 'compact',
    retentionMs: -1,
    purpose: 'Kill-switch and circuit-breaker decisions, keyed by scope; the latest decision per scope is the state.',
  },
  budgetState: {
    name: 'ledger.budget-state.v1',
    partitions: 6,
    cleanupPolicy: 'compact',
    retentionMs: -1,
    purpose: 'Live budget state per run, agent version, principal and tenant (compacted changelog).',
  },
  contracts: {
    name: 'ledger.contracts.v1',
    partitions: 1,
    cleanupPolicy: 'compact',
    retentionMs: -1,
    purpose: 'Agent contracts, keyed by tenant/agent/version.',
  },
  runGuardChangelog: {
    name: 'ledger.run-guard.changelog.v1',
    partitions: 6,
    cleanupPolicy: 'compact',
    retentionMs: -1,
    purpose: 'State of the run-guard processor (budget, loop detector, approval gate per run), JSON, written in the same transaction as its decisions.',
  },
  toolBreakerChangelog: {
    name: 'ledger.tool-breaker.changelog.v1',
    partitions: 3,
    cleanupPolicy: 'compact',
    retentionMs: -1,
    purpose: 'State of the per-tool circuit breakers, JSON.',
  },
  budgetAggregatesChangelog: {
    name: 'ledger.budget-aggregates.changelog.v1',
    partitions: 6,
    cleanupPolicy: 'compact',
    retentionMs: -1,
    purpose: 'State of the per agent version / principal / tenant budgets, JSON.',
  },
  notaryChain: {
    name: 'ledger.chain.v1',
    partitions: 6,
    cleanupPolicy: 'compact',
    retentionMs: -1,
    purpose: "The notary's per-run hash chain: one link per audit event (canonical JSON, with the event it hashes), keyed tenant/run/seq, on the partition number of its event.",
    // A link carries its event as JSON, larger than the event's Avro: an event near the 1 MiB limit
    // must not become a link the broker refuses (the notary would stop on it).
    maxMessageBytes: 8 * 1024 * 1024,
  },
  notaryDigests: {
    name: 'ledger.digests.v1',
    partitions: 1,
    cleanupPolicy: 'compact',
    retentionMs: -1,
    purpose: "The notary's signed digests (Ed25519, per tenant, chained by signature) and its public keys, canonical JSON.",
  },
  notaryChangelog: {
    name: 'ledger.notary.changelog.v1',
    partitions: 6,
    cleanupPolicy: 'compact',
    retentionMs: -1,
    purpose: "State of the notary (each run's chain head, each tenant's last digest), JSON, written in the same transaction as its links and digests.",
  },
  deadLetter: {
    name: 'ledger.dead-letter.v1',
    partitions: 1,
    cleanupPolicy: 'delete',
    retentionMs: -1,
    purpose: 'Poison records with the reason they could not be processed; never dropped.',
  },
} as const satisfies Record<string, TopicDefinition>

export function topicName(def: TopicDefinition, prefix: string): string {
  return `${prefix}${def.name}`
}

function toKafkaConfig(def: TopicDefinition, name: string): ITopicConfig {
  return {
    topic: name,
    numPartitions: def.partitions,
    replicationFactor: -1,
    configEntries: [
      { name: 'cleanup.policy', value: def.cleanupPolicy },
      { name: 'retention.ms', value: String(def.retentionMs) },
      ...(def.cleanupPolicy === 'compact' ? [{ name: 'min.cleanable.dirty.ratio', value: '0.1' }] : []),
      ...('maxMessageBytes' in def && def.maxMessageBytes !== undefined ? [{ name: 'max.message.bytes', value: String(def.maxMessageBytes) }] : []),
    ],
  }
}

/** Creates missing topics; returns the names created. Idempotent. */
export async function ensureTopics(admin: Admin, defs: readonly TopicDefinition[], prefix: string, logger?: Logger): Promise<string[]> {
  const existing = new Set(await admin.listTopics())
  const missing = defs.filter((d) => !existing.has(topicName(d, prefix)))
  if (missing.length > 0) {
    await admin.createTopics({ waitForLeaders: true, topics: missing.map((d) => toKafkaConfig(d, topicName(d, prefix))) })
  }
  const present = defs.filter((d) => existing.has(topicName(d, prefix)))
  if (present.length > 0) {
    const meta = await admin.fetchTopicMetadata({ topics: present.map((d) => topicName(d, prefix)) })
    for (const t of meta.topics) {
      const def = present.find((d) => topicName(d, prefix) === t.name)
      if (def && t.partitions.length < def.partitions) {
        logger?.warn('topic has fewer partitions than declared', { topic: t.name, partitions: t.partitions.length, declared: def.partitions })
      }
    }
  }
  for (const d of missing) logger?.info('created topic', { topic: topicName(d, prefix), partitions: d.partitions, cleanupPolicy: d.cleanupPolicy })
  await waitForTopicsReady(admin, defs.map((d) => topicName(d, prefix)))
  return missing.map((d) => topicName(d, prefix))
}

/**
 * Waits until every partition of `topics` answers an offsets request. `createTopics` with
 * `waitForLeaders` returns once the controller elected leaders, but a broker can still answer
 * UNKNOWN_TOPIC_OR_PARTITION for a moment while it loads the new partitions.
 */
export async function waitForTopicsReady(admin: Admin, topics: readonly string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (const topic of topics) {
    for (;;) {
      try {
        await admin.fetchTopicOffsets(topic)
        break
      } catch (err) {
        if (Date.now() > deadline) throw err
        await new Promise((r) => setTimeout(r, 100))
      }
    }
  }
}

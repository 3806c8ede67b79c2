-- Every audit and control event, one row per event id. Ordered for per-tenant, per-run access.
-- ReplacingMergeTree collapses a redelivered event (same sort key) at merge time; readers that
-- need exact counts before a merge use FINAL or GROUP BY event_id. Insert-level deduplication
-- (a token per Kafka partition/offset range) needs a window: it is 0 by default on tables that
-- are not replicated, so it is set here.
CREATE TABLE IF NOT EXISTS {{db}}.events
(
    tenant LowCardinality(String),
    run_id String,
    step UInt32,
    event_id String,
    event_type LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    received_at DateTime64(3, 'UTC'),
    agent_name LowCardinality(String),
    agent_version LowCardinality(String),
    principal_type LowCardinality(String),
    principal_id String,
    actor LowCardinality(String),
    parent_event_id String,
    trace_id String,
    span_id String,
    payload String CODEC(ZSTD(3)),
    kafka_partition UInt32,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (tenant, run_id, step, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

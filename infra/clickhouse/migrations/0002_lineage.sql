-- Action-level lineage (issue 5): typed columns on events for what lineage needs, look-up and
-- search tables fed by materialized views, cost and count rollups, the control events (budget
-- alerts, kill-switch decisions) and the lineage sink's batch log.
--
-- Exactly-once: the sink inserts each Kafka partition's offset range with a deduplication token
-- derived from it, and every table written on insert keeps a deduplication window (it is 0 by
-- default on non-replicated tables, which would silently turn the token off). Materialized views
-- deduplicate their blocks too (deduplicate_blocks_in_dependent_materialized_views, set by the
-- sink). ReplacingMergeTree on the event id is the second line: readers that need exact answers
-- read with FINAL or LIMIT 1 BY the id.

ALTER TABLE {{db}}.events
    ADD COLUMN IF NOT EXISTS source_topic LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS schema_id UInt32 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS contract_version String DEFAULT '',
    ADD COLUMN IF NOT EXISTS owner String DEFAULT '',
    ADD COLUMN IF NOT EXISTS autonomy_mode LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS tool LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS action_class LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS action_digest String DEFAULT '',
    ADD COLUMN IF NOT EXISTS status LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS outcome LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS amount_usd Nullable(Float64),
    ADD COLUMN IF NOT EXISTS policy_id LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS bundle_revision String DEFAULT '',
    ADD COLUMN IF NOT EXISTS decision LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS decision_id String DEFAULT '',
    ADD COLUMN IF NOT EXISTS subject_event_id String DEFAULT '',
    ADD COLUMN IF NOT EXISTS approval_id String DEFAULT '',
    ADD COLUMN IF NOT EXISTS provider LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS model LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS input_tokens UInt64 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS output_tokens UInt64 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS cost_usd Float64 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS latency_ms UInt32 DEFAULT 0;

-- Event id → its run: lineage by event id is two primary-key look-ups, never a scan.
CREATE TABLE IF NOT EXISTS {{db}}.event_locator
(
    tenant LowCardinality(String),
    event_id String,
    run_id String,
    step UInt32,
    event_type LowCardinality(String),
    occurred_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.event_locator_mv TO {{db}}.event_locator AS
SELECT tenant, event_id, run_id, step, event_type, occurred_at FROM {{db}}.events;

-- One row per run, from its run.started event, ordered for "runs of a tenant in a time range".
CREATE TABLE IF NOT EXISTS {{db}}.runs
(
    tenant LowCardinality(String),
    started_at DateTime64(3, 'UTC'),
    run_id String,
    agent_name LowCardinality(String),
    agent_version LowCardinality(String),
    principal_type LowCardinality(String),
    principal_id String,
    owner String,
    autonomy_mode LowCardinality(String),
    contract_version String,
    trace_id String,
    started_event_id String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(started_at)
ORDER BY (tenant, started_at, run_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.runs_mv TO {{db}}.runs AS
SELECT tenant, occurred_at AS started_at, run_id, agent_name, agent_version, principal_type, principal_id, owner, autonomy_mode,
       contract_version, trace_id, event_id AS started_event_id
FROM {{db}}.events WHERE event_type = 'run.started';

-- How each run ended (run.ended), looked up by run.
CREATE TABLE IF NOT EXISTS {{db}}.run_endings
(
    tenant LowCardinality(String),
    run_id String,
    ended_at DateTime64(3, 'UTC'),
    outcome LowCardinality(String),
    ended_event_id String
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant, run_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.run_endings_mv TO {{db}}.run_endings AS
SELECT tenant, run_id, occurred_at AS ended_at, outcome, event_id AS ended_event_id FROM {{db}}.events WHERE event_type = 'run.ended';

-- Live totals per run from its events (not from the client's own run.ended totals).
CREATE TABLE IF NOT EXISTS {{db}}.run_usage
(
    tenant LowCardinality(String),
    run_id String,
    events SimpleAggregateFunction(sum, UInt64),
    model_calls SimpleAggregateFunction(sum, UInt64),
    tool_calls SimpleAggregateFunction(sum, UInt64),
    tool_errors SimpleAggregateFunction(sum, UInt64),
    input_tokens SimpleAggregateFunction(sum, UInt64),
    output_tokens SimpleAggregateFunction(sum, UInt64),
    cost_usd SimpleAggregateFunction(sum, Float64),
    amount_usd SimpleAggregateFunction(sum, Float64),
    first_at SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_at SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (tenant, run_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.run_usage_mv TO {{db}}.run_usage AS
SELECT tenant, run_id,
       count() AS events,
       countIf(event_type = 'model.call') AS model_calls,
       countIf(event_type = 'tool.call') AS tool_calls,
       countIf(event_type = 'tool.call' AND status = 'error') AS tool_errors,
       sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens,
       sum(cost_usd) AS cost_usd,
       sum(ifNull(amount_usd, 0)) AS amount_usd,
       min(occurred_at) AS first_at,
       max(occurred_at) AS last_at
FROM {{db}}.events GROUP BY tenant, run_id;

-- Actions (tool calls), ordered for search by time within a tenant; tool and principal skip indexes.
CREATE TABLE IF NOT EXISTS {{db}}.actions
(
    tenant LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    event_id String,
    run_id String,
    step UInt32,
    agent_name LowCardinality(String),
    agent_version LowCardinality(String),
    principal_type LowCardinality(String),
    principal_id String,
    tool LowCardinality(String),
    action_class LowCardinality(String),
    status LowCardinality(String),
    action_digest String,
    amount_usd Nullable(Float64),
    parent_event_id String,
    INDEX idx_tool tool TYPE set(1024) GRANULARITY 4,
    INDEX idx_principal principal_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_digest action_digest TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (tenant, occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.actions_mv TO {{db}}.actions AS
SELECT tenant, occurred_at, event_id, run_id, step, agent_name, agent_version, principal_type, principal_id, tool, action_class, status,
       action_digest, amount_usd, parent_event_id
FROM {{db}}.events WHERE event_type = 'tool.call';

-- Policy decisions, ordered for "actions a policy decided on" searches.
CREATE TABLE IF NOT EXISTS {{db}}.policy_decisions
(
    tenant LowCardinality(String),
    policy_id LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    event_id String,
    run_id String,
    step UInt32,
    decision LowCardinality(String),
    decision_id String,
    bundle_revision String,
    action_digest String,
    subject_event_id String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (tenant, policy_id, occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.policy_decisions_mv TO {{db}}.policy_decisions AS
SELECT tenant, policy_id, occurred_at, event_id, run_id, step, decision, decision_id, bundle_revision, action_digest, subject_event_id
FROM {{db}}.events WHERE event_type = 'policy.decision';

-- Cost and counts per hour by tenant, agent, agent version, event type, tool and model (days are sums of hours).
CREATE TABLE IF NOT EXISTS {{db}}.usage_hourly
(
    tenant LowCardinality(String),
    agent_name LowCardinality(String),
    agent_version LowCardinality(String),
    hour DateTime('UTC'),
    event_type LowCardinality(String),
    tool LowCardinality(String),
    model LowCardinality(String),
    events SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64),
    denials SimpleAggregateFunction(sum, UInt64),
    input_tokens SimpleAggregateFunction(sum, UInt64),
    output_tokens SimpleAggregateFunction(sum, UInt64),
    cost_usd SimpleAggregateFunction(sum, Float64),
    amount_usd SimpleAggregateFunction(sum, Float64),
    runs AggregateFunction(uniq, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, agent_name, agent_version, hour, event_type, tool, model)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.usage_hourly_mv TO {{db}}.usage_hourly AS
SELECT tenant, agent_name, agent_version, toStartOfHour(occurred_at) AS hour, event_type, tool, model,
       count() AS events,
       countIf(status = 'error') AS errors,
       countIf(decision = 'deny') AS denials,
       sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens,
       sum(cost_usd) AS cost_usd,
       sum(ifNull(amount_usd, 0)) AS amount_usd,
       uniqState(run_id) AS runs
FROM {{db}}.events
GROUP BY tenant, agent_name, agent_version, hour, event_type, tool, model;

-- Cost and counts per principal per day.
CREATE TABLE IF NOT EXISTS {{db}}.usage_principal_daily
(
    tenant LowCardinality(String),
    day Date,
    principal_type LowCardinality(String),
    principal_id String,
    agent_name LowCardinality(String),
    events SimpleAggregateFunction(sum, UInt64),
    tool_calls SimpleAggregateFunction(sum, UInt64),
    cost_usd SimpleAggregateFunction(sum, Float64),
    amount_usd SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, day, principal_type, principal_id, agent_name)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.usage_principal_daily_mv TO {{db}}.usage_principal_daily AS
SELECT tenant, toDate(occurred_at) AS day, principal_type, principal_id, agent_name,
       count() AS events,
       countIf(event_type = 'tool.call') AS tool_calls,
       sum(cost_usd) AS cost_usd,
       sum(ifNull(amount_usd, 0)) AS amount_usd
FROM {{db}}.events GROUP BY tenant, day, principal_type, principal_id, agent_name;

-- Budget alerts and kill-switch decisions from the control topic, per run where they name one.
CREATE TABLE IF NOT EXISTS {{db}}.control_events
(
    tenant LowCardinality(String),
    run_id String,
    occurred_at DateTime64(3, 'UTC'),
    kind LowCardinality(String),
    record_id String,
    scope LowCardinality(String),
    scope_key String,
    state LowCardinality(String),
    trigger LowCardinality(String),
    level LowCardinality(String),
    dimension LowCardinality(String),
    window String,
    used Float64,
    limit Float64,
    reason String,
    tripping_event_id String,
    agent_name LowCardinality(String),
    agent_version LowCardinality(String),
    tool LowCardinality(String),
    decided_by LowCardinality(String),
    operator_id String,
    payload String CODEC(ZSTD(3)),
    source_topic LowCardinality(String),
    kafka_partition UInt32,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (tenant, run_id, occurred_at, kind, record_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- The lineage sink's batch log: the offset range of every insert, written before the insert.
-- After a crash the sink redoes an unfinished range with the same bounds and token, so
-- ClickHouse drops what had already landed.
CREATE TABLE IF NOT EXISTS {{db}}.sink_batches
(
    consumer_group String,
    topic String,
    partition UInt32,
    first_offset UInt64,
    last_offset UInt64,
    rows UInt32,
    created_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (consumer_group, topic, partition, first_offset)
TTL toDateTime(created_at) + INTERVAL 30 DAY;

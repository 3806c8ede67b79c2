-- The lineage sink logs whole flushes instead of single ranges: one insert per table per flush
-- (a ClickHouse insert has a fixed cost per table and view it writes, which per-partition
-- inserts multiplied by the partition count). A flush's ranges are logged with its id before the
-- insert (done = 0) and again after it (done = 1); FINAL keeps the latest state per range.
-- A flush logged but not done is redone whole after a crash, under the same token.
CREATE TABLE IF NOT EXISTS {{db}}.sink_log
(
    consumer_group String,
    topic String,
    partition UInt32,
    first_offset UInt64,
    last_offset UInt64,
    flush_id String,
    rows UInt32,
    done UInt8,
    created_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_flush flush_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(done)
ORDER BY (consumer_group, topic, partition, first_offset)
TTL toDateTime(created_at) + INTERVAL 30 DAY;

-- The per-range log of 0002, which sink_log replaces (it only held bookkeeping).
DROP TABLE IF EXISTS {{db}}.sink_batches;

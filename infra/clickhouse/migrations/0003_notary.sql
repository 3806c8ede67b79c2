-- The notary (issue 6): every run's hash chain, the signed digests over chain heads, and the
-- notary's public keys, written by the lineage sink from the notary's topics exactly once (dedup
-- tokens need the window set on every table, as in 0002). ReplacingMergeTree on each key keeps
-- one row per link, digest and key; readers use FINAL.

-- One row per chain link: the event's canonical JSON exactly as it was hashed, in log order per run.
CREATE TABLE IF NOT EXISTS {{db}}.notary_chain
(
    tenant LowCardinality(String),
    run_id String,
    seq UInt64,
    event_id String,
    event_type LowCardinality(String),
    event_hash String,
    prev String,
    chain_hash String,
    source_partition UInt32,
    source_offset UInt64,
    payload String CODEC(ZSTD(3)),
    kafka_partition UInt32,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
ORDER BY (tenant, run_id, seq)
SETTINGS non_replicated_deduplication_window = 10000;

-- One row per signed digest of a tenant: the signed body (canonical JSON), its signature, and the
-- heads its Merkle root covers (canonical JSON array, sorted by run id).
CREATE TABLE IF NOT EXISTS {{db}}.notary_digests
(
    tenant LowCardinality(String),
    seq UInt64,
    issued_at DateTime64(3, 'UTC'),
    key_fingerprint LowCardinality(String),
    previous_signature String,
    heads_root String,
    heads_count UInt32,
    signature String,
    body String,
    heads String CODEC(ZSTD(3)),
    kafka_partition UInt32,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
ORDER BY (tenant, seq)
SETTINGS non_replicated_deduplication_window = 10000;

-- Which digests covered which head of a run: the report's look-up from a run to its digests.
CREATE TABLE IF NOT EXISTS {{db}}.notary_digest_heads
(
    tenant LowCardinality(String),
    run_id String,
    digest_seq UInt64,
    seq UInt64,
    head String
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant, run_id, digest_seq)
SETTINGS non_replicated_deduplication_window = 10000;

-- The notary's public keys as it announced them (GET /v1/notary/public-key); auditors should still
-- obtain the key out of band.
CREATE TABLE IF NOT EXISTS {{db}}.notary_keys
(
    fingerprint String,
    algorithm LowCardinality(String),
    public_key_pem String,
    announced_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY fingerprint
SETTINGS non_replicated_deduplication_window = 10000;

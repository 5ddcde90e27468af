-- 0001: the logs table, partitioned by day on ts.
--
-- Idempotency is on the event id, yet the primary key is (ts, id): a
-- partitioned table's unique constraints must include the partition key.
-- That is enough, because a redelivered event carries the same id AND the
-- same ts (the timestamp is decided once, at the producer, and travels in
-- the Kafka record), so it collides on (ts, id) and ON CONFLICT DO NOTHING
-- drops it.
--
-- There is no default partition: daily partitions logs_pYYYYMMDD are
-- created on demand by the store before it writes.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE logs (
    ts       timestamptz NOT NULL,
    id       uuid        NOT NULL,
    level    smallint    NOT NULL, -- event.Level.Code(): 0 TRACE .. 5 FATAL
    source   text        NOT NULL,
    message  text        NOT NULL,
    metadata jsonb,                -- NULL when absent
    trace_id text,                 -- NULL when empty
    PRIMARY KEY (ts, id)
) PARTITION BY RANGE (ts);

-- Indexes on the parent propagate to every partition. (ts) alone is
-- covered by the primary key.
CREATE INDEX logs_level_ts_idx ON logs (level, ts);
CREATE INDEX logs_source_ts_idx ON logs (source, ts);
CREATE INDEX logs_trace_id_idx ON logs (trace_id) WHERE trace_id IS NOT NULL;
-- Case-insensitive substring search (ILIKE '%kw%') uses the trigram index.
-- It costs ingest speed; accepted for now.
CREATE INDEX logs_message_trgm_idx ON logs USING gin (message gin_trgm_ops);

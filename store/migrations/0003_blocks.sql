-- 0003: storage v2. Logs are kept as compressed, columnar blocks (one row
-- per block of up to tens of thousands of logs) beside a small summary
-- that lets a query skip the blocks that cannot match: the time range,
-- the rows per level, the sources, and bloom filters over the messages'
-- trigrams, the trace ids and the metadata key=value pairs. See
-- store/block for the format.
--
-- Rows of the old per-log table are converted into blocks by the store
-- when it opens (store/convert.go); the table is dropped after.

CREATE SEQUENCE log_blocks_id_seq;

CREATE TABLE log_blocks (
    min_ts      timestamptz NOT NULL, -- the first row's timestamp
    id          bigint      NOT NULL DEFAULT nextval('log_blocks_id_seq'),
    max_ts      timestamptz NOT NULL, -- the last row's timestamp
    row_count   integer     NOT NULL,
    levels      integer[]   NOT NULL, -- rows per level code (TRACE = 1st)
    sources     text[]      NOT NULL, -- distinct, sorted
    merged      boolean     NOT NULL DEFAULT false, -- written by the merger
    msg_bloom   bytea       NOT NULL,
    trace_bloom bytea       NOT NULL,
    meta_bloom  bytea       NOT NULL,
    data        bytea       NOT NULL, -- the block, zstd-compressed by column
    PRIMARY KEY (min_ts, id)
) PARTITION BY RANGE (min_ts);

-- Blocks overlapping a window, newest first. Partitions prune on min_ts.
CREATE INDEX log_blocks_max_ts_idx ON log_blocks (max_ts);
-- The merger's work list.
CREATE INDEX log_blocks_fresh_idx ON log_blocks (min_ts) WHERE NOT merged;

-- Exactly-once without a per-row unique index: the next Kafka offset of
-- every partition whose records are stored, written in the transaction
-- that stores them. A consumer resumes from here, and a redelivered record
-- (an offset below it) is skipped.
CREATE TABLE consumer_offsets (
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- Ids that clients chose themselves (for idempotent retries). Only these
-- events pay for a unique index; ids the producer assigns are unique by
-- construction and redelivery is caught by the offsets above.
CREATE TABLE client_ids (
    id uuid        PRIMARY KEY,
    ts timestamptz NOT NULL -- the event's, for retention
);
CREATE INDEX client_ids_ts_idx ON client_ids (ts);

-- bloom_may_contain tests a block's bloom filter for a query item given as
-- its bit positions before the modulo (store/block: KeywordHashes and
-- friends): false means certainly absent. PL/pgSQL detoasts the filter
-- once on entry, where SQL would fetch it again for every bit.
CREATE FUNCTION bloom_may_contain(bloom bytea, hashes bigint[]) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    bits bigint := length(bloom)::bigint * 8;
    h    bigint;
BEGIN
    IF bits = 0 THEN
        RETURN true;
    END IF;
    FOREACH h IN ARRAY hashes LOOP
        IF get_bit(bloom, h % bits) = 0 THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END
$$;

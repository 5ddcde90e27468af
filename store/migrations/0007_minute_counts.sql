-- 0007: minute counts, one row per (hour, source). A row per (minute,
-- level, source) cost about 28 bytes of table and index and 60 of WAL per
-- log on a sparse week (a quarter of a row per log, each inserted once).
-- Here an hour of one source is one row, its minutes' counts per level
-- encoded compactly (see minutes.go); a write rewrites the rows of the
-- hours it touches. log_rollup_minutes_level holds the counts of all
-- sources, its source always ''. The old tables are converted and dropped
-- by the store when it opens.
CREATE TABLE log_rollup_minutes (
    hour   timestamptz NOT NULL,
    source text        NOT NULL,
    counts bytea       NOT NULL,
    PRIMARY KEY (hour, source)
) WITH (fillfactor = 80);

CREATE TABLE log_rollup_minutes_level (
    hour   timestamptz NOT NULL,
    source text        NOT NULL DEFAULT '' CHECK (source = ''),
    counts bytea       NOT NULL,
    PRIMARY KEY (hour, source)
) WITH (fillfactor = 80);

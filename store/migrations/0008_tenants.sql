-- 0008: tenants. Every block, rollup row and client id belongs to one
-- tenant, and every read names the tenants it may see. Logs stored before
-- belong to the default tenant. A block holds one tenant's logs, so the
-- tenant is a column of the block's row, not of the block's data.
ALTER TABLE log_blocks ADD COLUMN tenant text NOT NULL DEFAULT 'default';
ALTER TABLE log_blocks_fresh ADD COLUMN tenant text NOT NULL DEFAULT 'default';
CREATE OR REPLACE VIEW all_blocks AS
    SELECT * FROM log_blocks
    UNION ALL
    SELECT * FROM log_blocks_fresh;

-- Blocks overlapping a window, newest first, of the tenants asked for.
DROP INDEX log_blocks_max_ts_idx;
CREATE INDEX log_blocks_tenant_max_ts_idx ON log_blocks (tenant, max_ts);

ALTER TABLE log_rollup_hour ADD COLUMN tenant text NOT NULL DEFAULT 'default';
ALTER TABLE log_rollup_hour DROP CONSTRAINT log_rollup_hour_pkey, ADD PRIMARY KEY (tenant, bucket, level, source);
ALTER TABLE log_rollup_hour_level ADD COLUMN tenant text NOT NULL DEFAULT 'default';
ALTER TABLE log_rollup_hour_level DROP CONSTRAINT log_rollup_hour_level_pkey, ADD PRIMARY KEY (tenant, bucket, level);

ALTER TABLE log_rollup_minutes ADD COLUMN tenant text NOT NULL DEFAULT 'default';
ALTER TABLE log_rollup_minutes DROP CONSTRAINT log_rollup_minutes_pkey, ADD PRIMARY KEY (tenant, hour, source);
ALTER TABLE log_rollup_minutes_level ADD COLUMN tenant text NOT NULL DEFAULT 'default';
ALTER TABLE log_rollup_minutes_level DROP CONSTRAINT log_rollup_minutes_level_pkey, ADD PRIMARY KEY (tenant, hour, source);

-- Two tenants may choose the same id for different logs.
ALTER TABLE client_ids ADD COLUMN tenant text NOT NULL DEFAULT 'default';
ALTER TABLE client_ids DROP CONSTRAINT client_ids_pkey, ADD PRIMARY KEY (tenant, id);

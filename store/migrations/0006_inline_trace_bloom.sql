-- 0006: trace id filters stay in the block's row. A trace id search over
-- a week tests hundreds of blocks; out of line, each test fetched its
-- filter from TOAST, which cost more than the test (about 15 us a block).
-- A trace filter is a few kB: MAIN keeps it in the row unless the row
-- would not fit a page. Rows written from now on take it.
ALTER TABLE log_blocks ALTER COLUMN trace_bloom SET STORAGE MAIN;
ALTER TABLE log_blocks_fresh ALTER COLUMN trace_bloom SET STORAGE MAIN;

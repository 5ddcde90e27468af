package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/logengine/logengine/store/logs"
)

// mergeLockKey lets one merger at a time work on the blocks, across
// processes (every consumer runs one).
const mergeLockKey int64 = 0x6c6f67_0004 // "log" + 4

// freshVacuumEvery is how often the merger vacuums the fresh blocks.
const freshVacuumEvery = 5 * time.Second

// mergeMaxInputRows bounds the rows one merge rewrites, so one transaction
// stays short and its memory bounded.
const mergeMaxInputRows = 100_000

// blockRef names a stored block and what a merge needs of its summary.
type blockRef struct {
	minTS, maxTS time.Time
	id           int64
	rows         int
	tenant       string
}

// RunMerger merges fresh blocks into large, time-ordered ones every
// Config.Maintenance.MergeEvery until ctx ends. Only one merger in all
// processes works at a time; the others wait their turn.
func (s *Store) RunMerger(ctx context.Context) error {
	every := s.cfg.Maintenance.MergeEvery
	for {
		n, err := s.MergeOnce(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("block merge failed; trying again later", "err", err)
		}
		wait := every
		if n > 0 && err == nil {
			wait = 0 // more may be waiting
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// MergeOnce merges one partition's fresh blocks (those the writer made
// from batches), with the merged blocks their rows fall among, into
// merged blocks of up to Config.Maintenance.MergeRows rows that do not
// overlap in time. It returns how many fresh blocks it merged; 0 when
// there was nothing to do or another process holds the merge lock.
func (s *Store) MergeOnce(ctx context.Context) (int, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", mergeLockKey).Scan(&locked); err != nil {
		return 0, err
	}
	if !locked {
		return 0, nil
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", mergeLockKey); err != nil {
			conn.Conn().Close(uctx) // closing the session releases the lock
		}
	}()

	fresh, err := s.freshBlocks(ctx, conn.Conn())
	if err != nil || len(fresh) == 0 {
		return 0, err
	}
	period, tenant := s.periodOf(fresh[0].minTS), fresh[0].tenant
	if err := s.ensureDays(ctx, conn.Conn(), []time.Time{period}); err != nil {
		return 0, err
	}
	lo, hi := fresh[0].minTS, fresh[0].maxTS
	for _, b := range fresh {
		lo, hi = minTime(lo, b.minTS), maxTime(hi, b.maxTS)
	}
	inputs := slices.Clone(fresh)
	old, err := s.mergedAmong(ctx, conn.Conn(), tenant, period, lo, hi)
	if err != nil {
		return 0, err
	}
	if rowsOf(old)+rowsOf(inputs) <= mergeMaxInputRows {
		// Rewriting the merged blocks the fresh rows fall among keeps the
		// merged blocks apart in time, so a search reads few of them.
		// When that is too much at once (logs arriving far out of order),
		// the fresh blocks are merged on their own, overlapping.
		inputs = append(inputs, old...)
	}
	start := time.Now()
	var written int
	err = pgx.BeginFunc(ctx, conn.Conn(), func(tx pgx.Tx) error {
		events, err := s.readBlocks(ctx, tx, inputs)
		if err != nil {
			return err
		}
		events = sortedByKey(events)
		var batch pgx.Batch
		for _, n := range mergedSizes(events, s.cfg.Maintenance.MergeRows) {
			blk, err := s.merged.Encode(events[:n])
			if err != nil {
				return err
			}
			queueBlock(&batch, blk, true, tenant)
			events = events[n:]
			written++
		}
		mins, ids := refKeys(inputs)
		batch.Queue(`DELETE FROM log_blocks WHERE (min_ts, id) IN (SELECT * FROM unnest($1::timestamptz[], $2::bigint[]))`, mins, ids)
		batch.Queue(`DELETE FROM log_blocks_fresh WHERE id = ANY($1)`, ids)
		return tx.SendBatch(ctx, &batch).Close()
	})
	if isNoPartition(err) {
		// Our cache said the partition existed, but retention dropped it
		// since: the next pass makes it again.
		s.forgetDays([]time.Time{period})
	}
	if err != nil {
		return 0, fmt.Errorf("store: merge %d blocks: %w", len(inputs), err)
	}
	s.m.blocksMerged.Add(float64(len(inputs)))
	s.m.rowsMerged.Add(float64(rowsOf(inputs)))
	s.m.mergeDuration.Observe(time.Since(start).Seconds())
	s.noteWritten(period)
	// The fresh blocks' space is reused only once vacuumed: often, so
	// that the table stays about the size of what is not merged yet.
	if time.Since(s.freshVacuumed) > freshVacuumEvery {
		if _, err := conn.Exec(ctx, "VACUUM log_blocks_fresh"); err != nil {
			s.log.Warn("vacuum of the fresh blocks failed", "err", err)
		}
		s.freshVacuumed = time.Now()
	}
	s.log.Debug("merged blocks", "fresh", len(fresh), "merged_inputs", len(inputs)-len(fresh),
		"rows", rowsOf(inputs), "blocks_written", written, "duration", time.Since(start))
	return len(fresh), nil
}

// freshBlocks lists the oldest partition's fresh blocks of one tenant (the
// oldest block's), oldest first, as many as one merge takes.
func (s *Store) freshBlocks(ctx context.Context, conn *pgx.Conn) ([]blockRef, error) {
	rows, err := conn.Query(ctx, `SELECT min_ts, max_ts, id, row_count, tenant FROM log_blocks_fresh
		ORDER BY min_ts, id LIMIT 1000`)
	if err != nil {
		return nil, err
	}
	all, err := collectRefs(rows)
	if err != nil || len(all) == 0 {
		return nil, err
	}
	period := s.periodOf(all[0].minTS)
	var out []blockRef
	total := 0
	for _, b := range all {
		if b.tenant != all[0].tenant {
			continue // merged on a later pass
		}
		if !s.periodOf(b.minTS).Equal(period) || (len(out) > 0 && total+b.rows > mergeMaxInputRows) {
			break
		}
		out = append(out, b)
		total += b.rows
	}
	return out, nil
}

// mergedAmong lists the merged blocks of a tenant in a partition that overlap [lo, hi],
// and the last one before lo when it is not full yet, so that it grows.
func (s *Store) mergedAmong(ctx context.Context, conn *pgx.Conn, tenant string, period, lo, hi time.Time) ([]blockRef, error) {
	// A block is full at its row target, or once its compressed data
	// passes a quarter of the raw bound (logs compress at least 4:1):
	// growing it would rewrite megabytes for a few rows.
	args := pgx.NamedArgs{"tenant": tenant, "pstart": period, "pend": period.Add(s.period), "lo": lo, "hi": hi,
		"target": s.cfg.Maintenance.MergeRows, "fullbytes": mergedBlockBytes / 4}
	rows, err := conn.Query(ctx, `SELECT min_ts, max_ts, id, row_count, tenant FROM log_blocks
		WHERE merged AND tenant = @tenant AND min_ts >= @pstart AND min_ts < @pend AND min_ts <= @hi AND max_ts >= @lo
		UNION
		(SELECT min_ts, max_ts, id, row_count, tenant FROM log_blocks
		 WHERE merged AND tenant = @tenant AND min_ts >= @pstart AND min_ts < @pend AND max_ts < @lo AND row_count < @target
		   AND length(data) < @fullbytes
		 ORDER BY max_ts DESC LIMIT 1)`, args)
	if err != nil {
		return nil, err
	}
	return collectRefs(rows)
}

func collectRefs(rows pgx.Rows) ([]blockRef, error) {
	var out []blockRef
	var b blockRef
	_, err := pgx.ForEachRow(rows, []any{&b.minTS, &b.maxTS, &b.id, &b.rows, &b.tenant}, func() error {
		out = append(out, b)
		return nil
	})
	return out, err
}

// readBlocks decodes blocks, locking them for the transaction.
func (s *Store) readBlocks(ctx context.Context, tx pgx.Tx, refs []blockRef) ([]logs.Event, error) {
	mins, ids := refKeys(refs)
	events := make([]logs.Event, 0, rowsOf(refs))
	found := 0
	var (
		id   int64
		data []byte
	)
	for _, q := range []string{
		`SELECT id, data FROM log_blocks WHERE (min_ts, id) IN (SELECT * FROM unnest($1::timestamptz[], $2::bigint[])) FOR UPDATE`,
		`SELECT id, data FROM log_blocks_fresh WHERE id = ANY($2) AND $1::timestamptz[] IS NOT NULL FOR UPDATE`,
	} {
		rows, err := tx.Query(ctx, q, mins, ids)
		if err != nil {
			return nil, err
		}
		_, err = pgx.ForEachRow(rows, []any{&id, &data}, func() error {
			evs, err := s.merged.Decode(data)
			if err != nil {
				return fmt.Errorf("block %d: %w", id, err)
			}
			events = append(events, evs...)
			found++
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if found != len(refs) {
		// Dropped by retention since they were listed: merge nothing.
		return nil, fmt.Errorf("%d of %d blocks are gone", len(refs)-found, len(refs))
	}
	return events, nil
}

func refKeys(refs []blockRef) ([]time.Time, []int64) {
	mins := make([]time.Time, len(refs))
	ids := make([]int64, len(refs))
	for i, r := range refs {
		mins[i], ids[i] = r.minTS, r.id
	}
	return mins, ids
}

func rowsOf(refs []blockRef) int {
	n := 0
	for _, r := range refs {
		n += r.rows
	}
	return n
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// noteWritten marks a period's partition for the next vacuumPartitions.
func (s *Store) noteWritten(period time.Time) {
	s.mu.Lock()
	s.writtenSinceVacuum[s.partitionName(period)] = struct{}{}
	s.mu.Unlock()
}

// vacuumPartitions reclaims the space of the blocks merges replaced, and
// refreshes the planner's statistics, in each partition written into since
// it was last analyzed, by this process or (as PostgreSQL's statistics
// tell) any other. Autovacuum may be off, and is late on fresh partitions
// anyway.
func (s *Store) vacuumPartitions(ctx context.Context, conn *pgx.Conn) error {
	s.mu.Lock()
	written := slices.Collect(maps.Keys(s.writtenSinceVacuum))
	clear(s.writtenSinceVacuum)
	s.mu.Unlock()
	rows, err := conn.Query(ctx, `SELECT s.relname FROM pg_stat_user_tables s
		JOIN pg_inherits i ON i.inhrelid = s.relid
		WHERE i.inhparent = 'log_blocks'::regclass AND (s.n_mod_since_analyze > 0 OR s.n_dead_tup > 0)
		ORDER BY s.relname`)
	if err != nil {
		return fmt.Errorf("list partitions written: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list partitions written: %w", err)
	}
	names = append(names, written...)
	slices.Sort(names)
	for _, n := range slices.Compact(names) {
		if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) "+pgx.Identifier{n}.Sanitize()); err != nil {
			if strings.Contains(err.Error(), "does not exist") {
				continue // dropped by retention meanwhile
			}
			return fmt.Errorf("vacuum %s: %w", n, err)
		}
	}
	return nil
}

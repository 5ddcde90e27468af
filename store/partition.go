package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
)

// partitionLockKey serialises partition DDL between processes (two
// consumers seeing the first event of a new day at once).
const partitionLockKey int64 = 0x6c6f67_0002 // "log" + 2

// periodOf is the start of the partition period holding t. Periods divide
// a UTC day, so they start at UTC midnight and every period after it.
func (s *Store) periodOf(t time.Time) time.Time {
	return t.UTC().Truncate(s.period)
}

// partitionName is the name of the partition starting at d:
// log_blocks_pYYYYMMDD for daily partitions, log_blocks_pYYYYMMDDHH for
// shorter ones.
func (s *Store) partitionName(d time.Time) string {
	if s.period >= 24*time.Hour {
		return fmt.Sprintf("log_blocks_p%04d%02d%02d", d.Year(), int(d.Month()), d.Day())
	}
	return fmt.Sprintf("log_blocks_p%04d%02d%02d%02d", d.Year(), int(d.Month()), d.Day(), d.Hour())
}

// EnsurePartitions creates every partition overlapping [from, to]
// that does not exist yet. Partitions this Store already knows of cost no
// SQL, so calling it on the hot path is cheap.
func (s *Store) EnsurePartitions(ctx context.Context, from, to time.Time) error {
	if to.Before(from) {
		from, to = to, from
	}
	var days []time.Time
	for d := s.periodOf(from); !d.After(to); d = d.Add(s.period) {
		days = append(days, d)
	}
	return s.ensureDays(ctx, s.pool, days)
}

// beginner is a pool or a single connection: maintenance creates and drops
// partitions on the connection holding its lock, so it needs no second one.
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// knowsDay reports whether the partition of period d is known to exist.
func (s *Store) knowsDay(d time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.partitions[s.partitionName(d)]
	return ok
}

// ensureDays creates the partitions of periods (each a periodOf) not
// known to exist.
func (s *Store) ensureDays(ctx context.Context, db beginner, days []time.Time) error {
	for _, d := range days {
		name := s.partitionName(d)
		s.mu.Lock()
		_, ok := s.partitions[name]
		s.mu.Unlock()
		if ok {
			continue
		}
		if err := s.createPartition(ctx, db, name, d); err != nil {
			return fmt.Errorf("store: create partition %s: %w", name, err)
		}
		s.mu.Lock()
		s.partitions[name] = struct{}{}
		s.mu.Unlock()
	}
	return nil
}

// createPartition creates one partition unless it exists. Creators in
// other processes wait on the advisory lock, then see the table and skip;
// duplicate_table would only come from a creator not taking the lock, and
// means the same: the partition is there.
func (s *Store) createPartition(ctx context.Context, db beginner, name string, d time.Time) error {
	table := pgx.Identifier{name}.Sanitize()
	ddl := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s PARTITION OF log_blocks FOR VALUES FROM ('%s') TO ('%s')",
		table, d.Format(time.RFC3339), d.Add(s.period).Format(time.RFC3339))
	// The blocks and their blooms are compressed or random already:
	// stored out of line without another compression attempt, but for
	// the trace filter, small and tested in every block of a trace
	// search, which stays in the row.
	storage := "ALTER TABLE " + table + " ALTER COLUMN data SET STORAGE EXTERNAL, ALTER COLUMN msg_bloom SET STORAGE EXTERNAL, " +
		"ALTER COLUMN trace_bloom SET STORAGE MAIN, ALTER COLUMN meta_bloom SET STORAGE EXTERNAL"
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", partitionLockKey); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, ddl); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, storage)
		return err
	})
	if pgCode(err) == pgerrcode.DuplicateTable {
		return nil
	}
	if err == nil {
		s.log.Debug("ensured partition", "partition", name)
	}
	return err
}

// loadPartitions learns the partitions that already exist, so a restart
// does not re-run DDL for them.
func (s *Store) loadPartitions(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'log_blocks'::regclass`)
	if err != nil {
		return fmt.Errorf("store: list partitions: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("store: list partitions: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		s.partitions[n] = struct{}{}
	}
	return nil
}

// forgetDays drops days from the known set, after PostgreSQL said one of
// their partitions is gone (a retention job may drop old partitions).
func (s *Store) forgetDays(days []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range days {
		delete(s.partitions, s.partitionName(d))
	}
}

package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// maintenanceLockKey makes one process at a time do maintenance, however
// many consumers run.
const maintenanceLockKey int64 = 0x6c6f67_0003 // "log" + 3

// MaintenanceConfig shapes the background upkeep of partitions.
type MaintenanceConfig struct {
	// Every is the pause between passes.
	Every time.Duration
	// Retention drops partitions whose whole range is older than it, with
	// their rollups; 0 keeps everything.
	Retention time.Duration
	// Ahead is how many future partitions exist at all times.
	Ahead int
	// MergeEvery is the merger's pause when it found nothing to merge.
	MergeEvery time.Duration
	// MergeRows is the size of a block the merger writes.
	MergeRows int
}

// RunMaintenance runs a pass now and then every Config.Maintenance.Every
// until ctx ends. A failed pass is logged and tried again later: upkeep
// never stops ingestion.
func (s *Store) RunMaintenance(ctx context.Context) error {
	cfg := s.cfg.Maintenance
	for {
		if err := s.Maintain(ctx, cfg); err != nil && ctx.Err() == nil {
			s.log.Warn("store maintenance failed; trying again later", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(cfg.Every):
		}
	}
}

// Maintain makes one pass, unless another process holds the maintenance
// lock: partitions ahead, retention, then vacuum and fresh statistics of
// the partitions the merger rewrote.
func (s *Store) Maintain(ctx context.Context, cfg MaintenanceConfig) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", maintenanceLockKey).Scan(&locked); err != nil {
		return err
	}
	if !locked {
		return nil
	}
	defer func() {
		// A fresh context: the lock must not outlive a cancelled pass.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", maintenanceLockKey); err != nil {
			conn.Conn().Close(uctx) // closing the session releases the lock
		}
	}()
	now := time.Now().UTC()
	var ahead []time.Time
	for i := 0; i <= max(cfg.Ahead, 1); i++ {
		ahead = append(ahead, s.periodOf(now).Add(time.Duration(i)*s.period))
	}
	if err := s.ensureDays(ctx, conn.Conn(), ahead); err != nil {
		return err
	}
	parts, err := s.listPartitions(ctx, conn.Conn())
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range parts {
		if cfg.Retention > 0 && !p.end.After(now.Add(-cfg.Retention)) {
			errs = append(errs, s.dropPartition(ctx, conn.Conn(), p))
		}
		if ctx.Err() != nil {
			break
		}
	}
	if cfg.Retention > 0 {
		// Client ids are kept as long as the logs: a retry after that is
		// refused at the producer anyway, being older than the retention.
		if _, err := conn.Exec(ctx, "DELETE FROM client_ids WHERE ts < $1", now.Add(-cfg.Retention)); err != nil {
			errs = append(errs, fmt.Errorf("expire client ids: %w", err))
		}
		// A fresh block of logs older than the retention (sent late) goes
		// with them, its rollups too.
		if err := s.expireFresh(ctx, conn.Conn(), now.Add(-cfg.Retention)); err != nil {
			errs = append(errs, fmt.Errorf("expire fresh blocks: %w", err))
		}
	}
	errs = append(errs, s.vacuumPartitions(ctx, conn.Conn()))
	for _, table := range []string{"log_rollup_minutes", "log_rollup_hour", "log_rollup_minutes_level", "log_rollup_hour_level",
		"client_ids", "consumer_offsets", "log_blocks_fresh"} {
		// Autovacuum may be off: the upserts leave dead rows that only a
		// vacuum reclaims, and the planner needs current statistics (and
		// the visibility map, for index-only scans of the rollups).
		if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) "+table); err != nil {
			errs = append(errs, fmt.Errorf("vacuum %s: %w", table, err))
		}
	}
	return errors.Join(errs...)
}

type partition struct {
	name       string
	start, end time.Time
}

// listPartitions reads the partitions from the catalog, oldest first.
func (s *Store) listPartitions(ctx context.Context, conn *pgx.Conn) ([]partition, error) {
	rows, err := conn.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'log_blocks'::regclass ORDER BY c.relname`)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	layout := "log_blocks_p2006010215"
	if s.period >= 24*time.Hour {
		layout = "log_blocks_p20060102"
	}
	var out []partition
	for _, n := range names {
		start, err := time.Parse(layout, n)
		if err != nil {
			continue // not one of ours
		}
		out = append(out, partition{name: n, start: start, end: start.Add(s.period)})
	}
	return out, nil
}

// dropPartition removes an expired partition and its rollups in one
// transaction, so the rollups keep matching the blocks.
// expireFresh deletes the fresh blocks and the rollups older than the
// oldest period the retention keeps, in one transaction: what a late log
// older than the retention left behind its dropped partition.
func (s *Store) expireFresh(ctx context.Context, conn *pgx.Conn, cutoff time.Time) error {
	keep := s.periodOf(cutoff)
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM log_blocks_fresh WHERE max_ts < $1", keep); err != nil {
			return err
		}
		for _, table := range []string{"log_rollup_hour", "log_rollup_hour_level"} {
			if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE bucket < $1", keep); err != nil {
				return err
			}
		}
		for _, table := range []string{"log_rollup_minutes", "log_rollup_minutes_level"} {
			if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE hour < $1", keep); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) dropPartition(ctx context.Context, db beginner, p partition) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", partitionLockKey); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{p.name}.Sanitize()); err != nil {
			return err
		}
		for _, table := range []string{"log_rollup_hour", "log_rollup_hour_level"} {
			if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE bucket >= $1 AND bucket < $2", p.start, p.end); err != nil {
				return err
			}
		}
		// Partition periods are whole hours: an hour's row lies in one.
		for _, table := range []string{"log_rollup_minutes", "log_rollup_minutes_level"} {
			if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE hour >= $1 AND hour < $2", p.start, p.end); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("drop expired partition %s: %w", p.name, err)
	}
	s.mu.Lock()
	delete(s.partitions, p.name)
	s.mu.Unlock()
	s.m.partitionsDropped.Inc()
	s.log.Info("dropped expired partition", "partition", p.name, "end", p.end)
	return nil
}

// checkPeriod records the partition period on first use and refuses
// another one later: partitions of two periods would overlap.
func (s *Store) checkPeriod(ctx context.Context) error {
	want := s.period.String()
	var got string
	err := s.pool.QueryRow(ctx, `INSERT INTO store_settings (key, value) VALUES ('partition_period', $1)
		ON CONFLICT (key) DO UPDATE SET value = store_settings.value RETURNING value`, want).Scan(&got)
	if err != nil {
		return fmt.Errorf("store: partition period: %w", err)
	}
	if got != want {
		return fmt.Errorf("store: this database is partitioned by %s; --partition-period %s cannot change it", got, want)
	}
	return nil
}

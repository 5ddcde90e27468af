package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
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
	// their rollups; 0 keeps everything. SetTenantRetention overrides it
	// for some tenants.
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
	classes := retentionClasses(cfg.Retention, s.TenantRetention())
	longest := time.Duration(0) // the longest retention; 0 while one keeps everything
	for i, c := range classes {
		if c.keep == 0 {
			longest = 0
			break
		}
		if i == 0 || c.keep > longest {
			longest = c.keep
		}
	}
	var errs []error
	for _, p := range parts {
		if longest > 0 && !p.end.After(now.Add(-longest)) {
			errs = append(errs, s.dropPartition(ctx, conn.Conn(), p))
			continue
		}
		// A partition some tenants still keep loses only the logs of
		// those whose retention it passed.
		for _, c := range classes {
			if c.keep > 0 && !p.end.After(now.Add(-c.keep)) {
				errs = append(errs, s.expireTenants(ctx, conn.Conn(), p, c))
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	for _, c := range classes {
		if c.keep == 0 {
			continue
		}
		cutoff := now.Add(-c.keep)
		where, args := c.where()
		args["cutoff"] = cutoff
		// Client ids are kept as long as the logs: a retry after that is
		// refused at the producer anyway, being older than the retention.
		if _, err := conn.Exec(ctx, "DELETE FROM client_ids WHERE ts < @cutoff AND "+where, args); err != nil {
			errs = append(errs, fmt.Errorf("expire client ids: %w", err))
		}
		// A fresh block of logs older than the retention (sent late) goes
		// with them, its rollups too.
		if err := s.expireFresh(ctx, conn.Conn(), cutoff, c); err != nil {
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

// retentionClass is the tenants that share one retention: those named,
// or with except every tenant but the ones named there (those of the
// global retention).
type retentionClass struct {
	keep    time.Duration // 0 keeps everything
	tenants []string
	except  bool
}

// where is the SQL condition on a tenant column that selects the class.
func (c retentionClass) where() (string, pgx.NamedArgs) {
	args := pgx.NamedArgs{"class_tenants": c.tenants}
	if c.except {
		return "NOT (tenant = ANY(@class_tenants::text[]))", args
	}
	return "tenant = ANY(@class_tenants::text[])", args
}

// retentionClasses groups the tenants by retention: one class per
// override, and every other tenant under the global retention.
func retentionClasses(global time.Duration, overrides map[string]time.Duration) []retentionClass {
	byKeep := map[time.Duration][]string{}
	named := make([]string, 0, len(overrides))
	for t, keep := range overrides {
		byKeep[keep] = append(byKeep[keep], t)
		named = append(named, t)
	}
	slices.Sort(named)
	out := []retentionClass{{keep: global, tenants: named, except: true}}
	for _, keep := range slices.Sorted(maps.Keys(byKeep)) {
		out = append(out, retentionClass{keep: keep, tenants: slices.Sorted(slices.Values(byKeep[keep]))})
	}
	return out
}

// expireTenants deletes a class's blocks in a partition the class's
// retention has passed, with their rollups, in one transaction.
func (s *Store) expireTenants(ctx context.Context, conn *pgx.Conn, p partition, c retentionClass) error {
	where, args := c.where()
	args["pstart"], args["pend"] = p.start, p.end
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM "+pgx.Identifier{p.name}.Sanitize()+" WHERE "+where, args); err != nil {
			return err
		}
		return deleteRollups(ctx, tx, "@pstart", where, args)
	})
	if err != nil {
		return fmt.Errorf("expire tenants' logs in partition %s: %w", p.name, err)
	}
	return nil
}

// deleteRollups deletes the rollups of the tenants where selects, before
// @pend and from the parameter from on (everything before @pend when from
// is ""). Partition periods are whole hours, so an hour's row lies in one.
func deleteRollups(ctx context.Context, tx pgx.Tx, from, where string, args pgx.NamedArgs) error {
	for _, r := range []struct{ table, col string }{
		{"log_rollup_hour", "bucket"}, {"log_rollup_hour_level", "bucket"},
		{"log_rollup_minutes", "hour"}, {"log_rollup_minutes_level", "hour"},
	} {
		cond := r.col + " < @pend AND " + where
		if from != "" {
			cond = r.col + " >= " + from + " AND " + cond
		}
		if _, err := tx.Exec(ctx, "DELETE FROM "+r.table+" WHERE "+cond, args); err != nil {
			return err
		}
	}
	return nil
}

// expireFresh deletes a class's fresh blocks and rollups older than the
// oldest period its retention keeps, in one transaction: what a late log
// older than the retention left behind its dropped partition.
func (s *Store) expireFresh(ctx context.Context, conn *pgx.Conn, cutoff time.Time, c retentionClass) error {
	where, args := c.where()
	args["pend"] = s.periodOf(cutoff)
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM log_blocks_fresh WHERE max_ts < @pend AND "+where, args); err != nil {
			return err
		}
		return deleteRollups(ctx, tx, "", where, args)
	})
}

// dropPartition removes an expired partition and its rollups in one
// transaction, so the rollups keep matching the blocks.

func (s *Store) dropPartition(ctx context.Context, db beginner, p partition) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", partitionLockKey); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{p.name}.Sanitize()); err != nil {
			return err
		}
		return deleteRollups(ctx, tx, "@pstart", "true", pgx.NamedArgs{"pstart": p.start, "pend": p.end})
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

// tenantRetention holds the per-tenant retention overrides.
type tenantRetention = atomic.Pointer[map[string]time.Duration]

// SetTenantRetention replaces the tenants whose retention differs from
// Config.Maintenance.Retention (0 keeps a tenant's logs forever). The
// next maintenance pass applies them: a partition is dropped once every
// tenant's retention has passed it; before that, the logs of the tenants
// whose retention has passed are deleted from it.
func (s *Store) SetTenantRetention(overrides map[string]time.Duration) {
	m := maps.Clone(overrides)
	s.tenantRetention.Store(&m)
}

// TenantRetention returns the overrides SetTenantRetention set.
func (s *Store) TenantRetention() map[string]time.Duration {
	if m := s.tenantRetention.Load(); m != nil {
		return *m
	}
	return nil
}

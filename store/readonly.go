package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// OpenReadOnly opens a Store that only reads: a streaming replica's, for
// the gateway's searches, statistics and histograms. Unlike Open it
// creates nothing and changes nothing (no database, no migrations, no
// conversions, no partitions): it checks that the database holds the
// schema this binary reads, and takes the partition period the database
// was created with. Every session is read-only, so even a URL naming a
// primary by mistake cannot write. reg may be nil.
func OpenReadOnly(ctx context.Context, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	return openStore(ctx, cfg, logger, reg, true)
}

// readOnlySession makes every session of the pool refuse writes.
func readOnlySession(pcfg *pgxpool.Config) {
	pcfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
}

// openReadOnly is the part of OpenReadOnly that needs a working Store.
func (s *Store) openReadOnly(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	want := ms[len(ms)-1].version
	var (
		have   int
		period *string
	)
	err = s.pool.QueryRow(ctx, `SELECT (SELECT coalesce(max(version), 0) FROM schema_migrations),
		(SELECT value FROM store_settings WHERE key = 'partition_period')`).Scan(&have, &period)
	if pgCode(err) == pgerrcode.UndefinedTable || errors.Is(err, pgx.ErrNoRows) || (err == nil && period == nil) {
		return fmt.Errorf("store: %s holds no logengine schema yet: open the primary first (it migrates)", s.target)
	}
	if err != nil {
		return fmt.Errorf("store: read the schema version at %s: %w", s.target, err)
	}
	if have < want {
		return fmt.Errorf("store: %s has schema version %d, this binary reads %d: migrate the primary first", s.target, have, want)
	}
	// The database's period, not the flag's: the primary fixed it.
	d, err := time.ParseDuration(*period)
	if err == nil {
		err = ValidPartitionPeriod(d)
	}
	if err != nil {
		return fmt.Errorf("store: partition period at %s: %w", s.target, err)
	}
	s.period, s.cfg.PartitionPeriod = d, d
	return nil
}

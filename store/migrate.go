package store

import (
	"cmp"
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrateLockKey serialises migrations across processes. Advisory locks are
// per database, so the key only has to be unique within logengine.
const migrateLockKey int64 = 0x6c6f67_0001 // "log" + 1

type migration struct {
	version int
	name    string
	sql     string
}

// migrations lists the embedded files in version order. A file is named
// NNNN_description.sql; NNNN is its version.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		base := path.Base(name)
		digits, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(digits)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive version number", base)
		}
		body, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(body)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// Migrate applies the embedded migrations not yet recorded in
// schema_migrations, in order, each in its own transaction. Processes
// starting together take turns on an advisory lock, so each migration runs
// once. Migrate is idempotent.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, m := range ms {
		ran := false
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			// Under the lock even CREATE TABLE IF NOT EXISTS is safe: run
			// concurrently it can fail on pg_type's unique index.
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLockKey); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version int PRIMARY KEY,
				applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
				return err
			}
			var applied bool
			if err := tx.QueryRow(ctx,
				"SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)", m.version,
			).Scan(&applied); err != nil || applied {
				return err
			}
			// No arguments: pgx uses the simple protocol, which allows
			// several statements in one file.
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", m.version); err != nil {
				return err
			}
			ran = true
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: migration %s: %w", m.name, err)
		}
		if ran {
			s.log.Info("applied migration", "version", m.version, "file", m.name)
		}
	}
	return nil
}

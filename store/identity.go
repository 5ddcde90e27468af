package store

import (
	"context"
	"fmt"
	"strconv"
)

// Identity names the database this store reads: the PostgreSQL cluster's
// system identifier (fixed when the cluster was created, the same on its
// physical replicas) and the database's name. Caches key answers by it,
// so that deployments sharing one Redis never serve each other's.
func (s *Store) Identity(ctx context.Context) (string, error) {
	var (
		system int64
		name   string
	)
	err := s.pool.QueryRow(ctx, `SELECT system_identifier, current_database() FROM pg_control_system()`).Scan(&system, &name)
	if err != nil {
		return "", fmt.Errorf("store: identity of the database at %s: %w", s.target, err)
	}
	return strconv.FormatUint(uint64(system), 10) + "/" + name, nil
}

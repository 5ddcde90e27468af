package store

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/logengine/logengine/store/storetest"
)

// Reads run under a statement timeout that PostgreSQL enforces itself, and
// with custom plans.
func TestReadStatementTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := storetest.NewURL(t)
	for _, tc := range []struct {
		cfg  time.Duration
		show string
	}{
		{DefaultConfig().StatementTimeout, "10s"},
		{150 * time.Millisecond, "150ms"},
		{0, "0"}, // none
		{-1, "0"},
	} {
		s, err := Open(ctx, Config{URL: dbURL, StatementTimeout: tc.cfg}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var show, planMode string
		err = s.read(ctx, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT current_setting('statement_timeout'), current_setting('plan_cache_mode')").
				Scan(&show, &planMode)
		})
		if err != nil || show != tc.show || planMode != "force_custom_plan" {
			t.Errorf("StatementTimeout %v: statement_timeout %q, plan_cache_mode %q (err %v), want %q, force_custom_plan",
				tc.cfg, show, planMode, err, tc.show)
		}
		s.Close()
	}

	s, err := Open(ctx, Config{URL: dbURL, StatementTimeout: 100 * time.Millisecond, MaxConns: 1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var before string
	if err := s.pool.QueryRow(ctx, "SHOW statement_timeout").Scan(&before); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.read(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT pg_sleep(10)")
		return err
	})
	if code := pgCode(err); code != "57014" { // query_canceled
		t.Fatalf("slow read: err %v (SQLSTATE %q), want 57014", err, code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("slow read took %v", d)
	}
	if IsDataError(err) {
		t.Error("a timeout is a data error")
	}
	// The single connection survived and the timeout did not leak out of
	// the read transaction.
	var after string
	if err := s.pool.QueryRow(ctx, "SHOW statement_timeout").Scan(&after); err != nil || after != before {
		t.Errorf("after read: statement_timeout %q (err %v), want %q", after, err, before)
	}
	if s.pool.Stat().TotalConns() != 1 {
		t.Errorf("pool has %d connections, want the same 1", s.pool.Stat().TotalConns())
	}
}

package store_test

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/logengine/logengine/store"
	"github.com/logengine/logengine/store/logs"
	"github.com/logengine/logengine/store/storetest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// open opens a Store on a fresh database and closes it when t ends.
func open(t testing.TB) (*store.Store, string) {
	t.Helper()
	dbURL := storetest.NewURL(t)
	return openURL(t, dbURL), dbURL
}

func openURL(t testing.TB, dbURL string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), store.Config{URL: dbURL}, nil, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// sqlConn is a plain connection to the database for checks behind the
// store's back.
func sqlConn(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// snapshot decodes every stored block into a temporary table logs on conn
// (one row per log, as the store kept them before blocks), so that tests
// can check the store's answers and rollups with plain SQL.
func snapshot(t testing.TB, conn *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	var src [][]any
	for _, e := range storetest.StoredLogs(t, conn.Config().ConnString()) {
		var meta, trace any
		if e.Metadata != nil {
			meta = string(e.Metadata)
		}
		if e.TraceID != "" {
			trace = e.TraceID
		}
		src = append(src, []any{e.Timestamp, e.ID, e.Level.Code(), e.Source, e.Message, meta, trace})
	}
	for _, sql := range []string{
		`CREATE TEMP TABLE IF NOT EXISTS logs (ts timestamptz, id uuid, level smallint, source text,
			message text, metadata jsonb, trace_id text)`,
		"TRUNCATE logs",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"logs"}, []string{"ts", "id", "level", "source", "message", "metadata", "trace_id"},
		pgx.CopyFromRows(src)); err != nil {
		t.Fatalf("copy snapshot: %v", err)
	}
	minuteSnapshot(t, conn)
}

// minuteSnapshot decodes the minute rollups (a row per hour and source)
// into temporary tables log_rollup_minute and log_rollup_minute_level of
// a row per (bucket, level, source), which SQL can compare with the logs.
func minuteSnapshot(t testing.TB, conn *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	for _, tb := range []struct{ from, to string }{
		{"log_rollup_minutes", "log_rollup_minute"},
		{"log_rollup_minutes_level", "log_rollup_minute_level"},
	} {
		rows, err := conn.Query(ctx, "SELECT hour, source, counts FROM "+tb.from)
		if err != nil {
			t.Fatalf("read %s: %v", tb.from, err)
		}
		var (
			src    [][]any
			hour   time.Time
			source string
			counts []byte
		)
		_, err = pgx.ForEachRow(rows, []any{&hour, &source, &counts}, func() error {
			cells, err := store.MinuteCounts(counts)
			if err != nil {
				return err
			}
			for cell, n := range cells {
				src = append(src, []any{hour.Add(time.Duration(cell/logs.NumLevels) * time.Minute), int16(cell % logs.NumLevels), source, n})
			}
			return nil
		})
		if err != nil {
			t.Fatalf("decode %s: %v", tb.from, err)
		}
		for _, sql := range []string{
			"CREATE TEMP TABLE IF NOT EXISTS " + tb.to + " (bucket timestamptz, level smallint, source text, count bigint)",
			"TRUNCATE " + tb.to,
		} {
			if _, err := conn.Exec(ctx, sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{tb.to}, []string{"bucket", "level", "source", "count"}, pgx.CopyFromRows(src)); err != nil {
			t.Fatalf("copy %s: %v", tb.to, err)
		}
	}
}

// mergeAll runs the merger until no fresh block is left, so that every
// block is in its partition.
func mergeAll(t testing.TB, s *store.Store) {
	t.Helper()
	for {
		n, err := s.MergeOnce(context.Background())
		if err != nil {
			t.Fatalf("MergeOnce: %v", err)
		}
		if n == 0 {
			return
		}
	}
}

// storedCount is how many logs the blocks hold.
func storedCount(t testing.TB, conn *pgx.Conn) int64 {
	t.Helper()
	return queryInt(t, conn, "SELECT coalesce(sum(row_count), 0)::bigint FROM all_blocks")
}

func queryInt(t testing.TB, conn *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// missingURL is the URL of a database that does not exist yet on the test
// server; it is dropped when t ends.
func missingURL(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(storetest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/") + "_new"
	admin := *u
	u.Path = "/" + name
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), admin.String())
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(),
			"DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return u.String()
}

func mustWrite(t testing.TB, s *store.Store, events ...logs.Event) int64 {
	t.Helper()
	n, err := s.WriteBatch(context.Background(), events)
	if err != nil {
		t.Fatalf("WriteBatch: %v", err)
	}
	return n
}

func ev(ts time.Time, level logs.Level, source, message string) logs.Event {
	return logs.Event{ID: uuid.New(), Timestamp: ts, Level: level, Source: source, Message: message}
}

func TestOpenCreatesDatabaseAndMigrates(t *testing.T) {
	t.Parallel()
	dbURL := missingURL(t)
	s := openURL(t, dbURL)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	conn := sqlConn(t, dbURL)
	if n := queryInt(t, conn, "SELECT count(*) FROM schema_migrations WHERE version = 1"); n != 1 {
		t.Errorf("migration 1 recorded %d times, want 1", n)
	}
	if n := storedCount(t, conn); n != 0 {
		t.Errorf("logs has %d rows, want 0", n)
	}
	today := time.Now().UTC()
	for _, d := range []time.Time{today.AddDate(0, 0, -1), today, today.AddDate(0, 0, 1)} {
		name := "log_blocks_p" + d.Format("20060102")
		if n := queryInt(t, conn, "SELECT count(*) FROM pg_inherits WHERE inhrelid = to_regclass($1)", name); n != 1 {
			t.Errorf("partition %s missing", name)
		}
	}
	// Migrating again is a no-op.
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	files, _ := filepath.Glob("migrations/*.sql")
	if n := queryInt(t, conn, "SELECT count(*) FROM schema_migrations"); n != int64(len(files)) || n == 0 {
		t.Errorf("schema_migrations has %d rows, want one per migration file (%d)", n, len(files))
	}
}

func TestOpenTwiceAndMigrateConcurrently(t *testing.T) {
	t.Parallel()
	dbURL := storetest.NewURL(t)
	s1 := openURL(t, dbURL)
	s2 := openURL(t, dbURL)

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, s := range []*store.Store{s1, s2, s1, s2} {
		wg.Go(func() { errs <- s.Migrate(context.Background()) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Migrate: %v", err)
		}
	}
	conn := sqlConn(t, dbURL)
	files, _ := filepath.Glob("migrations/*.sql")
	if n := queryInt(t, conn, "SELECT count(*) FROM schema_migrations"); n != int64(len(files)) || n == 0 {
		t.Errorf("schema_migrations has %d rows, want one per migration file (%d)", n, len(files))
	}
}

// Several processes starting at once against a database that does not
// exist yet: all must succeed.
func TestOpenConcurrentlyOnMissingDatabase(t *testing.T) {
	t.Parallel()
	dbURL := missingURL(t)
	var wg sync.WaitGroup
	stores := make([]*store.Store, 4)
	errs := make([]error, len(stores))
	for i := range stores {
		wg.Go(func() {
			stores[i], errs[i] = store.Open(context.Background(), store.Config{URL: dbURL}, nil, nil)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open #%d: %v", i, err)
			continue
		}
		stores[i].Close()
	}
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := store.Open(ctx, store.Config{URL: "postgres://postgres:s3cret@127.0.0.1:1/logengine?sslmode=disable"}, nil, nil)
	if err == nil {
		t.Fatal("Open on a closed port succeeded")
	}
	msg := err.Error()
	t.Log(msg)
	if !strings.Contains(msg, "127.0.0.1:1/logengine") {
		t.Errorf("error %q does not name the server and database", msg)
	}
	if strings.Contains(msg, "s3cret") {
		t.Errorf("error %q leaks the password", msg)
	}
	if store.IsDataError(err) {
		t.Errorf("connection error %q is a data error", msg)
	}

	_, err = store.Open(ctx, store.Config{URL: "postgres://postgres:s3cret@127.0.0.1:notaport/logengine"}, nil, nil)
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Open on a malformed URL: %v", err)
	}
}

func TestMetricsRegistries(t *testing.T) {
	t.Parallel()
	dbURL := storetest.NewURL(t)
	reg1, reg2 := prometheus.NewRegistry(), prometheus.NewRegistry()
	s1, err := store.Open(context.Background(), store.Config{URL: dbURL}, nil, reg1)
	if err != nil {
		t.Fatalf("Open with reg1: %v", err)
	}
	defer s1.Close()
	s2, err := store.Open(context.Background(), store.Config{URL: dbURL}, nil, reg2)
	if err != nil {
		t.Fatalf("Open with reg2: %v", err)
	}
	defer s2.Close()

	// The same registry twice is an error, not a panic.
	_, err = store.Open(context.Background(), store.Config{URL: dbURL}, nil, reg1)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Fatalf("Open on a used registry: got %v, want AlreadyRegisteredError", err)
	}

	now := time.Now().UTC()
	mustWrite(t, s1, ev(now, logs.LevelInfo, "api", "a"), ev(now, logs.LevelInfo, "api", "b"))
	if _, err := s1.Search(context.Background(), searchAll(now, now, 10)); err != nil {
		t.Fatalf("Search: %v", err)
	}
	got := gather(t, reg1)
	want := map[string]float64{
		"store_rows_written_total":     2,
		"store_write_duration_seconds": 1, // sample count
		"store_query_duration_seconds": 1, // the search
		"store_pool_total_conns":       -1,
		"store_pool_acquired_conns":    -1,
	}
	for name, v := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("metric %s not registered", name)
			continue
		}
		if v >= 0 && g != v {
			t.Errorf("%s = %v, want %v", name, g, v)
		}
	}
	if got := gather(t, reg2)["store_rows_written_total"]; got != 0 {
		t.Errorf("reg2 rows written = %v, want 0", got)
	}
}

// gather sums each metric family: counter and gauge values, histogram
// sample counts.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := make(map[string]float64)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				out[mf.GetName()] += m.Counter.GetValue()
			case m.Gauge != nil:
				out[mf.GetName()] += m.Gauge.GetValue()
			case m.Histogram != nil:
				out[mf.GetName()] += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

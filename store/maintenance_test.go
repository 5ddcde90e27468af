package store_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/logengine/logengine/resilience/resiliencetest"
	"github.com/logengine/logengine/store"
	"github.com/logengine/logengine/store/logs"
	"github.com/logengine/logengine/store/storetest"
	"github.com/prometheus/client_golang/prometheus"
)

// maintenanceLock is the advisory lock key Maintain takes ("log" + 3).
const maintenanceLock int64 = 0x6c6f670003

// mergeLock is the advisory lock key MergeOnce takes ("log" + 4).
const mergeLock int64 = 0x6c6f670004

// openConfig opens a Store with cfg and closes it when t ends. reg may be
// nil.
func openConfig(t *testing.T, cfg store.Config, reg prometheus.Registerer) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), cfg, nil, reg)
	if err != nil {
		t.Fatalf("Open %+v: %v", cfg, err)
	}
	t.Cleanup(s.Close)
	return s
}

// hourly names the partition of the hour holding ts.
func hourly(ts time.Time) string { return "log_blocks_p" + ts.UTC().Format("2006010215") }

// hourlyPartitions lists the partitions of logs and the end of each one's
// range (one hour after the start its name gives).
func hourlyPartitions(t *testing.T, conn *pgx.Conn) map[string]time.Time {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'log_blocks'::regclass`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Time{}
	for _, n := range names {
		start, err := time.Parse("2006010215", strings.TrimPrefix(n, "log_blocks_p"))
		if err != nil {
			t.Fatalf("partition %s is not hourly: %v", n, err)
		}
		out[n] = start.Add(time.Hour)
	}
	return out
}

func TestRetentionDropsExpiredPartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := storetest.NewURL(t)
	conn := sqlConn(t, dbURL)
	reg := prometheus.NewRegistry()
	cfg := store.Config{URL: dbURL, PartitionPeriod: time.Hour}
	s := openConfig(t, cfg, reg)

	now := time.Now().UTC().Truncate(time.Microsecond)
	oldHour := now.Add(-30 * time.Hour).Truncate(time.Hour)
	midHour := now.Add(-5 * time.Hour).Truncate(time.Hour)
	var batch []logs.Event
	for _, h := range []time.Time{oldHour, midHour} {
		for _, off := range []time.Duration{0, 17*time.Minute + time.Microsecond, time.Hour - time.Microsecond} {
			batch = append(batch, ev(h.Add(off), logs.LevelError, "api", "x"), ev(h.Add(off), logs.LevelInfo, "db", "y"))
		}
	}
	batch = append(batch, ev(now, logs.LevelInfo, "api", "now"), ev(now.Truncate(time.Minute), logs.LevelWarn, "api", "now"))
	mustWrite(t, s, batch...)
	// A second store, as another consumer would be, knowing the old
	// partition from before it is dropped.
	stale := openConfig(t, cfg, nil)

	before := time.Now().UTC()
	if err := s.Maintain(ctx, store.MaintenanceConfig{Retention: 10 * time.Hour, Ahead: 2}); err != nil {
		t.Fatalf("Maintain: %v", err)
	}
	after := time.Now().UTC()

	parts := hourlyPartitions(t, conn)
	if _, ok := parts[hourly(oldHour)]; ok {
		t.Errorf("expired partition %s still exists", hourly(oldHour))
	}
	for name, end := range parts {
		if !end.After(before.Add(-10 * time.Hour)) {
			t.Errorf("partition %s ended %s, over 10h ago, yet remains", name, end)
		}
	}
	if _, ok := parts[hourly(midHour)]; !ok {
		t.Errorf("partition %s (5h ago) was dropped", hourly(midHour))
	}
	// Ahead: the current partition and two more exist.
	for p := after.Truncate(time.Hour); !p.After(before.Add(2 * time.Hour)); p = p.Add(time.Hour) {
		if _, ok := parts[hourly(p)]; !ok {
			t.Errorf("partition %s (current or ahead) missing", hourly(p))
		}
	}
	minuteSnapshot(t, conn)
	for _, table := range []string{"log_rollup_minute", "log_rollup_hour"} {
		if n := queryInt(t, conn, "SELECT count(*) FROM "+table+" WHERE bucket >= $1 AND bucket < $2",
			oldHour, oldHour.Add(time.Hour)); n != 0 {
			t.Errorf("%s keeps %d rows of the dropped partition", table, n)
		}
		if n := queryInt(t, conn, "SELECT count(*) FROM "+table+" WHERE bucket >= $1 AND bucket < $2",
			midHour, midHour.Add(time.Hour)); n == 0 {
			t.Errorf("%s lost the rows of the kept partition %s", table, hourly(midHour))
		}
	}
	if n := storedCount(t, conn); n != 8 {
		t.Errorf("logs holds %d rows after retention, want 8", n)
	}
	checkRollups(t, conn, "after retention")
	st, err := s.Stats(ctx, logs.Stats{Start: oldHour.Add(-time.Hour), End: now})
	if err != nil || st.Total != 8 {
		t.Errorf("Stats after retention: total %d (err %v), want 8", st.Total, err)
	}
	if n := gather(t, reg)["store_partitions_dropped_total"]; n < 1 {
		t.Errorf("store_partitions_dropped_total = %v, want at least 1", n)
	}

	// Writers recreate the dropped partition, whether they knew it was
	// dropped or not.
	if n := mustWrite(t, stale, ev(oldHour.Add(5*time.Minute), logs.LevelInfo, "api", "late")); n != 1 {
		t.Errorf("store with a stale partition list inserted %d, want 1", n)
	}
	// Its merger, believing the partition still exists, fails once, then
	// makes it again.
	if _, err := stale.MergeOnce(ctx); err == nil || !strings.Contains(err.Error(), "no partition") {
		t.Errorf("merge into a dropped partition: %v, want the error that makes it forget the partition", err)
	}
	mergeAll(t, stale)
	if n := mustWrite(t, s, ev(oldHour.Add(6*time.Minute), logs.LevelInfo, "api", "later")); n != 1 {
		t.Errorf("store that dropped the partition inserted %d, want 1", n)
	}
	mergeAll(t, s)
	if n := queryInt(t, conn, "SELECT sum(row_count) FROM "+hourly(oldHour)); n != 2 {
		t.Errorf("recreated partition holds %d rows, want 2", n)
	}
	checkRollups(t, conn, "after writing into the dropped period")
}

func TestMaintainOneProcessAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := storetest.NewURL(t)
	conn := sqlConn(t, dbURL)
	cfg := store.Config{URL: dbURL, PartitionPeriod: time.Hour}
	s := openConfig(t, cfg, nil)
	now := time.Now().UTC().Truncate(time.Microsecond)
	oldHour := now.Add(-30 * time.Hour).Truncate(time.Hour)
	closed := now.Add(-3 * time.Hour).Truncate(time.Hour)
	mustWrite(t, s, ev(oldHour, logs.LevelInfo, "api", "old"), ev(closed, logs.LevelInfo, "api", "closed"))
	mcfg := store.MaintenanceConfig{Retention: 10 * time.Hour, Ahead: 4}

	// Another process holds the maintenance lock.
	holder := sqlConn(t, dbURL)
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1)", maintenanceLock); err != nil {
		t.Fatal(err)
	}
	other := openConfig(t, cfg, nil)
	for _, st := range []*store.Store{s, other} {
		if err := st.Maintain(ctx, mcfg); err != nil {
			t.Fatalf("Maintain while locked: %v", err)
		}
	}
	parts := hourlyPartitions(t, conn)
	if _, ok := parts[hourly(oldHour)]; !ok {
		t.Error("Maintain dropped a partition while another process held the lock")
	}
	// Open made partitions up to the next hour; Ahead 4 would add more.
	far := time.Now().UTC().Add(3 * time.Hour)
	if _, ok := parts[hourly(far)]; ok {
		t.Errorf("Maintain created %s while another process held the lock", hourly(far))
	}

	var released bool
	if err := holder.QueryRow(ctx, "SELECT pg_advisory_unlock($1)", maintenanceLock).Scan(&released); err != nil || !released {
		t.Fatalf("unlock: %v %v", released, err)
	}
	before := time.Now().UTC()
	if err := s.Maintain(ctx, mcfg); err != nil {
		t.Fatalf("Maintain: %v", err)
	}
	parts = hourlyPartitions(t, conn)
	if _, ok := parts[hourly(oldHour)]; ok {
		t.Error("expired partition not dropped once the lock was free")
	}
	if _, ok := parts[hourly(closed)]; !ok {
		t.Error("a partition within the retention was dropped")
	}
	if _, ok := parts[hourly(before.Add(4*time.Hour))]; !ok {
		t.Errorf("partition %s (4 ahead) missing", hourly(before.Add(4*time.Hour)))
	}
	// Maintain let go of the lock.
	var got bool
	if err := holder.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", maintenanceLock).Scan(&got); err != nil || !got {
		t.Fatalf("lock after Maintain: %v %v; Maintain kept it", got, err)
	}
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_unlock($1)", maintenanceLock); err != nil {
		t.Fatal(err)
	}
}

// Several processes maintaining at once: no errors, each expired
// partition dropped once.
func TestMaintainConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := storetest.NewURL(t)
	conn := sqlConn(t, dbURL)
	cfg := store.Config{URL: dbURL, PartitionPeriod: time.Hour}
	regs := make([]*prometheus.Registry, 4)
	stores := make([]*store.Store, len(regs))
	for i := range regs {
		regs[i] = prometheus.NewRegistry()
		stores[i] = openConfig(t, cfg, regs[i])
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	for h := 2; h <= 40; h += 3 {
		mustWrite(t, stores[0], ev(now.Add(-time.Duration(h)*time.Hour), logs.LevelInfo, "api", "x"))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(stores))
	for i, s := range stores {
		wg.Go(func() {
			errs[i] = s.Maintain(ctx, store.MaintenanceConfig{Retention: 20 * time.Hour, Ahead: 3})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Maintain %d: %v", i, err)
		}
	}
	dropped := 0.0
	for _, reg := range regs {
		dropped += gather(t, reg)["store_partitions_dropped_total"]
	}
	if dropped != 6 { // the hours 23, 26, …, 38 ago: the one 20 hours ago ends later
		t.Errorf("%v partitions dropped, want 6", dropped)
	}
	checkRollups(t, conn, "after concurrent maintenance")
}

// A pool of one connection (--postgres-max-conns 1 is accepted) must not
// deadlock: Maintain holds a connection for the lock while it creates and
// drops partitions.
func TestMaintainWithOneConnection(t *testing.T) {
	t.Parallel()
	dbURL := storetest.NewURL(t)
	conn := sqlConn(t, dbURL)
	s := openConfig(t, store.Config{URL: dbURL, PartitionPeriod: time.Hour, MaxConns: 1}, nil)
	now := time.Now().UTC()
	oldHour := now.Add(-30 * time.Hour).Truncate(time.Hour)
	mustWrite(t, s, ev(oldHour, logs.LevelInfo, "api", "old"))

	// A generous bound that only a deadlock reaches.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Maintain(ctx, store.MaintenanceConfig{Retention: 10 * time.Hour, Ahead: 3}); err != nil {
		t.Errorf("Maintain with MaxConns 1: %v", err)
	}
	if _, ok := hourlyPartitions(t, conn)[hourly(oldHour)]; ok {
		t.Error("expired partition not dropped with MaxConns 1")
	}
}

func TestRunMaintenance(t *testing.T) {
	t.Parallel()
	dbURL := storetest.NewURL(t)
	conn := sqlConn(t, dbURL)
	s := openConfig(t, store.Config{URL: dbURL, PartitionPeriod: time.Hour,
		Maintenance: store.MaintenanceConfig{Every: 20 * time.Millisecond, Ahead: 2}}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.RunMaintenance(ctx)
	}()
	stop := sync.OnceValue(func() error { cancel(); return <-done })
	t.Cleanup(func() { stop() }) // also when the wait below fails
	// Open made partitions up to the next hour; the pass makes one more.
	ahead := hourly(time.Now().UTC().Add(2 * time.Hour))
	resiliencetest.Eventually(t, time.Minute, func() (bool, string) {
		_, ok := hourlyPartitions(t, conn)[ahead]
		return ok, "RunMaintenance has not created " + ahead
	})
	if err := stop(); err != nil {
		t.Errorf("RunMaintenance: %v", err)
	}
}

func TestValidPartitionPeriod(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		period time.Duration
		ok     bool
	}{
		{time.Hour, true},
		{2 * time.Hour, true},
		{3 * time.Hour, true},
		{4 * time.Hour, true},
		{6 * time.Hour, true},
		{8 * time.Hour, true},
		{12 * time.Hour, true},
		{24 * time.Hour, true},
		{0, false},
		{-time.Hour, false},
		{-24 * time.Hour, false},
		{30 * time.Minute, false},
		{90 * time.Minute, false},
		{5 * time.Hour, false},
		{7 * time.Hour, false},
		{9 * time.Hour, false},
		{25 * time.Hour, false},
		{48 * time.Hour, false},
		{time.Hour + time.Nanosecond, false},
	} {
		if err := store.ValidPartitionPeriod(tc.period); (err == nil) != tc.ok {
			t.Errorf("ValidPartitionPeriod(%v) = %v, want ok=%v", tc.period, err, tc.ok)
		}
	}
}

func TestOpenRejectsInvalidPartitionPeriod(t *testing.T) {
	t.Parallel()
	dbURL := storetest.NewURL(t)
	for _, p := range []time.Duration{-time.Hour, 5 * time.Hour, 90 * time.Minute, 48 * time.Hour} {
		s, err := store.Open(context.Background(), store.Config{URL: dbURL, PartitionPeriod: p}, nil, nil)
		if err == nil {
			s.Close()
			t.Errorf("Open with partition period %v succeeded", p)
			continue
		}
		if !strings.Contains(err.Error(), "partition period") {
			t.Errorf("Open with partition period %v: %v does not mention the partition period", p, err)
		}
	}
}

// The partition period is fixed when the database is created.
func TestPartitionPeriodIsFixed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		first  time.Duration
		same   []time.Duration // accepted later
		others []time.Duration // refused later
	}{
		{24 * time.Hour, []time.Duration{0, 24 * time.Hour}, []time.Duration{time.Hour, 12 * time.Hour}},
		{time.Hour, []time.Duration{time.Hour}, []time.Duration{0, 24 * time.Hour, 2 * time.Hour}},
	} {
		t.Run(tc.first.String(), func(t *testing.T) {
			t.Parallel()
			dbURL := storetest.NewURL(t)
			s, err := store.Open(ctx, store.Config{URL: dbURL, PartitionPeriod: tc.first}, nil, nil)
			if err != nil {
				t.Fatalf("first Open: %v", err)
			}
			s.Close()
			first := tc.first
			if first == 0 {
				first = 24 * time.Hour
			}
			for _, p := range tc.others {
				s, err := store.Open(ctx, store.Config{URL: dbURL, PartitionPeriod: p}, nil, nil)
				if err == nil {
					s.Close()
					t.Errorf("Open with period %v on a database of %v succeeded", p, first)
					continue
				}
				if !strings.Contains(err.Error(), first.String()) {
					t.Errorf("Open with period %v: error %q does not name the database's period %v", p, err, first)
				}
			}
			for _, p := range tc.same {
				s, err := store.Open(ctx, store.Config{URL: dbURL, PartitionPeriod: p}, nil, nil)
				if err != nil {
					t.Errorf("Open again with period %v: %v", p, err)
					continue
				}
				s.Close()
			}
			conn := sqlConn(t, dbURL)
			var got string
			if err := conn.QueryRow(ctx, "SELECT value FROM store_settings WHERE key = 'partition_period'").Scan(&got); err != nil || got != first.String() {
				t.Errorf("store_settings partition_period = %q (err %v), want %q", got, err, first)
			}
		})
	}
}

// legacyURL is a database as the version before rollups left it: only
// migration 0001 applied, daily partitions for days, rows in them.
func legacyURL(t *testing.T, days []time.Time, rows int) (string, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	dbURL := storetest.NewURL(t)
	conn := sqlConn(t, dbURL)
	ddl, err := os.ReadFile("migrations/0001_logs.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		"CREATE TABLE schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
		string(ddl),
		"INSERT INTO schema_migrations (version) VALUES (1)",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("legacy schema: %v", err)
		}
	}
	for _, d := range days {
		d = d.UTC().Truncate(24 * time.Hour)
		sql := fmt.Sprintf("CREATE TABLE logs_p%s PARTITION OF logs FOR VALUES FROM ('%s') TO ('%s')",
			d.Format("20060102"), d.Format(time.RFC3339), d.AddDate(0, 0, 1).Format(time.RFC3339))
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("legacy partition: %v", err)
		}
		// Rows every 29 seconds (and then some), across the day's minutes
		// and hours.
		if _, err := conn.Exec(ctx, `INSERT INTO logs (ts, id, level, source, message)
			SELECT $1::timestamptz + i * interval '29.000013 seconds', gen_random_uuid(), i % 6, 'src' || (i % 3), 'legacy ' || i
			FROM generate_series(0, $2 - 1) i`, d, rows); err != nil {
			t.Fatalf("legacy rows: %v", err)
		}
	}
	return dbURL, conn
}

// Migration 0002 builds the rollups of the rows already stored, and the
// store converts the rows of the old table into blocks.
func TestMigrationBackfillsRollupsAndConvertsRows(t *testing.T) {
	t.Parallel()
	day := time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC)
	dbURL, conn := legacyURL(t, []time.Time{day, day.AddDate(0, 0, 1)}, 2000)
	s := openURL(t, dbURL)
	if n := storedCount(t, conn); n != 4000 {
		t.Errorf("the blocks hold %d logs after the conversion, want 4000", n)
	}
	if n := queryInt(t, conn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'logs%' AND relkind IN ('r', 'p')"); n != 0 {
		t.Errorf("%d tables of the old layout remain", n)
	}
	checkRollups(t, conn, "after migration 0002")
	if n := queryInt(t, conn, "SELECT count(*) FROM log_rollup_minute"); n == 0 {
		t.Error("no minute rollups after the backfill")
	}
	if n := queryInt(t, conn, "SELECT count(*) FROM pg_class WHERE relname = 'logs_message_trgm_idx'"); n != 0 {
		t.Error("the trigram index on all of logs is still there")
	}
	start, end := day.Add(90*time.Minute+17*time.Second), day.Add(26*time.Hour+3*time.Second)
	st, err := s.Stats(context.Background(), logs.Stats{Start: start, End: end})
	if err != nil {
		t.Fatal(err)
	}
	snapshot(t, conn)
	if want := queryInt(t, conn, "SELECT count(*) FROM logs WHERE ts BETWEEN $1 AND $2", start, end); st.Total != want {
		t.Errorf("Stats total %d, want %d", st.Total, want)
	}
	// New writes keep the backfilled rollups right.
	mustWrite(t, s, ev(day.Add(time.Hour), logs.LevelError, "src1", "new"))
	checkRollups(t, conn, "after a write on the migrated database")
}

// A database from before the partition period was recorded has daily
// partitions: opening it with another period must be refused like on any
// other database, and must not stop it opening with its own period.
func TestPartitionPeriodOfUpgradedDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	today := time.Now().UTC()
	dbURL, _ := legacyURL(t, []time.Time{today.AddDate(0, 0, -1), today, today.AddDate(0, 0, 1)}, 10)

	s, err := store.Open(ctx, store.Config{URL: dbURL, PartitionPeriod: time.Hour}, nil, nil)
	if err == nil {
		s.Close()
		t.Error("Open with period 1h on a database of daily partitions succeeded")
	} else if !strings.Contains(err.Error(), "24h0m0s") {
		t.Errorf("Open with period 1h on a database of daily partitions: %v; want the period refused, naming 24h0m0s", err)
	}
	s, err = store.Open(ctx, store.Config{URL: dbURL}, nil, nil)
	if err != nil {
		t.Fatalf("Open with its own period (24h) after the refused one: %v", err)
	}
	s.Close()
}

// A late log older than the retention, still in a fresh block, goes with
// its rollups when maintenance runs.
func TestRetentionExpiresFreshBlocks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := storetest.NewURL(t)
	conn := sqlConn(t, dbURL)
	s := openConfig(t, store.Config{URL: dbURL, PartitionPeriod: time.Hour}, nil)
	now := time.Now().UTC()
	mustWrite(t, s, ev(now.Add(-30*time.Hour), logs.LevelInfo, "api", "late"), ev(now, logs.LevelInfo, "api", "now"))
	if err := s.Maintain(ctx, store.MaintenanceConfig{Retention: 10 * time.Hour, Ahead: 1}); err != nil {
		t.Fatal(err)
	}
	if n := storedCount(t, conn); n != 1 {
		t.Errorf("%d logs kept, want only the recent one", n)
	}
	checkRollups(t, conn, "after expiring a fresh block")
}

package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/store"
	"github.com/logengine/logengine/store/logs"
	"github.com/logengine/logengine/store/storetest"
)

// tenantEvent is an event of tenant t.
func tenantEvent(t string, ts time.Time, level logs.Level, source, message string) logs.Event {
	e := ev(ts, level, source, message)
	e.Tenant = t
	return e
}

// tenantCounts is what a tenant's reads of [start, end] say: the search
// total and messages, the stats total and the histogram's sum.
func tenantCounts(t *testing.T, s *store.Store, tenants []string, start, end time.Time) (total int64, messages []string, stats, hist int64) {
	t.Helper()
	ctx := context.Background()
	page, err := s.Search(ctx, logs.Search{Tenants: tenants, Start: start, End: end, Size: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range page.Events {
		messages = append(messages, e.Tenant+":"+e.Message)
	}
	slices.Sort(messages)
	st, err := s.Stats(ctx, logs.Stats{Tenants: tenants, Start: start, End: end})
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Histogram(ctx, logs.Histogram{Tenants: tenants, Start: start, End: end, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range h.Buckets {
		hist += b.Total
	}
	return page.Total, messages, st.Total, hist
}

func TestTenantsReadOnlyTheirOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openConfig(t, store.Config{URL: storetest.NewURL(t)}, nil)
	// Whole minutes and hours, partial minutes at the edges: every path
	// of a count (rollups and blocks) sees the tenant.
	base := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Hour)
	shared := uuid.New()
	var batch []logs.Event
	for _, tn := range []string{"a", "b"} {
		for i, off := range []time.Duration{10 * time.Second, 30 * time.Minute, 90 * time.Minute} {
			e := tenantEvent(tn, base.Add(off), logs.LevelError, "api", tn+string(rune('0'+i)))
			e.TraceID = "trace-1"
			batch = append(batch, e)
		}
		// The same client-chosen id in both tenants: both are stored.
		e := tenantEvent(tn, base.Add(time.Hour), logs.LevelInfo, "api", tn+"-shared")
		e.ID, e.ClientID = shared, true
		batch = append(batch, e)
	}
	batch = append(batch, ev(base.Add(time.Minute), logs.LevelInfo, "api", "default one")) // no tenant: the default
	if n := mustWrite(t, s, batch...); n != 9 {
		t.Fatalf("stored %d, want 9", n)
	}
	// A retry of the shared id is skipped in each tenant.
	retry := tenantEvent("a", base.Add(time.Hour), logs.LevelInfo, "api", "a-shared")
	retry.ID, retry.ClientID = shared, true
	if n := mustWrite(t, s, retry); n != 0 {
		t.Fatalf("a retry of a stored client id stored %d", n)
	}
	start, end := base.Add(5*time.Second), base.Add(2*time.Hour+17*time.Second)
	check := func(when string) {
		t.Helper()
		for _, tc := range []struct {
			tenants []string
			want    []string
		}{
			{[]string{"a"}, []string{"a:a-shared", "a:a0", "a:a1", "a:a2"}},
			{[]string{"b"}, []string{"b:b-shared", "b:b0", "b:b1", "b:b2"}},
			{nil, []string{"default:default one"}},
			{[]string{"a", "b"}, []string{"a:a-shared", "a:a0", "a:a1", "a:a2", "b:b-shared", "b:b0", "b:b1", "b:b2"}},
			{[]string{"c"}, nil},
		} {
			total, msgs, stats, hist := tenantCounts(t, s, tc.tenants, start, end)
			n := int64(len(tc.want))
			if !slices.Equal(msgs, tc.want) || total != n || stats != n || hist != n {
				t.Errorf("%s: tenants %v: search %d %v, stats %d, histogram %d; want %d %v", when, tc.tenants, total, msgs, stats, hist, n, tc.want)
			}
		}
		page, err := s.Search(ctx, logs.Search{Tenants: []string{"b"}, Start: start, End: end, TraceID: "trace-1", Size: 10})
		if err != nil || page.Total != 3 {
			t.Errorf("%s: b's trace search: %d, %v; want 3", when, page.Total, err)
		}
	}
	check("fresh")
	for {
		n, err := s.MergeOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	conn := sqlConn(t, s.Config().URL)
	if n := queryInt(t, conn, "SELECT count(*) FROM log_blocks_fresh"); n != 0 {
		t.Fatalf("%d fresh blocks left after merging", n)
	}
	if n := queryInt(t, conn, "SELECT count(DISTINCT tenant) FROM log_blocks"); n != 3 {
		t.Errorf("merged blocks of %d tenants, want 3 (each block is one tenant's)", n)
	}
	check("merged")
}

func TestTenantRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := storetest.NewURL(t)
	conn := sqlConn(t, dbURL)
	s := openConfig(t, store.Config{URL: dbURL, PartitionPeriod: time.Hour}, nil)
	now := time.Now().UTC()
	old := now.Add(-30 * time.Hour).Truncate(time.Hour)
	var batch []logs.Event
	for _, tn := range []string{"short", "forever", "other"} {
		batch = append(batch, tenantEvent(tn, old.Add(time.Minute), logs.LevelInfo, "api", "old"), tenantEvent(tn, now, logs.LevelInfo, "api", "new"))
	}
	mustWrite(t, s, batch...)
	oldTotal := func(tenant string) int64 {
		total, _, stats, hist := tenantCounts(t, s, []string{tenant}, old, old.Add(time.Hour-time.Microsecond))
		if stats != total || hist != total {
			t.Errorf("%s: search %d, stats %d, histogram %d disagree", tenant, total, stats, hist)
		}
		return total
	}

	// The global retention keeps the old hour; one tenant's does not.
	s.SetTenantRetention(map[string]time.Duration{"short": 10 * time.Hour})
	if err := s.Maintain(ctx, store.MaintenanceConfig{Retention: 48 * time.Hour, Ahead: 1}); err != nil {
		t.Fatal(err)
	}
	if _, ok := hourlyPartitions(t, conn)[hourly(old)]; !ok {
		t.Fatalf("partition %s dropped while other tenants keep it", hourly(old))
	}
	for tenant, want := range map[string]int64{"short": 0, "forever": 1, "other": 1} {
		if got := oldTotal(tenant); got != want {
			t.Errorf("after the first pass %s keeps %d old logs, want %d", tenant, got, want)
		}
	}

	// Now the global retention passed the old hour, but one tenant keeps
	// everything: the partition stays, the others' logs go.
	s.SetTenantRetention(map[string]time.Duration{"short": 10 * time.Hour, "forever": 0})
	if err := s.Maintain(ctx, store.MaintenanceConfig{Retention: 10 * time.Hour, Ahead: 1}); err != nil {
		t.Fatal(err)
	}
	if _, ok := hourlyPartitions(t, conn)[hourly(old)]; !ok {
		t.Fatalf("partition %s dropped while a tenant keeps everything", hourly(old))
	}
	for tenant, want := range map[string]int64{"short": 0, "forever": 1, "other": 0} {
		if got := oldTotal(tenant); got != want {
			t.Errorf("after the second pass %s keeps %d old logs, want %d", tenant, got, want)
		}
	}

	// With no tenant keeping it, the partition is dropped.
	s.SetTenantRetention(nil)
	if err := s.Maintain(ctx, store.MaintenanceConfig{Retention: 10 * time.Hour, Ahead: 1}); err != nil {
		t.Fatal(err)
	}
	if _, ok := hourlyPartitions(t, conn)[hourly(old)]; ok {
		t.Errorf("partition %s kept past every retention", hourly(old))
	}
	for _, tenant := range []string{"short", "forever", "other"} {
		if total, _, _, _ := tenantCounts(t, s, []string{tenant}, now.Add(-time.Minute), now.Add(time.Minute)); total != 1 {
			t.Errorf("%s keeps %d new logs, want 1", tenant, total)
		}
	}
}

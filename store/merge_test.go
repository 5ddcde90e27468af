package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/logengine/logengine/store"
	"github.com/logengine/logengine/store/logs"
	"github.com/logengine/logengine/store/storetest"
)

// Fresh blocks, written out of time order, become merged blocks that do
// not overlap in time; every log is still there once, and every answer is
// the same as before the merge.
func TestMergeOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := storetest.NewURL(t)
	conn := sqlConn(t, dbURL)
	s := openConfig(t, store.Config{URL: dbURL, Maintenance: store.MaintenanceConfig{MergeRows: 1000}}, nil)
	r := rand.New(rand.NewPCG(7, 7))
	day := time.Now().UTC().Truncate(24 * time.Hour)
	var all []logs.Event
	for b := range 12 {
		batch := randomEvents(r, 300, day, day.Add(20*time.Hour))
		for i := range batch {
			batch[i].Message = fmt.Sprintf("batch %d row %d", b, i)
		}
		mustWriteAt(t, s, store.Batch{Events: batch, Positions: at(0, int64(b*300), 300)})
		all = append(all, batch...)
	}
	if n := queryInt(t, conn, "SELECT count(*) FROM log_blocks_fresh"); n != 12 {
		t.Fatalf("%d fresh blocks, want 12", n)
	}
	q := logs.Search{Start: day, End: day.Add(24 * time.Hour), Size: 50, Keyword: "row 1"}
	before, err := s.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	minuteBefore := rollupRows(t, conn, "log_rollup_minute")

	merged, err := s.MergeOnce(ctx)
	if err != nil || merged != 12 {
		t.Fatalf("MergeOnce = %d, %v; want 12 fresh blocks merged", merged, err)
	}
	if n := queryInt(t, conn, "SELECT count(*) FROM log_blocks_fresh"); n != 0 {
		t.Errorf("%d fresh blocks left", n)
	}
	// 3600 rows in blocks of about 1000, none overlapping another.
	if n := queryInt(t, conn, "SELECT count(*) FROM log_blocks"); n < 3 || n > 4 {
		t.Errorf("%d merged blocks, want 3 or 4", n)
	}
	if n := queryInt(t, conn, `SELECT count(*) FROM log_blocks a JOIN log_blocks b
		ON a.id < b.id AND a.min_ts < b.max_ts AND b.min_ts < a.max_ts`); n != 0 {
		t.Errorf("%d pairs of merged blocks overlap", n)
	}
	if n := storedCount(t, conn); n != int64(len(all)) {
		t.Errorf("the blocks hold %d logs, want %d", n, len(all))
	}
	var got []logs.Event
	if err := s.Export(ctx, logs.Search{}, func(e logs.Event) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	byKey := func(a, b logs.Event) int { return a.Timestamp.Compare(b.Timestamp) }
	if !slices.IsSortedFunc(got, byKey) || len(got) != len(all) {
		t.Errorf("Export gave %d logs (sorted %v), want %d in order", len(got), slices.IsSortedFunc(got, byKey), len(all))
	}
	after, err := s.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if after.Total != before.Total || len(after.Events) != len(before.Events) {
		t.Errorf("after the merge: total %d, %d events; before: %d, %d", after.Total, len(after.Events), before.Total, len(before.Events))
	}
	for i := range after.Events {
		if after.Events[i].ID != before.Events[i].ID {
			t.Errorf("event %d differs after the merge", i)
			break
		}
	}
	if !slices.Equal(rollupRows(t, conn, "log_rollup_minute"), minuteBefore) {
		t.Error("the merge changed the rollups")
	}
	checkRollups(t, conn, "after the merge")

	// Nothing fresh: nothing to do.
	if n, err := s.MergeOnce(ctx); n != 0 || err != nil {
		t.Errorf("MergeOnce with nothing fresh = %d, %v", n, err)
	}
	// New fresh rows inside the merged range are merged into the blocks
	// they fall among, which stay apart.
	late := randomEvents(r, 200, day.Add(5*time.Hour), day.Add(6*time.Hour))
	mustWriteAt(t, s, store.Batch{Events: late, Positions: at(0, 3600, 200)})
	if n, err := s.MergeOnce(ctx); n != 1 || err != nil {
		t.Fatalf("MergeOnce of a late block = %d, %v", n, err)
	}
	if n := queryInt(t, conn, `SELECT count(*) FROM log_blocks a JOIN log_blocks b
		ON a.id < b.id AND a.min_ts < b.max_ts AND b.min_ts < a.max_ts`); n != 0 {
		t.Errorf("%d pairs of merged blocks overlap after a late block", n)
	}
	if n := storedCount(t, conn); n != int64(len(all)+len(late)) {
		t.Errorf("the blocks hold %d logs, want %d", n, len(all)+len(late))
	}
	// Maintenance vacuums and analyzes what the merges rewrote (PostgreSQL
	// removes the dead rows unless a transaction still sees them).
	if err := s.Maintain(ctx, store.MaintenanceConfig{Ahead: 1}); err != nil {
		t.Fatal(err)
	}
	part := "log_blocks_p" + day.Format("20060102")
	if n := queryInt(t, conn, "SELECT coalesce(sum(vacuum_count + analyze_count), 0)::bigint FROM pg_stat_user_tables WHERE relname = $1", part); n < 2 {
		t.Errorf("maintenance did not vacuum and analyze %s (%d)", part, n)
	}
}

// A merge holds the merge lock: a second merger waits its turn.
func TestMergeOneAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := storetest.NewURL(t)
	s := openConfig(t, store.Config{URL: dbURL}, nil)
	now := time.Now().UTC()
	mustWrite(t, s, ev(now, logs.LevelInfo, "api", "a"))
	holder := sqlConn(t, dbURL)
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1)", mergeLock); err != nil {
		t.Fatal(err)
	}
	if n, err := s.MergeOnce(ctx); n != 0 || err != nil {
		t.Errorf("MergeOnce while another holds the lock = %d, %v; want 0, nil", n, err)
	}
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_unlock($1)", mergeLock); err != nil {
		t.Fatal(err)
	}
	if n, err := s.MergeOnce(ctx); n != 1 || err != nil {
		t.Errorf("MergeOnce = %d, %v; want 1", n, err)
	}
}

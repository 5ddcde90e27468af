package store_test

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/store"
	"github.com/logengine/logengine/store/logs"
	"github.com/logengine/logengine/store/storetest"
	"github.com/prometheus/client_golang/prometheus"
)

// TestOpenReadOnlyChangesNothing: a read-only store refuses a database
// without the schema instead of migrating it, and its sessions cannot
// write even on a primary.
func TestOpenReadOnlyChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	empty := storetest.NewURL(t)
	if _, err := store.OpenReadOnly(ctx, store.Config{URL: empty}, nil, nil); err == nil || !strings.Contains(err.Error(), "no logengine schema") {
		t.Fatalf("OpenReadOnly of an empty database: %v, want the schema refused", err)
	}
	var tables int
	if err := sqlConn(t, empty).QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Fatalf("OpenReadOnly created %d tables", tables)
	}

	missing, err := url.Parse(strings.Replace(empty, "logengine_test_", "logengine_absent_", 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.OpenReadOnly(ctx, store.Config{URL: missing.String()}, nil, nil); err == nil {
		t.Fatal("OpenReadOnly of a missing database succeeded")
	}
	var dbs int
	if err := sqlConn(t, empty).QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1",
		strings.TrimPrefix(missing.Path, "/")).Scan(&dbs); err != nil || dbs != 0 {
		t.Fatalf("OpenReadOnly created the missing database (%d, %v)", dbs, err)
	}

	_, dbURL := open(t) // migrated, with its partition period
	ro, err := store.OpenReadOnly(ctx, store.Config{URL: dbURL, PartitionPeriod: 6 * time.Hour}, nil, nil)
	if err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
	defer ro.Close()
	if got := ro.Config().PartitionPeriod; got != 24*time.Hour {
		t.Errorf("partition period %s, want the database's 24h", got)
	}
	if _, err := ro.WriteBatch(ctx, []logs.Event{event(time.Now(), "ro", "must not be stored")}); err == nil {
		t.Fatal("a read-only store wrote a batch")
	}
}

func event(ts time.Time, source, msg string) logs.Event {
	return logs.Event{ID: uuid.Must(uuid.NewV7()), Timestamp: ts.UTC().Truncate(time.Microsecond), Level: logs.LevelInfo, Source: source, Message: msg}
}

// TestReplicas runs against a real primary and streaming replica: reads
// go to the replica, the lag is measured, a lagging replica answers
// neither hot windows nor answers that are cached by epochs, and a
// replica that stops is replaced by the primary without an error, then
// used again once back.
func TestReplicas(t *testing.T) {
	ctx := context.Background()
	rs := storetest.NewReplicaSet(t)
	db := rs.NewDatabase()
	primary, err := store.Open(ctx, store.Config{URL: rs.PrimaryURL(db)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(primary.Close)
	now := time.Now().UTC()
	if _, err := primary.WriteBatch(ctx, []logs.Event{event(now.Add(-3*time.Hour), "old", "before everything")}); err != nil {
		t.Fatal(err)
	}
	rs.WaitReplayed()

	reg := prometheus.NewRegistry()
	const maxLag = 3 * time.Second
	cfg := store.ReplicaConfig{URLs: []string{rs.ReplicaURL(db)}, MaxLag: maxLag, CheckInterval: 50 * time.Millisecond}
	r, err := store.NewReplicas(cfg, primary, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done; r.Close() })
	name := rs.ReplicaAddr()

	// search counts the logs of a window on whichever store the router picks.
	search := func(t *testing.T, ctx context.Context, start, end time.Time) int64 {
		t.Helper()
		p, err := r.Search(ctx, logs.Search{Start: start, End: end, Size: 10})
		if err != nil {
			t.Fatalf("Search: %v", err)
		}
		return p.Total
	}
	routed := func(target string) float64 { return metric(t, reg, "store_reads_routed_total", "target", target) }
	// routedTo runs fn and names the one target that answered.
	routedTo := func(t *testing.T, fn func()) string {
		t.Helper()
		before := map[string]float64{}
		for _, tg := range []string{store.TargetReplica, store.TargetPrimary, store.TargetFallback} {
			before[tg] = routed(tg)
		}
		fn()
		got := ""
		for tg, n := range before {
			if routed(tg) != n {
				got += tg
			}
		}
		return got
	}
	waitFor := func(t *testing.T, what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("waited a minute for %s; status %+v", what, r.Status())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	up := func() bool { s := r.Status(); return s[0].Up && s[0].Lag == 0 }
	waitFor(t, "the replica to be up", up)

	t.Run("identity", func(t *testing.T) {
		p, err := primary.Identity(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ro, err := store.OpenReadOnly(ctx, store.Config{URL: rs.ReplicaURL(db)}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		rep, err := ro.Identity(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Identity(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rep != p || got != p {
			t.Fatalf("identities: primary %s, replica %s, router %s: the cache namespace must be one", p, rep, got)
		}
	})

	t.Run("reads go to the replica", func(t *testing.T) {
		for _, read := range []func(){
			func() { search(t, ctx, now.Add(-4*time.Hour), time.Time{}) },
			func() {
				if _, err := r.Stats(ctx, logs.Stats{Start: now.Add(-4 * time.Hour), End: now}); err != nil {
					t.Fatal(err)
				}
			},
			func() {
				if _, err := r.Histogram(ctx, logs.Histogram{Start: now.Add(-4 * time.Hour), End: now, Interval: time.Hour}); err != nil {
					t.Fatal(err)
				}
			},
			// Kept by epochs: the replica has caught up with the primary.
			func() { search(t, logs.WithUpToDate(ctx), now.Add(-4*time.Hour), now.Add(-time.Hour)) },
		} {
			if got := routedTo(t, read); got != store.TargetReplica {
				t.Fatalf("answered by %q, want the replica", got)
			}
		}
		if metric(t, reg, "store_replica_up", "replica", name) != 1 {
			t.Fatalf("store_replica_up{replica=%q} is not 1", name)
		}
	})

	t.Run("a lagging replica", func(t *testing.T) {
		rs.PauseReplay()
		defer rs.ResumeReplay()
		// Written while the replica does not replay: one log an hour ago
		// (a late write into a past window), one now.
		late := now.Add(-time.Hour)
		if _, err := primary.WriteBatch(ctx, []logs.Event{event(late, "late", "backfilled"), event(time.Now(), "hot", "just now")}); err != nil {
			t.Fatal(err)
		}
		past := func(ctx context.Context) int64 {
			return search(t, ctx, now.Add(-4*time.Hour), now.Add(-30*time.Minute))
		}

		// Answers kept by epochs wait for the replica, then take the
		// primary: they hold the late write.
		behind := metric(t, reg, "store_replica_fences_total", "outcome", "behind")
		var n int64
		if got := routedTo(t, func() { n = past(logs.WithUpToDate(ctx)) }); got != store.TargetPrimary || n != 2 {
			t.Fatalf("an up-to-date read of the past: %d logs from %q, want 2 from the primary", n, got)
		}
		// It waited for the replica in vain, unless the replica was
		// already past the limit when asked (a slow machine between the
		// pause and the read), which skips it at once.
		if metric(t, reg, "store_replica_fences_total", "outcome", "behind") != behind+1 && r.Status()[0].Lag <= maxLag {
			t.Errorf("the up-to-date read did not wait for the replica (fences behind unchanged, lag %s)", r.Status()[0].Lag)
		}

		waitFor(t, "the lag to pass --max-replica-lag", func() bool { return r.Status()[0].Lag > maxLag })
		if lag := metric(t, reg, "store_replica_lag_seconds", "replica", name); lag <= maxLag.Seconds() {
			t.Fatalf("store_replica_lag_seconds = %v, want above %v", lag, maxLag.Seconds())
		}
		// A hot window: the primary, with the log the replica lacks.
		if got := routedTo(t, func() { n = search(t, ctx, now.Add(-time.Minute), time.Time{}) }); got != store.TargetPrimary || n != 1 {
			t.Fatalf("a hot window: %d logs from %q, want 1 from the primary", n, got)
		}
		// A window the replica has replayed, for an answer kept a short
		// while: the replica, without the late write (proof of who
		// answered).
		if got := routedTo(t, func() { n = past(ctx) }); got != store.TargetReplica || n != 1 {
			t.Fatalf("a replayed window: %d logs from %q, want 1 from the replica", n, got)
		}
		// Kept by epochs: not from a replica this late, without waiting.
		if got := routedTo(t, func() { n = past(logs.WithUpToDate(ctx)) }); got != store.TargetPrimary || n != 2 {
			t.Fatalf("an up-to-date read with the replica late: %d logs from %q, want 2 from the primary", n, got)
		}
	})

	t.Run("caught up again", func(t *testing.T) {
		rs.WaitReplayed()
		waitFor(t, "the replica to catch up", up)
		var n int64
		if got := routedTo(t, func() { n = search(t, logs.WithUpToDate(ctx), now.Add(-4*time.Hour), now.Add(-30*time.Minute)) }); got != store.TargetReplica || n != 2 {
			t.Fatalf("%d logs from %q, want 2 from the replica", n, got)
		}
	})

	t.Run("stopped and restarted", func(t *testing.T) {
		rs.StopReplica()
		// The first reads may still pick it: each is answered by the
		// primary, never an error.
		for range 3 {
			var n int64
			got := routedTo(t, func() { n = search(t, ctx, now.Add(-4*time.Hour), time.Time{}) })
			if got == store.TargetReplica || n != 3 {
				t.Fatalf("with the replica stopped: %d logs from %q, want 3 from the primary", n, got)
			}
		}
		waitFor(t, "the replica to be seen down", func() bool { return !r.Status()[0].Up })
		if metric(t, reg, "store_replica_up", "replica", name) != 0 {
			t.Fatal("store_replica_up is not 0 with the replica stopped")
		}
		if got := routedTo(t, func() { search(t, ctx, now.Add(-4*time.Hour), time.Time{}) }); got != store.TargetFallback {
			t.Fatalf("with the replica down: answered by %q, want fallback", got)
		}

		rs.StartReplica()
		waitFor(t, "the replica to be up again", up)
		if got := routedTo(t, func() { search(t, ctx, now.Add(-4*time.Hour), time.Time{}) }); got != store.TargetReplica {
			t.Fatalf("after the restart: answered by %q, want the replica", got)
		}
	})
}

// metric is the value of the series of name whose label is value.
func metric(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					if m.Counter != nil {
						return m.Counter.GetValue()
					}
					return m.Gauge.GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}

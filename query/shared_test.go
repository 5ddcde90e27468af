package query_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/cache"
	"github.com/logengine/logengine/cache/cachetest"
	"github.com/logengine/logengine/query"
	"github.com/logengine/logengine/store/logs"
	"github.com/prometheus/client_golang/prometheus"
)

// TestDeploymentsSharingRedisKeepTheirAnswers: two deployments with one
// Redis and one key prefix but their own databases never serve each
// other's answers.
func TestDeploymentsSharingRedisKeepTheirAnswers(t *testing.T) {
	full, _ := openBehindProxy(t)
	empty, _ := openBehindProxy(t)
	base := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Second)
	if _, err := full.WriteBatch(context.Background(), sampleEvents(base, 5)); err != nil {
		t.Fatal(err)
	}
	shared := newCache(t)
	a := query.NewService(serviceConfig(time.Hour), full, shared, discard, prometheus.NewRegistry())
	b := query.NewService(serviceConfig(time.Hour), empty, shared, discard, prometheus.NewRegistry())
	ctx := context.Background()
	q := logs.Search{Start: base, End: base.Add(time.Minute), Size: 10, CountLimit: 100}
	for _, svc := range []*query.Service{a, a} {
		if _, _, err := svc.Search(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	body, status, err := b.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var page query.PageJSON
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	if status != query.CacheMiss || page.TotalElements != 0 || len(page.Content) != 0 {
		t.Errorf("the empty database's deployment answered %s with %d logs of the other's", status, page.TotalElements)
	}
	st := logs.Stats{Start: base, End: base.Add(time.Minute), Top: 10}
	if _, _, err := a.Stats(ctx, st); err != nil {
		t.Fatal(err)
	}
	if body, status, err := b.Stats(ctx, st); err != nil || status != query.CacheMiss {
		t.Errorf("stats of the empty database: %s %v %s, want a MISS of its own", status, err, body)
	}
}

// TestNewSourcesLeaveTheRedisBreakerClosed: parallel searches nobody
// asked before are all misses, which say nothing about Redis; with the
// breaker still closed, a PostgreSQL outage then serves the last good
// answers, marked STALE.
func TestNewSourcesLeaveTheRedisBreakerClosed(t *testing.T) {
	s, proxy := openBehindProxy(t)
	base := time.Now().UTC().Add(-30 * time.Second).Truncate(time.Second)
	events := sampleEvents(base, 20)
	for i := range events {
		events[i].Source = "svc-" + strconv.Itoa(i)
	}
	if _, err := s.WriteBatch(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	cfg := cache.DefaultConfig()
	cfg.Prefix = "logengine-test:" + uuid.NewString() + ":"
	cacheReg := prometheus.NewRegistry()
	c := cache.New(cfg, discard, cacheReg)
	t.Cleanup(func() {
		c.Close()
		cachetest.DeleteKeys(t, cfg.Addr, cfg.Prefix)
	})
	// Answers expire at once: the outage must be served from the last
	// good copies, not from a live entry.
	sc := serviceConfig(time.Millisecond)
	sc.MaxWait = 30 * time.Second // all 20 run, whatever the machine's speed
	svc := query.NewService(sc, s, c, discard, prometheus.NewRegistry())
	ctx := context.Background()
	search := func(i int) logs.Search {
		return logs.Search{Start: base, End: base.Add(time.Minute), Sources: []string{"svc-" + strconv.Itoa(i)}, Size: 10, CountLimit: 100}
	}
	good := make([]string, 20)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, status, err := svc.Search(ctx, search(i))
			if err != nil || status != query.CacheMiss {
				t.Errorf("search %d: %s %v, want a MISS", i, status, err)
			}
			good[i] = string(body)
		}()
	}
	wg.Wait()
	if got := breakerState(t, cacheReg); got != 0 {
		t.Fatalf("Redis breaker state %v after 20 misses on a healthy Redis, want 0 (closed)", got)
	}
	time.Sleep(20 * time.Millisecond) // let the 1 ms entries expire
	proxy.Cut()
	for i := range 20 {
		body, status, err := svc.Search(ctx, search(i))
		if err != nil || status != query.CacheStale || string(body) != good[i] {
			t.Errorf("search %d while PostgreSQL is cut: %q %v, want its last good answer as STALE", i, status, err)
		}
	}
}

// breakerState is the Redis breaker's state gauge in reg: 0 closed,
// 1 half-open, 2 open.
func breakerState(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if mf.GetName() == "breaker_state" && l.GetName() == "name" && l.GetValue() == "redis" {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatal("no breaker_state{name=\"redis\"} in the cache's registry")
	return 0
}

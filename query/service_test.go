package query_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/cache"
	"github.com/logengine/logengine/cache/cachetest"
	"github.com/logengine/logengine/query"
	"github.com/logengine/logengine/resilience"
	"github.com/logengine/logengine/resilience/resiliencetest"
	"github.com/logengine/logengine/store"
	"github.com/logengine/logengine/store/logs"
	"github.com/logengine/logengine/store/storetest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"))
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// openBehindProxy opens a store on a fresh database reached through a proxy
// the test can cut.
func openBehindProxy(t *testing.T) (*store.Store, *resiliencetest.Proxy) {
	t.Helper()
	u, err := url.Parse(storetest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := resiliencetest.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	s, err := store.Open(context.Background(), store.Config{URL: u.String(), MaxConns: 4, StatementTimeout: 5 * time.Second},
		discard, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, proxy
}

// newCache is a cache on the shared Redis under a key prefix of the
// test's own, whose keys are deleted at its end.
func newCache(t *testing.T) *cache.Cache {
	cfg := cache.DefaultConfig()
	cfg.Prefix = "logengine-test:" + uuid.NewString() + ":"
	// Redis stays up in these tests: a loaded machine must not turn a slow
	// write into a miss the test did not expect.
	cfg.Timeout = 5 * time.Second
	c := cache.New(cfg, discard, prometheus.NewRegistry())
	t.Cleanup(func() {
		c.Close()
		cachetest.DeleteKeys(t, cfg.Addr, cfg.Prefix)
	})
	return c
}

func sampleEvents(base time.Time, n int) []logs.Event {
	out := make([]logs.Event, n)
	for i := range out {
		out[i] = logs.Event{ID: uuid.Must(uuid.NewV7()), Timestamp: base.Add(time.Duration(i) * time.Second),
			Level: logs.LevelInfo, Source: "svc", Message: "hello"}
	}
	return out
}

func serviceConfig(ttl time.Duration) query.ServiceConfig {
	c := query.DefaultServiceConfig()
	c.CacheTTL, c.ClosedTTL, c.AggregateTTL = ttl, ttl, ttl
	c.QueryTimeout = 5 * time.Second
	c.IsQueryError = store.IsQueryError
	c.Breaker = resilience.BreakerConfig{Failures: 3, Delay: 200 * time.Millisecond}
	return c
}

func TestCacheAsideBreakerAndStale(t *testing.T) {
	s, proxy := openBehindProxy(t)
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	if _, err := s.WriteBatch(context.Background(), sampleEvents(base, 5)); err != nil {
		t.Fatal(err)
	}
	c := newCache(t)
	ctx := context.Background()
	q := logs.Search{Start: base, End: base.Add(time.Minute), Size: 10, CountLimit: 100}

	long := query.NewService(serviceConfig(time.Hour), s, c, discard, prometheus.NewRegistry())
	if _, status, err := long.Search(ctx, q); err != nil || status != query.CacheMiss {
		t.Fatalf("first search: %q %v, want MISS", status, err)
	}
	if _, status, err := long.Search(ctx, q); err != nil || status != query.CacheHit {
		t.Fatalf("second search: %q %v, want HIT", status, err)
	}

	// A short-lived entry expires, but its last good answer stays for outages.
	short := query.NewService(serviceConfig(time.Millisecond), s, c, discard, prometheus.NewRegistry())
	q2 := q
	q2.Size = 3
	good, _, err := short.Search(ctx, q2)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // let the 1 ms entry expire

	proxy.Cut()
	stale, status, err := short.Search(ctx, q2)
	if err != nil || status != query.CacheStale || string(stale) != string(good) {
		t.Fatalf("search while PostgreSQL is cut: %q %v, want the last good answer as STALE", status, err)
	}
	q3 := q
	q3.Size = 4 // never answered before: nothing to serve
	for i := 0; i < 3; i++ {
		if _, _, err := short.Search(ctx, q3); !errors.Is(err, query.ErrUnavailable) {
			t.Fatalf("search %d while cut: %v, want ErrUnavailable", i, err)
		}
	}
	if got := short.BreakerState(); got != "open" {
		t.Errorf("breaker %q after 3 failures, want open", got)
	}

	proxy.Restore()
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		_, status, err := short.Search(ctx, q3)
		return err == nil && status == query.CacheMiss, fmt.Sprintf("no recovery after PostgreSQL returned: %q %v", status, err)
	})
	if got := short.BreakerState(); got != "closed" {
		t.Errorf("breaker %q after recovery, want closed", got)
	}
}

// countingStore holds every Search until released and counts them.
type countingStore struct {
	query.Store
	calls   atomic.Int32
	release chan struct{}
}

func (c *countingStore) Search(ctx context.Context, q logs.Search) (logs.Page, error) {
	c.calls.Add(1)
	<-c.release
	return c.Store.Search(ctx, q)
}

func TestConcurrentIdenticalMissesMakeOneQuery(t *testing.T) {
	s, _ := openBehindProxy(t)
	cs := &countingStore{Store: s, release: make(chan struct{})}
	svc := query.NewService(serviceConfig(time.Minute), cs, newCache(t), discard, prometheus.NewRegistry())
	base := time.Now().UTC().Add(-time.Hour)
	q := logs.Search{Start: base, End: base.Add(time.Minute), Size: 10, CountLimit: 100}
	var wg sync.WaitGroup
	results := make(chan string, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _, err := svc.Search(context.Background(), q)
			if err != nil {
				t.Error(err)
			}
			results <- string(body)
		}()
	}
	// Give the 20 callers time to pile up on the one miss in flight.
	time.Sleep(200 * time.Millisecond)
	close(cs.release)
	wg.Wait()
	close(results)
	if n := cs.calls.Load(); n != 1 {
		t.Errorf("%d database queries for 20 identical concurrent misses, want 1", n)
	}
	first := ""
	for r := range results {
		if first == "" {
			first = r
		} else if r != first {
			t.Errorf("callers got different answers")
		}
	}
}

func TestTooManyConcurrentQueriesAreRefused(t *testing.T) {
	s, _ := openBehindProxy(t)
	cs := &countingStore{Store: s, release: make(chan struct{})}
	cfg := serviceConfig(time.Minute)
	cfg.MaxConcurrent, cfg.MaxWait = 1, 0
	svc := query.NewService(cfg, cs, newCache(t), discard, prometheus.NewRegistry())
	base := time.Now().UTC().Add(-time.Hour)
	busy := logs.Search{Start: base, End: base.Add(time.Minute), Size: 10, CountLimit: 100}
	done := make(chan error, 1)
	go func() {
		_, _, err := svc.Search(context.Background(), busy)
		done <- err
	}()
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		return cs.calls.Load() > 0, "the first query never reached the store"
	})
	other := busy
	other.Size = 11
	if _, _, err := svc.Search(context.Background(), other); !errors.Is(err, query.ErrBusy) {
		t.Errorf("second query while the only place is taken: %v, want ErrBusy", err)
	}
	close(cs.release)
	if err := <-done; err != nil {
		t.Errorf("first query: %v", err)
	}
}

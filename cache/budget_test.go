package cache_test

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logengine/logengine/cache"
	"github.com/prometheus/client_golang/prometheus"
)

// newBudgetCache is a cache under r's prefix with a byte budget.
func newBudgetCache(t *testing.T, r *redis, maxBytes int64, maxEntry int) (*cache.Cache, *prometheus.Registry) {
	t.Helper()
	cfg := cache.DefaultConfig()
	cfg.Addr = redisAddr
	cfg.Prefix = r.prefix
	cfg.MaxBytes, cfg.MaxEntryBytes = maxBytes, maxEntry
	cfg.Timeout = 2 * time.Second // the assertions are on bytes, not speed
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	c := cache.New(cfg, discard, reg)
	t.Cleanup(c.Close)
	return c, reg
}

// storedBytes sums the values of the entries (not the budget's own keys)
// under r's prefix as Redis holds them now.
func (r *redis) storedBytes(t *testing.T) (total int64, keys int) {
	t.Helper()
	ctx := context.Background()
	var cursor uint64
	for {
		e, err := r.cl.Do(ctx, r.cl.B().Scan().Cursor(cursor).Match(r.prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range e.Elements {
			if strings.HasPrefix(k, r.prefix+"budget:") {
				continue
			}
			n, err := r.cl.Do(ctx, r.cl.B().Strlen().Key(k).Build()).AsInt64()
			if err != nil {
				t.Fatal(err)
			}
			total += n
			keys++
		}
		if cursor = e.Cursor; cursor == 0 {
			return total, keys
		}
	}
}

// TestByteBudgetEvictsTheOldest: writes far past the budget, half of them
// last good (:stale) copies with a long life, never hold more than the
// budget in Redis; the oldest entries make room, the newest are readable.
func TestByteBudgetEvictsTheOldest(t *testing.T) {
	r := newRedis(t)
	const budget = 1 << 20
	c, reg := newBudgetCache(t, r, budget, 256<<10)
	ctx := context.Background()
	value := bytes.Repeat([]byte("v"), 50<<10)
	for i := range 60 {
		key := c.Key("search", strconv.Itoa(i))
		c.Set(ctx, key, value, time.Hour)
		c.Set(ctx, key+":stale", value, 24*time.Hour)
	}
	stored, keys := r.storedBytes(t)
	if stored > budget {
		t.Errorf("Redis holds %d bytes of answers in %d keys, over the budget of %d", stored, keys, budget)
	}
	if stored < budget/2 {
		t.Errorf("Redis holds only %d bytes of answers, the budget of %d is wasted", stored, budget)
	}
	if counted := r.int(t, r.prefix+"budget:bytes"); counted < stored || counted > budget {
		t.Errorf("the budget counts %d bytes for %d stored, want between them and %d", counted, stored, budget)
	}
	if n := metric(t, reg, "cache_evictions_total", "", ""); n < 100 {
		t.Errorf("cache_evictions_total = %v after writing 6 MB into 1 MB", n)
	}
	if n := metric(t, reg, "cache_redis_bytes", "", ""); n <= 0 || n > budget {
		t.Errorf("cache_redis_bytes = %v, want within (0, %d]", n, budget)
	}
	newest := c.Key("search", "59")
	if v, ok := c.Get(ctx, "hot", newest+":stale"); !ok || !bytes.Equal(v, value) {
		t.Error("the newest entry was evicted")
	}
	if _, ok := c.Get(ctx, "hot", c.Key("search", "0")); ok {
		t.Error("the oldest entry survived 6 MB of writes into a 1 MB budget")
	}
}

// TestByteBudgetIsSharedAndCountsReplacements: gateways writing in
// parallel under one prefix share one budget, and rewriting a key counts
// its new size, not both.
func TestByteBudgetIsSharedAndCountsReplacements(t *testing.T) {
	r := newRedis(t)
	const budget = 512 << 10
	a, _ := newBudgetCache(t, r, budget, 64<<10)
	b, _ := newBudgetCache(t, r, budget, 64<<10)
	ctx := context.Background()
	value := bytes.Repeat([]byte("w"), 20<<10)
	var wg sync.WaitGroup
	for g, c := range []*cache.Cache{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				c.Set(ctx, c.Key("stats", strconv.Itoa(g), strconv.Itoa(i)), value, time.Hour)
			}
		}()
	}
	wg.Wait()
	if stored, keys := r.storedBytes(t); stored > budget {
		t.Errorf("two gateways stored %d bytes in %d keys under one budget of %d", stored, keys, budget)
	}

	r2 := newRedis(t)
	c, _ := newBudgetCache(t, r2, budget, 64<<10)
	key := c.Key("search", "same")
	for range 50 {
		c.Set(ctx, key, value, time.Hour)
	}
	if counted := r2.int(t, r2.prefix+"budget:bytes"); counted > int64(2*len(value)) {
		t.Errorf("one key rewritten 50 times counts %d bytes, want about %d", counted, len(value))
	}
	if v, ok := c.Get(ctx, "hot", key); !ok || !bytes.Equal(v, value) {
		t.Error("the rewritten key is gone")
	}
}

// TestBudgetAccountingOutlivesItsEntries: a short-lived write after a
// long-lived one does not shorten the accounting's life, or the long-lived
// entries would outlive their count.
func TestBudgetAccountingOutlivesItsEntries(t *testing.T) {
	r := newRedis(t)
	c, _ := newBudgetCache(t, r, 1<<20, 64<<10)
	ctx := context.Background()
	c.Set(ctx, c.Key("search", "long")+":stale", []byte("last good"), 24*time.Hour)
	c.Set(ctx, c.Key("search", "short"), []byte("hot"), time.Second)
	for _, k := range []string{"bytes", "sizes", "age", "expiry"} {
		ttl, err := r.cl.Do(ctx, r.cl.B().Pttl().Key(r.prefix+"budget:"+k).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		if ttl < (24 * time.Hour).Milliseconds() {
			t.Errorf("budget:%s lives %d ms, less than the 24 h entry it counts", k, ttl)
		}
	}
}

// TestByteBudgetForgetsExpiredEntries: entries Redis expired no longer
// count, so they take no room from later ones.
func TestByteBudgetForgetsExpiredEntries(t *testing.T) {
	r := newRedis(t)
	c, _ := newBudgetCache(t, r, 1<<20, 64<<10)
	ctx := context.Background()
	value := bytes.Repeat([]byte("e"), 10<<10)
	for i := range 10 {
		c.Set(ctx, c.Key("search", "short", strconv.Itoa(i)), value, time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the 1 ms entries expire
	c.Set(ctx, c.Key("search", "long"), value, time.Hour)
	if counted := r.int(t, r.prefix+"budget:bytes"); counted > int64(2*len(value)) {
		t.Errorf("the budget counts %d bytes with one live entry of %d", counted, len(value))
	}
}

// TestOversizeAnswersAreNotCached: an answer over the entry limit, or one
// the budget can never hold, is not stored, and the refusal is counted.
func TestOversizeAnswersAreNotCached(t *testing.T) {
	r := newRedis(t)
	c, reg := newBudgetCache(t, r, 64<<10, 64<<10)
	ctx := context.Background()
	tooLarge := c.Key("search", "too-large")
	c.Set(ctx, tooLarge, bytes.Repeat([]byte("x"), 64<<10+1), time.Hour)
	noRoom := c.Key("search", "no-room")
	c.Set(ctx, noRoom, bytes.Repeat([]byte("x"), 64<<10), time.Hour) // with its key's cost, over the budget
	for _, k := range []string{tooLarge, noRoom} {
		if _, ok := c.Get(ctx, "hot", k); ok {
			t.Errorf("%s was cached", k)
		}
	}
	if n := metric(t, reg, "cache_refusals_total", "reason", "too_large"); n != 1 {
		t.Errorf("cache_refusals_total{reason=too_large} = %v, want 1", n)
	}
	if n := metric(t, reg, "cache_refusals_total", "reason", "budget"); n != 1 {
		t.Errorf("cache_refusals_total{reason=budget} = %v, want 1", n)
	}
	if stored, _ := r.storedBytes(t); stored != 0 {
		t.Errorf("Redis holds %d bytes of refused answers", stored)
	}
}

// TestBreakerIgnoresRedisErrorReplies: an error Redis answered (here
// WRONGTYPE, as OOM would be under maxmemory) says Redis is up; only
// transport errors and timeouts may open the breaker.
func TestBreakerIgnoresRedisErrorReplies(t *testing.T) {
	r := newRedis(t)
	c, reg := newCache(t, r, redisAddr)
	ctx := context.Background()
	odd := c.Key("search", "a list, not a string")
	if err := r.cl.Do(ctx, r.cl.B().Rpush().Key(odd).Element("x").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, ok := c.Get(ctx, "hot", odd); ok {
			t.Fatal("a list read as a cached answer")
		}
	}
	if n := metric(t, reg, "breaker_transitions_total", "state", "open"); n != 0 {
		t.Errorf("the Redis breaker opened on error replies of a healthy Redis")
	}
	key := c.Key("search", "fine")
	c.Set(ctx, key, []byte("v"), time.Minute)
	if v, ok := c.Get(ctx, "hot", key); !ok || string(v) != "v" {
		t.Errorf("no hit after error replies: the cache switched itself off")
	}
}

// TestKeyPartsAreLengthPrefixed: parts that only differ in where one ends
// and the next begins give different keys, whatever bytes they hold.
func TestKeyPartsAreLengthPrefixed(t *testing.T) {
	var c *cache.Cache
	pairs := [][2][]string{
		{{"a\x00", "b"}, {"a", "\x00b"}},
		{{"a\x00b"}, {"a", "b"}},
		{{"", "x"}, {"x", ""}},
	}
	for _, p := range pairs {
		if c.Key("search", p[0]...) == c.Key("search", p[1]...) {
			t.Errorf("parts %q and %q share a key", p[0], p[1])
		}
	}
}

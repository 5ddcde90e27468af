package cache_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/cache"
	"github.com/logengine/logengine/cache/cachetest"
	"github.com/logengine/logengine/resilience"
	"github.com/logengine/logengine/resilience/resiliencetest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"go.uber.org/goleak"
)

// redisAddr is the shared Redis the tests use, each under a key prefix of
// its own that it deletes at its end.
const redisAddr = "127.0.0.1:6379"

func TestMain(m *testing.M) {
	// rueidis's reconnect back-off sleep ends after Close returned.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"))
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// redis is a plain client (no local tier) on the shared Redis and the key
// prefix of one test.
type redis struct {
	cl     rueidis.Client
	prefix string
}

func newRedis(t *testing.T) *redis {
	t.Helper()
	cl, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{redisAddr}, DisableCache: true})
	if err != nil {
		t.Fatalf("Redis at %s: %v", redisAddr, err)
	}
	r := &redis{cl: cl, prefix: "logengine-test:" + uuid.NewString() + ":"}
	t.Cleanup(func() {
		cachetest.DeleteKeys(t, redisAddr, r.prefix)
		cl.Close()
	})
	return r
}

// message is value as Redis answers it to a GET.
func (r *redis) message(t *testing.T, value string) rueidis.RedisMessage {
	t.Helper()
	ctx := context.Background()
	key := r.prefix + "message:" + uuid.NewString()
	if err := r.cl.Do(ctx, r.cl.B().Set().Key(key).Value(value).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	m, err := r.cl.Do(ctx, r.cl.B().Get().Key(key).Build()).ToMessage()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// int reads a counter key as Redis holds it (0 when absent).
func (r *redis) int(t *testing.T, key string) int64 {
	t.Helper()
	n, err := r.cl.Do(context.Background(), r.cl.B().Get().Key(key).Build()).AsInt64()
	if rueidis.IsRedisNil(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newCache returns a cache on addr under r's prefix, with a breaker that
// opens after 3 failures and probes again after 20 ms.
func newCache(t *testing.T, r *redis, addr string) (*cache.Cache, *prometheus.Registry) {
	t.Helper()
	cfg := cache.DefaultConfig()
	cfg.Addr = addr
	cfg.Prefix = r.prefix
	cfg.Breaker = resilience.BreakerConfig{Failures: 3, Delay: 20 * time.Millisecond}
	reg := prometheus.NewRegistry()
	c := cache.New(cfg, discard, reg)
	t.Cleanup(c.Close)
	return c, reg
}

// metric sums the samples of a counter or gauge in reg, filtered by one
// label value when label is not empty.
func metric(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				match = match || (lp.GetName() == label && lp.GetValue() == value)
			}
			if match {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func TestNilCacheAlwaysMissesAndDoesNothing(t *testing.T) {
	var c *cache.Cache
	ctx := context.Background()
	c.Set(ctx, "k", []byte("v"), time.Minute)
	if v, ok := c.Get(ctx, "hot", "k"); ok || v != nil {
		t.Errorf("Get on a nil cache: %q %v, want a miss", v, ok)
	}
	if fp, ok := c.Epochs(ctx, time.Now().Add(-time.Hour), time.Now()); ok || fp != "" {
		t.Errorf("Epochs on a nil cache: %q %v, want not ok", fp, ok)
	}
	if err := c.Invalidate(ctx, []time.Time{time.Now()}); err != nil {
		t.Errorf("Invalidate on a nil cache: %v", err)
	}
	if err := c.Ping(ctx); err == nil {
		t.Error("Ping on a nil cache: no error, want one (no cache configured)")
	}
	c.Close()
	if k := c.Key("search", "a"); !strings.HasPrefix(k, cache.DefaultConfig().Prefix+"search:") {
		t.Errorf("Key on a nil cache: %q, want the default prefix", k)
	}
}

func TestKeyIsNamespacedAndUnambiguous(t *testing.T) {
	r := newRedis(t)
	c, _ := newCache(t, r, redisAddr)
	k := c.Key("search", "ab", "c")
	if !strings.HasPrefix(k, r.prefix+"search:") {
		t.Errorf("key %q lacks the prefix and kind", k)
	}
	if k != c.Key("search", "ab", "c") {
		t.Error("the same parts give different keys")
	}
	for _, other := range []string{c.Key("search", "a", "bc"), c.Key("stats", "ab", "c"), c.Key("search", "ab", "c", "")} {
		if other == k {
			t.Errorf("different parts or kind give the same key %q", k)
		}
	}
}

func TestSetThenGet(t *testing.T) {
	r := newRedis(t)
	c, reg := newCache(t, r, redisAddr)
	ctx := context.Background()
	key := c.Key("search", "q")
	c.Set(ctx, key, []byte("answer"), time.Minute)
	if v, ok := c.Get(ctx, "closed", key); !ok || string(v) != "answer" {
		t.Fatalf("Get after Set: %q %v", v, ok)
	}
	if n := metric(t, reg, "cache_hits_total", "tier", "closed"); n != 1 {
		t.Errorf("cache_hits_total{tier=closed} = %v, want 1", n)
	}
	// Stored in Redis with its TTL.
	ttl, err := r.cl.Do(ctx, r.cl.B().Pttl().Key(key).Build()).AsInt64()
	if err != nil || ttl <= 0 || ttl > time.Minute.Milliseconds() {
		t.Errorf("PTTL of the key: %d %v, want within a minute", ttl, err)
	}
	// Read again, it comes from the local tier.
	if v, ok := c.Get(ctx, "closed", key); !ok || string(v) != "answer" {
		t.Fatalf("second Get: %q %v", v, ok)
	}
	if n := metric(t, reg, "cache_hits_total", "tier", "local"); n != 1 {
		t.Errorf("cache_hits_total{tier=local} = %v after a second read, want 1", n)
	}
	if n := metric(t, reg, "cache_local_entries", "", ""); n < 1 {
		t.Errorf("cache_local_entries = %v after a read, want at least 1", n)
	}
}

// TestMissesDoNotOpenTheBreaker: a key that is not there is an ordinary
// miss, not a Redis failure, and a request canceled by its client says
// nothing about Redis either; a cold cache must not switch Redis off.
func TestMissesDoNotOpenTheBreaker(t *testing.T) {
	r := newRedis(t)
	c, reg := newCache(t, r, redisAddr)
	ctx := context.Background()
	for i := range 5 {
		if _, ok := c.Get(ctx, "hot", c.Key("search", strconv.Itoa(i))); ok {
			t.Fatalf("Get of a key never set: a hit")
		}
	}
	if n := metric(t, reg, "cache_misses_total", "tier", "hot"); n != 5 {
		t.Errorf("cache_misses_total{tier=hot} = %v, want 5", n)
	}
	if n := metric(t, reg, "cache_errors_total", "", ""); n != 0 {
		t.Errorf("cache_errors_total = %v after misses, want 0", n)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	for i := range 5 {
		c.Get(canceled, "hot", c.Key("search", "canceled", strconv.Itoa(i)))
	}
	if n := metric(t, reg, "breaker_state", "name", "redis"); n != 0 {
		t.Errorf("breaker_state{name=redis} = %v after misses and canceled requests, want 0 (closed)", n)
	}
	key := c.Key("search", "after")
	c.Set(ctx, key, []byte("v"), time.Minute)
	if v, ok := c.Get(ctx, "hot", key); !ok || string(v) != "v" {
		t.Errorf("Get after misses, canceled requests and a Set: %q %v, want a hit", v, ok)
	}
}

// TestChangedValueLeavesTheLocalTier: Redis tells the cache when a key it
// holds locally changes, so the new value is read.
func TestChangedValueLeavesTheLocalTier(t *testing.T) {
	r := newRedis(t)
	c, _ := newCache(t, r, redisAddr)
	ctx := context.Background()
	key := c.Key("search", "q")
	c.Set(ctx, key, []byte("old"), time.Minute)
	c.Get(ctx, "hot", key)
	c.Get(ctx, "hot", key) // now held locally
	if err := r.cl.Do(ctx, r.cl.B().Set().Key(key).Value("new").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	resiliencetest.Eventually(t, 10*time.Second, func() (bool, string) {
		v, ok := c.Get(ctx, "hot", key)
		return ok && string(v) == "new", "Get still answers " + string(v) + " after another client changed the key"
	})
}

func TestSetExpires(t *testing.T) {
	r := newRedis(t)
	c, _ := newCache(t, r, redisAddr)
	ctx := context.Background()
	key := c.Key("search", "q")
	c.Set(ctx, key, []byte("short"), 20*time.Millisecond)
	resiliencetest.Eventually(t, 10*time.Second, func() (bool, string) {
		v, ok := c.Get(ctx, "hot", key)
		return !ok, "an entry set for 20 ms is still answered: " + string(v)
	})
}

func TestInvalidateChangesTheEpochsOfItsHoursOnly(t *testing.T) {
	r := newRedis(t)
	c, _ := newCache(t, r, redisAddr)
	ctx := context.Background()
	hourA := time.Now().UTC().Add(-5 * time.Hour).Truncate(time.Hour)
	hourB := hourA.Add(2 * time.Hour)
	epochs := func(hour time.Time) string {
		t.Helper()
		fp, ok := c.Epochs(ctx, hour, hour.Add(30*time.Minute))
		if !ok {
			t.Fatal("Epochs: not ok with Redis up")
		}
		return fp
	}
	a, b := epochs(hourA), epochs(hourB)
	if a != epochs(hourA) {
		t.Fatal("the epochs of an untouched hour changed")
	}
	if err := c.Invalidate(ctx, []time.Time{hourA.Add(10 * time.Minute), hourA.Add(20 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	resiliencetest.Eventually(t, 10*time.Second, func() (bool, string) {
		return epochs(hourA) != a, "the epochs of an invalidated hour did not change"
	})
	if epochs(hourB) != b {
		t.Error("the epochs of another hour changed")
	}
	epochKey := r.prefix + "epoch:" + strconv.FormatInt(hourA.Unix()/3600, 10)
	if n := r.int(t, epochKey); n != 1 {
		t.Errorf("%s = %d after one Invalidate (two times in the hour), want 1", epochKey, n)
	}
	ttl, err := r.cl.Do(ctx, r.cl.B().Pttl().Key(epochKey).Build()).AsInt64()
	if err != nil || ttl <= 0 || ttl > cache.DefaultConfig().EpochTTL.Milliseconds() {
		t.Errorf("PTTL of the epoch: %d %v, want within the epoch TTL", ttl, err)
	}
}

// TestRedisDownIsAMiss: with Redis unreachable every call is a miss or an
// error counted, never a failure of the caller; the breaker opens, and
// once Redis is back the cache works again.
func TestRedisDownIsAMiss(t *testing.T) {
	r := newRedis(t)
	proxy := resiliencetest.NewProxy(t, redisAddr)
	c, reg := newCache(t, r, proxy.Addr())
	ctx := context.Background()
	key := c.Key("search", "q")
	c.Set(ctx, key, []byte("v"), time.Minute)
	proxy.Cut()
	for i := range 5 {
		// Keys never read, so that no local copy can answer.
		if _, ok := c.Get(ctx, "hot", c.Key("search", "down", strconv.Itoa(i))); ok {
			t.Error("Get while Redis is down: a hit")
		}
	}
	if _, ok := c.Epochs(ctx, time.Now().Add(-time.Hour), time.Now()); ok {
		t.Error("Epochs while Redis is down: ok, want not ok (nothing may be cached)")
	}
	if err := c.Invalidate(ctx, []time.Time{time.Now()}); err == nil {
		t.Error("Invalidate while Redis is down: no error")
	}
	if err := c.Ping(ctx); err == nil {
		t.Error("Ping while Redis is down: no error")
	}
	if n := metric(t, reg, "cache_errors_total", "", ""); n < 5 {
		t.Errorf("cache_errors_total = %v, want every failed call counted", n)
	}
	if n := metric(t, reg, "breaker_transitions_total", "state", "open"); n < 1 {
		t.Error("the breaker never opened while Redis was down")
	}
	proxy.Restore()
	resiliencetest.Eventually(t, 10*time.Second, func() (bool, string) {
		v, ok := c.Get(ctx, "hot", key)
		return ok && string(v) == "v", "no hit after Redis came back"
	})
}

// TestInvalidationMissedWhileDownBumpsTheGeneration: an Invalidate that
// could not reach Redis leaves entries that missed it; the next one that
// does also bumps the generation every fingerprint includes.
func TestInvalidationMissedWhileDownBumpsTheGeneration(t *testing.T) {
	r := newRedis(t)
	proxy := resiliencetest.NewProxy(t, redisAddr)
	c, _ := newCache(t, r, proxy.Addr())
	ctx := context.Background()
	gen := r.prefix + "epoch:generation"
	hour := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Hour)
	other := hour.Add(-2 * time.Hour)
	before, ok := c.Epochs(ctx, other, other.Add(time.Minute))
	if !ok {
		t.Fatal("Epochs: not ok with Redis up")
	}
	if err := c.Invalidate(ctx, []time.Time{hour}); err != nil {
		t.Fatal(err)
	}
	if n := r.int(t, gen); n != 0 {
		t.Fatalf("generation %d after an Invalidate that reached Redis, want 0", n)
	}

	proxy.Cut()
	if err := c.Invalidate(ctx, []time.Time{hour}); err == nil {
		t.Fatal("Invalidate while Redis is down: no error")
	}
	proxy.Restore()
	resiliencetest.Eventually(t, 10*time.Second, func() (bool, string) {
		err := c.Invalidate(ctx, []time.Time{hour})
		return err == nil, "Invalidate after Redis came back: " + errString(err)
	})
	if n := r.int(t, gen); n != 1 {
		t.Errorf("generation %d after the missed invalidation was caught up, want 1", n)
	}
	resiliencetest.Eventually(t, 10*time.Second, func() (bool, string) {
		fp, ok := c.Epochs(ctx, other, other.Add(time.Minute))
		return ok && fp != before, "the fingerprint of an untouched hour did not change with the generation"
	})
	if err := c.Invalidate(ctx, []time.Time{hour}); err != nil {
		t.Fatal(err)
	}
	if n := r.int(t, gen); n != 1 {
		t.Errorf("generation %d after a further Invalidate, want still 1", n)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

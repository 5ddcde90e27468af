package cache_test

import (
	"slices"
	"testing"

	"github.com/logengine/logengine/cache"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/rueidis"
)

// tier is a local tier of max bytes with the gauges it reports to.
type tier struct {
	*cache.LocalTier
	bytes, entries prometheus.Gauge
}

func newTier(max int) tier {
	bytes := prometheus.NewGauge(prometheus.GaugeOpts{Name: "b", Help: "b"})
	entries := prometheus.NewGauge(prometheus.GaugeOpts{Name: "e", Help: "e"})
	return tier{cache.NewLocalTier(max, bytes, entries), bytes, entries}
}

// holds checks that the tier holds exactly keys, most recently used
// first, and that its gauges agree.
func (l tier) holds(t *testing.T, msgs map[string]rueidis.RedisMessage, keys ...string) {
	t.Helper()
	if got := l.Keys(); !slices.Equal(got, keys) {
		t.Errorf("tier holds %q, want %q", got, keys)
	}
	size := 0
	for _, k := range keys {
		size += cache.EntrySize(k, msgs[k])
	}
	if got := testutil.ToFloat64(l.bytes); got != float64(size) {
		t.Errorf("cache_local_bytes = %v, want %d", got, size)
	}
	if got := testutil.ToFloat64(l.entries); got != float64(len(keys)) {
		t.Errorf("cache_local_entries = %v, want %d", got, len(keys))
	}
}

func TestLocalTierEvictsTheLeastRecentlyUsed(t *testing.T) {
	r := newRedis(t)
	msgs := map[string]rueidis.RedisMessage{}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		msgs[k] = r.message(t, "value")
	}
	l := newTier(3 * cache.EntrySize("a", msgs["a"])) // room for three
	l.Set("a", msgs["a"])
	l.Set("b", msgs["b"])
	l.Set("c", msgs["c"])
	l.holds(t, msgs, "c", "b", "a")
	m := l.Get("a") // a is now more recent than b
	if s, err := m.ToString(); err != nil || s != "value" {
		t.Errorf("Get(a) = %q %v, want its value", s, err)
	}
	l.Set("d", msgs["d"])
	l.holds(t, msgs, "d", "a", "c")
	l.Get("c")
	l.Set("e", msgs["e"])
	l.holds(t, msgs, "e", "c", "d")
}

func TestLocalTierStaysWithinItsBytes(t *testing.T) {
	r := newRedis(t)
	small, large := r.message(t, "x"), r.message(t, string(make([]byte, 300)))
	max := 2*cache.EntrySize("k1", large) + cache.EntrySize("k1", small)
	l := newTier(max)
	msgs := map[string]rueidis.RedisMessage{"k1": small, "k2": large, "k3": large}
	l.Set("k1", small)
	l.Set("k2", large)
	l.Set("k3", large)
	l.holds(t, msgs, "k3", "k2", "k1") // exactly full
	// Replacing a value counts its new size, not both, and evicts what no
	// longer fits.
	l.Set("k1", large)
	msgs["k1"] = large
	l.holds(t, msgs, "k1", "k3")
	// An entry larger than the whole tier is not kept and evicts nothing.
	l.Set("k4", r.message(t, string(make([]byte, max))))
	l.holds(t, msgs, "k1", "k3")

	l.Del("k1")
	l.holds(t, msgs, "k3")
	l.Flush()
	l.holds(t, msgs)
}

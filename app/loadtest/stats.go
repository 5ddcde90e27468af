package loadtest

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// reservoirSize bounds the latency samples kept per recorder: percentiles
// are exact up to it and estimated from a uniform sample beyond.
const reservoirSize = 100_000

// recentSize bounds the latencies kept for the live progress line.
const recentSize = 10_000

// recorder collects durations in a bounded reservoir (Algorithm R).
type recorder struct {
	mu      sync.Mutex
	samples []time.Duration
	recent  []time.Duration // since the last drainRecent
	n       int64
	max     time.Duration
	rng     *rand.Rand
	size    int
}

func newRecorder(size int, seed uint64) *recorder {
	return &recorder{size: size, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
}

func (r *recorder) add(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	r.max = max(r.max, d)
	if len(r.samples) < r.size {
		r.samples = append(r.samples, d)
	} else if j := r.rng.Int64N(r.n); j < int64(r.size) {
		r.samples[j] = d
	}
	if len(r.recent) < recentSize {
		r.recent = append(r.recent, d)
	}
}

// drainRecent returns the durations added since the previous call.
func (r *recorder) drainRecent() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.recent
	r.recent = nil
	return out
}

// Latency is a distribution in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

func (r *recorder) latency() Latency {
	r.mu.Lock()
	sorted := slices.Clone(r.samples)
	n, mx := r.n, r.max
	r.mu.Unlock()
	slices.Sort(sorted)
	return Latency{
		Count: n,
		P50:   ms(percentile(sorted, 50)),
		P95:   ms(percentile(sorted, 95)),
		P99:   ms(percentile(sorted, 99)),
		Max:   ms(mx),
	}
}

// percentile is the nearest-rank percentile of sorted durations (0 when
// there are none).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank-1, 0), len(sorted)-1)]
}

// ms is d in milliseconds, rounded to a microsecond.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

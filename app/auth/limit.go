package auth

import (
	"math"
	"sync"
	"time"
)

// bucket is a token bucket that may go into debt: a batch larger than
// what is left is still taken whole (refusing half a batch would make the
// client resend all of it), and the key then waits until the debt is paid.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second; 0 is unlimited
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, now time.Time) *bucket {
	burst := max(rate, 1) // one second's worth, and at least one request
	return &bucket{rate: rate, burst: burst, tokens: burst, last: now}
}

func (b *bucket) refill(now time.Time) {
	if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(b.burst, b.tokens+d*b.rate)
	}
	b.last = now
}

// wait is how long until the bucket has a token again: the Retry-After.
func (b *bucket) wait() time.Duration {
	need := 1 - b.tokens
	if b.tokens > 0 {
		need = 0
	}
	return time.Duration(need / b.rate * float64(time.Second))
}

// take takes n tokens when the bucket holds them (n = 0: when it is not
// empty or in debt); otherwise it takes none and says how long to wait.
func (b *bucket) take(now time.Time, n float64) (bool, time.Duration) {
	if b == nil || b.rate == 0 {
		return true, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if b.tokens <= 0 || b.tokens < n {
		return false, b.wait()
	}
	b.tokens -= n
	return true, 0
}

// charge takes n tokens whatever is left.
func (b *bucket) charge(now time.Time, n float64) {
	if b == nil || b.rate == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	b.tokens -= n
}

// retryAfterSeconds is a Retry-After header value: whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// Package resilience builds the failsafe-go policies logengine puts around
// its dependencies: circuit breakers that fail fast while a dependency is
// down, and retries with exponential backoff and jitter.
package resilience

import (
	"context"
	"log/slog"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/logengine/logengine/metrics"
)

// BreakerConfig shapes a circuit breaker.
type BreakerConfig struct {
	// Failures is how many consecutive failures open the breaker.
	Failures int
	// Delay is how long it stays open before one probe is let through.
	Delay time.Duration
}

// Breaker fails calls at once while its dependency is known to be down.
type Breaker struct {
	name string
	cb   circuitbreaker.CircuitBreaker[any]
}

// ErrOpen is returned, wrapped, by calls refused by an open breaker.
var ErrOpen = circuitbreaker.ErrOpen

// NewBreaker builds a breaker named after its dependency. isFailure decides
// which errors count against the dependency (a canceled request or a bad
// query does not mean the database is down); nil counts every error.
func NewBreaker(name string, cfg BreakerConfig, isFailure func(error) bool, logger *slog.Logger, m *metrics.Breaker) *Breaker {
	if isFailure == nil {
		isFailure = func(err error) bool { return err != nil }
	}
	state := m.State.WithLabelValues(name)
	state.Set(0)
	// Zero series from the start, so rates work before the first change.
	for _, st := range []circuitbreaker.State{circuitbreaker.ClosedState, circuitbreaker.OpenState, circuitbreaker.HalfOpenState} {
		m.Transitions.WithLabelValues(name, st.String()).Add(0)
	}
	cb := circuitbreaker.NewBuilder[any]().
		HandleIf(func(_ any, err error) bool { return err != nil && isFailure(err) }).
		WithFailureThreshold(uint(max(cfg.Failures, 1))).
		// One probe when half-open, which alone closes or reopens the
		// breaker; without it failsafe-go lets Failures probes through and
		// reopens only when all of them failed.
		WithSuccessThreshold(1).
		WithDelay(cfg.Delay).
		OnStateChanged(func(e circuitbreaker.StateChangedEvent) {
			var v float64
			switch e.NewState {
			case circuitbreaker.HalfOpenState:
				v = 1
			case circuitbreaker.OpenState:
				v = 2
			}
			state.Set(v)
			m.Transitions.WithLabelValues(name, e.NewState.String()).Inc()
			logger.Warn("circuit breaker changed state", "breaker", name, "from", e.OldState.String(), "to", e.NewState.String())
		}).
		Build()
	return &Breaker{name: name, cb: cb}
}

// Run calls fn through the breaker.
func (b *Breaker) Run(ctx context.Context, fn func(ctx context.Context) error) error {
	return failsafe.With[any](b.cb).WithContext(ctx).Run(func() error { return fn(ctx) })
}

// IsOpen reports whether calls are being refused right now.
func (b *Breaker) IsOpen() bool { return b.cb.IsOpen() }

// State is "closed", "open" or "half-open".
func (b *Breaker) State() string { return b.cb.State().String() }

// RetryConfig shapes a retry with exponential backoff.
type RetryConfig struct {
	Initial, Max time.Duration
	// Attempts bounds the tries; 0 retries until the context ends.
	Attempts int
}

// Retry runs fn until it succeeds, retryable says no, the attempts run out
// or ctx ends. onRetry is told of each failed try (for logs and metrics).
func Retry(ctx context.Context, cfg RetryConfig, retryable func(error) bool, onRetry func(attempt int, err error), fn func(ctx context.Context) error) error {
	b := retrypolicy.NewBuilder[any]().
		HandleIf(func(_ any, err error) bool {
			return err != nil && ctx.Err() == nil && (retryable == nil || retryable(err))
		}).
		WithBackoff(cfg.Initial, cfg.Max).
		WithJitterFactor(0.2).
		ReturnLastFailure()
	if cfg.Attempts > 0 {
		b = b.WithMaxAttempts(cfg.Attempts)
	} else {
		b = b.WithMaxRetries(-1)
	}
	if onRetry != nil {
		b = b.OnRetry(func(e failsafe.ExecutionEvent[any]) { onRetry(e.Attempts(), e.LastError()) })
	}
	return failsafe.With[any](b.Build()).WithContext(ctx).Run(func() error { return fn(ctx) })
}

// ErrFull is returned, wrapped, by calls refused by a full bulkhead.
var ErrFull = bulkhead.ErrFull

// Bulkhead bounds how many calls run at once; a call waits at most its
// wait time for a place, then is refused, so overload is pushed back to
// clients instead of queueing without end.
type Bulkhead struct {
	bh bulkhead.Bulkhead[any]
}

// NewBulkhead lets max calls run at once, each waiting at most wait.
func NewBulkhead(max int, wait time.Duration) *Bulkhead {
	return &Bulkhead{bh: bulkhead.NewBuilder[any](uint(max)).WithMaxWaitTime(wait).Build()}
}

// Run calls fn when a place is free.
func (b *Bulkhead) Run(ctx context.Context, fn func(ctx context.Context) error) error {
	return failsafe.With[any](b.bh).WithContext(ctx).Run(func() error { return fn(ctx) })
}

package resilience_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/logengine/logengine/metrics"
	"github.com/logengine/logengine/resilience"
	"github.com/logengine/logengine/resilience/resiliencetest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

var (
	errDown     = errors.New("connection refused")
	errBadQuery = errors.New("syntax error")
)

// newBreaker is a breaker named "db" whose metrics land in a registry of
// its own.
func newBreaker(failures int, delay time.Duration, isFailure func(error) bool) (*resilience.Breaker, *metrics.Breaker) {
	m := metrics.NewBreaker(prometheus.NewRegistry())
	return resilience.NewBreaker("db", resilience.BreakerConfig{Failures: failures, Delay: delay}, isFailure, discard, m), m
}

// fail runs one call that returns err through b and checks that the
// breaker passed the error through unchanged.
func fail(t *testing.T, b *resilience.Breaker, err error) {
	t.Helper()
	if got := b.Run(context.Background(), func(context.Context) error { return err }); !errors.Is(got, err) {
		t.Fatalf("Run returned %v, want the call's own error %v", got, err)
	}
}

func succeed(t *testing.T, b *resilience.Breaker) {
	t.Helper()
	if err := b.Run(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatalf("Run of a succeeding call: %v", err)
	}
}

func TestBreakerCountsOnlyWhatIsFailureSays(t *testing.T) {
	// As the gateway's database breaker: a canceled request or a bad query
	// says nothing about the dependency.
	isFailure := func(err error) bool { return !errors.Is(err, context.Canceled) && !errors.Is(err, errBadQuery) }
	b, _ := newBreaker(3, time.Hour, isFailure)
	for range 5 {
		fail(t, b, errBadQuery)
		fail(t, b, context.Canceled)
	}
	if got := b.State(); got != "closed" {
		t.Fatalf("breaker %s after errors that are not failures, want closed", got)
	}
	for range 3 {
		fail(t, b, errDown)
	}
	if got := b.State(); got != "open" {
		t.Errorf("breaker %s after 3 failures, want open", got)
	}
}

func TestBreakerWithoutClassifierCountsEveryError(t *testing.T) {
	b, _ := newBreaker(3, time.Hour, nil)
	fail(t, b, errBadQuery)
	fail(t, b, context.Canceled)
	fail(t, b, errDown)
	if got := b.State(); got != "open" {
		t.Errorf("breaker %s after 3 errors of any kind, want open", got)
	}
}

func TestBreakerOpensAfterConsecutiveFailures(t *testing.T) {
	b, m := newBreaker(3, time.Hour, nil)
	fail(t, b, errDown)
	fail(t, b, errDown)
	succeed(t, b) // a success between failures breaks the run
	fail(t, b, errDown)
	fail(t, b, errDown)
	if got := b.State(); got != "closed" {
		t.Fatalf("breaker %s after 2 failures, a success and 2 failures, want closed", got)
	}
	fail(t, b, errDown)
	if !b.IsOpen() || b.State() != "open" {
		t.Fatalf("breaker %s after 3 consecutive failures, want open", b.State())
	}
	called := false
	err := b.Run(context.Background(), func(context.Context) error { called = true; return nil })
	if called || !errors.Is(err, resilience.ErrOpen) {
		t.Errorf("call through an open breaker: called %v, err %v; want refused with ErrOpen", called, err)
	}
	if got := testutil.ToFloat64(m.State.WithLabelValues("db")); got != 2 {
		t.Errorf("breaker_state = %v while open, want 2", got)
	}
	if got := testutil.ToFloat64(m.Transitions.WithLabelValues("db", "open")); got != 1 {
		t.Errorf("breaker_transitions_total{state=open} = %v, want 1", got)
	}
}

// openBreaker returns a breaker of 3 failures and a short delay, opened.
func openBreaker(t *testing.T) (*resilience.Breaker, *metrics.Breaker) {
	t.Helper()
	b, m := newBreaker(3, 20*time.Millisecond, nil)
	for range 3 {
		fail(t, b, errDown)
	}
	if got := b.State(); got != "open" {
		t.Fatalf("breaker %s after 3 failures, want open", got)
	}
	return b, m
}

// probe waits until the open breaker lets a call through, runs result in
// it and returns the state the breaker was in during the call.
func probe(t *testing.T, b *resilience.Breaker, result error) (during string) {
	t.Helper()
	resiliencetest.Eventually(t, 10*time.Second, func() (bool, string) {
		err := b.Run(context.Background(), func(context.Context) error {
			during = b.State()
			return result
		})
		if errors.Is(err, resilience.ErrOpen) {
			return false, "the breaker never let a probe through after its delay"
		}
		return true, ""
	})
	return during
}

func TestBreakerHalfOpensAfterItsDelayAndASuccessCloses(t *testing.T) {
	b, m := openBreaker(t)
	if during := probe(t, b, nil); during != "half-open" {
		t.Errorf("the probe ran with the breaker %s, want half-open", during)
	}
	if got := b.State(); got != "closed" {
		t.Errorf("breaker %s after a successful probe, want closed", got)
	}
	for _, st := range []string{"open", "half-open", "closed"} {
		if got := testutil.ToFloat64(m.Transitions.WithLabelValues("db", st)); got != 1 {
			t.Errorf("breaker_transitions_total{state=%s} = %v, want 1", st, got)
		}
	}
	if got := testutil.ToFloat64(m.State.WithLabelValues("db")); got != 0 {
		t.Errorf("breaker_state = %v once closed, want 0", got)
	}
}

// TestBreakerReopensAfterOneFailedProbe: half-open lets one probe through;
// if it fails the dependency is still down, and every other call must be
// spared until the next delay.
func TestBreakerReopensAfterOneFailedProbe(t *testing.T) {
	b, m := openBreaker(t)
	probe(t, b, errDown)
	if got := b.State(); got != "open" {
		t.Errorf("breaker %s after a failed probe, want open", got)
	}
	if got := testutil.ToFloat64(m.Transitions.WithLabelValues("db", "open")); got != 2 {
		t.Errorf("breaker_transitions_total{state=open} = %v, want 2", got)
	}
}

func TestBreakerLetsOneProbeThroughAtATime(t *testing.T) {
	b, _ := openBreaker(t)
	var second error
	resiliencetest.Eventually(t, 10*time.Second, func() (bool, string) {
		err := b.Run(context.Background(), func(ctx context.Context) error {
			// Another call while this probe runs.
			res := make(chan error, 1)
			go func() { res <- b.Run(ctx, func(context.Context) error { return nil }) }()
			second = <-res
			return nil
		})
		return !errors.Is(err, resilience.ErrOpen), "the breaker never let a probe through after its delay"
	})
	if !errors.Is(second, resilience.ErrOpen) {
		t.Errorf("a second call while the probe runs: %v, want ErrOpen", second)
	}
}

func TestRetryRetriesUntilSuccess(t *testing.T) {
	calls := 0
	var retried []int
	err := resilience.Retry(context.Background(), resilience.RetryConfig{Initial: time.Millisecond, Max: 4 * time.Millisecond, Attempts: 5},
		nil, func(attempt int, err error) {
			if !errors.Is(err, errDown) {
				t.Errorf("onRetry told of %v, want the failed try's error", err)
			}
			retried = append(retried, attempt)
		},
		func(context.Context) error {
			if calls++; calls < 3 {
				return errDown
			}
			return nil
		})
	if err != nil || calls != 3 {
		t.Errorf("Retry: %v after %d calls, want success on the third", err, calls)
	}
	if len(retried) != 2 || retried[0] >= retried[1] {
		t.Errorf("onRetry told of attempts %v, want two, increasing", retried)
	}
}

func TestRetryStopsAfterItsAttempts(t *testing.T) {
	calls := 0
	err := resilience.Retry(context.Background(), resilience.RetryConfig{Initial: time.Millisecond, Max: time.Millisecond, Attempts: 3},
		nil, nil, func(context.Context) error { calls++; return errDown })
	if !errors.Is(err, errDown) || calls != 3 {
		t.Errorf("Retry: %v after %d calls, want the last error after 3", err, calls)
	}
}

func TestRetryDoesNotRetryWhatIsNotRetryable(t *testing.T) {
	calls := 0
	err := resilience.Retry(context.Background(), resilience.RetryConfig{Initial: time.Millisecond, Max: time.Millisecond, Attempts: 5},
		func(err error) bool { return !errors.Is(err, errBadQuery) }, nil,
		func(context.Context) error { calls++; return errBadQuery })
	if !errors.Is(err, errBadQuery) || calls != 1 {
		t.Errorf("Retry: %v after %d calls, want the error after 1", err, calls)
	}
}

// TestRetryWithoutLimitEndsWithItsContext: Attempts 0 retries until the
// context ends, then returns the last error.
func TestRetryWithoutLimitEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	err := resilience.Retry(ctx, resilience.RetryConfig{Initial: time.Millisecond, Max: time.Millisecond},
		nil, nil, func(context.Context) error {
			if calls++; calls == 10 {
				cancel()
			}
			return errDown
		})
	if err == nil || calls != 10 {
		t.Errorf("Retry: %v after %d calls, want an error after the 10th, when the context ended", err, calls)
	}
}

// TestRetryBacksOff: a failed try is followed by a wait of at least the
// initial backoff less its jitter (20%), not by an immediate retry.
func TestRetryBacksOff(t *testing.T) {
	const initial = 50 * time.Millisecond
	var tries []time.Time
	_ = resilience.Retry(context.Background(), resilience.RetryConfig{Initial: initial, Max: 4 * initial, Attempts: 3},
		nil, nil, func(context.Context) error { tries = append(tries, time.Now()); return errDown })
	if len(tries) != 3 {
		t.Fatalf("%d tries, want 3", len(tries))
	}
	for i := 1; i < len(tries); i++ {
		if gap := tries[i].Sub(tries[i-1]); gap < initial*8/10 {
			t.Errorf("try %d came %v after the one before, want a backoff of at least %v", i+1, gap, initial*8/10)
		}
	}
}

func TestBulkheadRefusesPastItsLimit(t *testing.T) {
	bh := resilience.NewBulkhead(1, 0)
	release := make(chan struct{})
	running := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- bh.Run(context.Background(), func(context.Context) error { close(running); <-release; return nil })
	}()
	<-running
	err := bh.Run(context.Background(), func(context.Context) error { return nil })
	close(release)
	if !errors.Is(err, resilience.ErrFull) {
		t.Errorf("a second call while the only place is taken: %v, want ErrFull", err)
	}
	if err := <-done; err != nil {
		t.Errorf("the first call: %v", err)
	}
	if err := bh.Run(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Errorf("a call once the place is free again: %v", err)
	}
}

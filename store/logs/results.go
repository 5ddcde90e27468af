package logs

import (
	"context"
	"sync/atomic"
)

// Results counts the logs a request's answer holds (a search page's rows,
// a live tail's events, a Loki query's lines). Whoever wraps a request
// (the audit log) puts one in its context; the handlers that know the
// count add to it, without knowing who reads it. It lives in the model so
// that the read side and the wrapper share it without importing each
// other.
type Results struct {
	n     atomic.Int64
	known atomic.Bool
}

type resultsKey struct{}

// WithResults returns ctx carrying a new counter, and the counter.
func WithResults(ctx context.Context) (context.Context, *Results) {
	r := new(Results)
	return context.WithValue(ctx, resultsKey{}, r), r
}

// ResultsFrom is the counter ctx carries, nil when none; a nil counter's
// Add does nothing.
func ResultsFrom(ctx context.Context) *Results {
	r, _ := ctx.Value(resultsKey{}).(*Results)
	return r
}

// AddResults adds n to ctx's counter, if it has one.
func AddResults(ctx context.Context, n int) { ResultsFrom(ctx).Add(n) }

// Add counts n more logs in the answer (n may be 0: "known to be none").
func (r *Results) Add(n int) {
	if r == nil {
		return
	}
	r.n.Add(int64(n))
	r.known.Store(true)
}

// Count is the logs counted and whether any handler counted at all.
func (r *Results) Count() (int64, bool) {
	if r == nil {
		return 0, false
	}
	return r.n.Load(), r.known.Load()
}

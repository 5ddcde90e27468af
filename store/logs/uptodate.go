package logs

import "context"

type upToDateKey struct{}

// WithUpToDate asks the store for an answer holding every write committed
// before the store was asked. A reader that keeps answers for as long as
// the invalidation epochs it read before asking stay the same needs it: an
// answer from a replica still behind those writes would be kept stale
// under the epochs that already count them.
func WithUpToDate(ctx context.Context) context.Context {
	return context.WithValue(ctx, upToDateKey{}, true)
}

// UpToDate reports whether ctx asks for WithUpToDate's answer.
func UpToDate(ctx context.Context) bool {
	v, _ := ctx.Value(upToDateKey{}).(bool)
	return v
}

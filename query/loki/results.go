package loki

import (
	"context"

	"github.com/logengine/logengine/store/logs"
)

// countLines adds a log query's lines to the request's result count (the
// audit log reads it).
func countLines(ctx context.Context, streams []Stream) {
	n := 0
	for _, s := range streams {
		n += len(s.Entries)
	}
	logs.AddResults(ctx, n)
}

// Package cachetest helps tests that use the real Redis clean up after
// themselves.
package cachetest

import (
	"context"
	"testing"

	"github.com/redis/rueidis"
)

// DeleteKeys removes every key under prefix from the Redis at addr; an
// empty addr (no cache) does nothing. A failure fails t.
func DeleteKeys(t testing.TB, addr, prefix string) {
	t.Helper()
	if addr == "" {
		return
	}
	cl, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		t.Errorf("delete the test's cache keys: %v", err)
		return
	}
	defer cl.Close()
	ctx := context.Background()
	var cursor uint64
	for {
		entry, err := cl.Do(ctx, cl.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			t.Errorf("delete the test's cache keys: %v", err)
			return
		}
		if len(entry.Elements) > 0 {
			if err := cl.Do(ctx, cl.B().Del().Key(entry.Elements...).Build()).Error(); err != nil {
				t.Errorf("delete the test's cache keys: %v", err)
			}
		}
		if cursor = entry.Cursor; cursor == 0 {
			return
		}
	}
}

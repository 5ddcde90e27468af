package query_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/cache"
	"github.com/logengine/logengine/cache/cachetest"
	"github.com/logengine/logengine/query"
	"github.com/logengine/logengine/store/logs"
	"github.com/prometheus/client_golang/prometheus"
)

// largeEvents are n logs of an 80 KB message each, three to a timestamp
// so that the cursor's tie-break on ids is walked too.
func largeEvents(base time.Time, n int) []logs.Event {
	out := make([]logs.Event, n)
	for i := range out {
		msg := fmt.Sprintf("log %04d ", i) + strings.Repeat(string(rune('a'+i%26)), 80_000)
		out[i] = logs.Event{ID: uuid.Must(uuid.NewV7()), Timestamp: base.Add(time.Duration(i/3) * time.Second),
			Level: logs.LevelInfo, Source: "big", Message: msg}
	}
	return out
}

// TestLargeLogsGiveBoundedPagesAndALosslessWalk: size=1000 over logs of
// 80 KB answers pages within --max-response-bytes, each ending with a
// cursor as a full page does, and following the cursors returns every log
// exactly once, in order, in both directions. Pages over the cache's
// entry limit are never cached.
func TestLargeLogsGiveBoundedPagesAndALosslessWalk(t *testing.T) {
	s, _ := openBehindProxy(t)
	base := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Second)
	events := largeEvents(base, 40)
	if _, err := s.WriteBatch(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	const bound = 512 << 10
	cfg := serviceConfig(time.Hour)
	cfg.MaxResponseBytes = bound
	cc := cache.DefaultConfig()
	cc.Prefix = "logengine-test:" + uuid.NewString() + ":"
	cc.MaxEntryBytes = bound / 2 // pages are larger: never cached
	c := cache.New(cc, discard, prometheus.NewRegistry())
	t.Cleanup(func() {
		c.Close()
		cachetest.DeleteKeys(t, cc.Addr, cc.Prefix)
	})
	svc := query.NewService(cfg, s, c, discard, prometheus.NewRegistry())
	ctx := context.Background()

	for _, asc := range []bool{false, true} {
		q := logs.Search{Start: base, End: base.Add(time.Hour), Size: 1000, CountLimit: 10000, Asc: asc}
		seen := map[string]int{}
		var order []string
		pages := 0
		for {
			body, _, err := svc.Search(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(body) > bound {
				t.Fatalf("page %d is %d bytes, over the bound of %d", pages, len(body), bound)
			}
			var p query.PageJSON
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("page %d is not JSON: %v", pages, err)
			}
			if p.TotalElements != int64(len(events)) || p.Size != 1000 || p.NumberOfElements != len(p.Content) || p.Empty != (len(p.Content) == 0) {
				t.Fatalf("page %d: total %d size %d numberOfElements %d of %d", pages, p.TotalElements, p.Size, p.NumberOfElements, len(p.Content))
			}
			for _, l := range p.Content {
				seen[l.ID]++
				order = append(order, l.Timestamp+" "+l.ID)
			}
			if pages == 1 {
				if again, status, err := svc.Search(ctx, q); err != nil || status != query.CacheMiss || string(again) != string(body) {
					t.Errorf("page %d of %d bytes asked again: %s %v, want the same answer, not cached", pages, len(body), status, err)
				}
			}
			if p.Last {
				if p.NextCursor != "" {
					t.Errorf("the last page has a cursor")
				}
				break
			}
			if p.NextCursor == "" || len(p.Content) == 0 {
				t.Fatalf("page %d is not the last but has %d logs and cursor %q", pages, len(p.Content), p.NextCursor)
			}
			if pages > len(events) {
				t.Fatal("the walk does not end")
			}
			cur, err := query.DecodeCursor(p.NextCursor)
			if err != nil {
				t.Fatal(err)
			}
			q.After = &cur
		}
		if pages < 5 {
			t.Errorf("asc=%v: %d pages of 3.2 MB of logs under a 512 KiB bound", asc, pages)
		}
		for _, e := range events {
			if n := seen[e.ID.String()]; n != 1 {
				t.Errorf("asc=%v: log %s returned %d times, want once", asc, e.ID, n)
			}
		}
		if len(seen) != len(events) {
			t.Errorf("asc=%v: %d distinct logs returned, want %d", asc, len(seen), len(events))
		}
		for i := 1; i < len(order); i++ {
			if (order[i-1] < order[i]) != asc && order[i-1] != order[i] {
				t.Errorf("asc=%v: logs out of order at %d: %s then %s", asc, i, order[i-1], order[i])
				break
			}
		}
	}

	// An offset page is bounded too, and starts where the page does.
	q := logs.Search{Start: base, End: base.Add(time.Hour), Size: 15, Page: 2, CountLimit: 10000}
	body, _, err := svc.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var p query.PageJSON
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if len(body) > bound || len(p.Content) == 0 || p.NextCursor == "" {
		t.Fatalf("offset page: %d bytes, %d logs, cursor %q", len(body), len(p.Content), p.NextCursor)
	}
	if want := events[len(events)-1-30]; p.Content[0].ID != want.ID.String() {
		t.Errorf("page 2 of size 15 starts at %s, want the 31st newest log %s", p.Content[0].ID, want.ID)
	}
}

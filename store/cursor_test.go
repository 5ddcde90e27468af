package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/store/logs"
)

// TestCursorWalkWhileInserting: a keyset walk over a window returns every
// row that was in it when the walk started exactly once, while other
// writers keep inserting — newer rows, and older ones (backfill) behind the
// cursor. Rows inserted during the walk may or may not appear, never twice.
func TestCursorWalkWhileInserting(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	var initial []logs.Event
	for i := 0; i < 500; i++ {
		// Several rows share each timestamp, so ties are broken by id.
		initial = append(initial, ev(t0.Add(time.Duration(i/4)*time.Second), logs.LevelInfo, "api", fmt.Sprintf("row %d", i)))
	}
	mustWrite(t, s, initial...)
	want := map[uuid.UUID]bool{}
	for _, e := range initial {
		want[e.ID] = true
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			// Rows at the window's both ends and in its middle, during the walk.
			at := t0.Add(time.Duration(i%125) * time.Second).Add(time.Duration(i) * time.Microsecond)
			if _, err := s.WriteBatch(ctx, []logs.Event{ev(at, logs.LevelInfo, "api", fmt.Sprintf("concurrent %d", i))}); err != nil && ctx.Err() == nil {
				t.Errorf("concurrent write: %v", err)
				return
			}
		}
	}()

	for _, asc := range []bool{false, true} {
		q := searchAll(t0, t0.Add(time.Hour), 37)
		q.Asc = asc
		seen := map[uuid.UUID]int{}
		for pages := 0; ; pages++ {
			page, err := s.Search(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page.Events {
				seen[e.ID]++
			}
			if page.Next == nil {
				break
			}
			if pages > 100 {
				t.Fatal("the walk does not end")
			}
			q.After = page.Next
		}
		for id := range want {
			if seen[id] != 1 {
				t.Errorf("asc=%v: row %s seen %d times, want once", asc, id, seen[id])
			}
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("asc=%v: row %s returned %d times", asc, id, n)
			}
		}
	}
	cancel()
	wg.Wait()
}

// A counted total (a keyword search) is the size of the whole result on
// every page, the pages after a cursor included.
func TestCountedTotalIgnoresTheCursor(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for b := range 5 { // five blocks, one per batch
		var batch []logs.Event
		for i := range 20 {
			batch = append(batch, ev(base.Add(time.Duration(b*20+i)*time.Second), logs.LevelInfo, "api", "needle in block"))
		}
		mustWrite(t, s, batch...)
	}
	q := logs.Search{Start: base, End: base.Add(time.Hour), Size: 30, Keyword: "needle"}
	for page := 0; ; page++ {
		p, err := s.Search(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != 100 {
			t.Errorf("page %d: total %d, want 100", page, p.Total)
		}
		if p.Next == nil {
			break
		}
		q.After = p.Next
	}
}

package store_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/store"
	"github.com/logengine/logengine/store/logs"
)

var t0 = time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)

func withTrace(e logs.Event, trace string) logs.Event {
	e.TraceID = trace
	return e
}

// ids lists the ids of events, for comparing results.
func ids(events []logs.Event) []uuid.UUID {
	out := make([]uuid.UUID, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func TestSearchFilters(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	sec := time.Second
	e := []logs.Event{
		withTrace(ev(t0, logs.LevelInfo, "api", "User LOGGED in"), "t1"),
		withTrace(ev(t0.Add(1*sec), logs.LevelError, "db", "Connection refused by host"), "t2"),
		ev(t0.Add(2*sec), logs.LevelWarn, "api", "100% done"),
		withTrace(ev(t0.Add(3*sec), logs.LevelDebug, "worker", "job 1000 finished"), "t1"),
		ev(t0.Add(4*sec), logs.LevelError, "api", `path c:\temp\x`),
		ev(t0.Add(5*sec), logs.LevelFatal, "worker", "under_score here"),
	}
	// Just outside the window on both sides.
	outside := []logs.Event{
		withTrace(ev(t0.Add(-time.Microsecond), logs.LevelError, "api", "before 100% refused"), "t1"),
		withTrace(ev(t0.Add(5*sec+time.Microsecond), logs.LevelError, "api", "after 100% refused"), "t1"),
	}
	mustWrite(t, s, append(slices.Clone(e), outside...)...)

	// want lists indexes into e, oldest first.
	cases := []struct {
		name string
		q    logs.Search
		want []int
	}{
		{"window only", logs.Search{}, []int{0, 1, 2, 3, 4, 5}},
		{"one level", logs.Search{Levels: []logs.Level{logs.LevelError}}, []int{1, 4}},
		{"levels", logs.Search{Levels: []logs.Level{logs.LevelError, logs.LevelFatal}}, []int{1, 4, 5}},
		{"one source", logs.Search{Sources: []string{"api"}}, []int{0, 2, 4}},
		{"sources", logs.Search{Sources: []string{"db", "worker"}}, []int{1, 3, 5}},
		{"unknown source", logs.Search{Sources: []string{"nope"}}, nil},
		{"keyword lower", logs.Search{Keyword: "refused"}, []int{1}},
		{"keyword upper", logs.Search{Keyword: "REFUSED BY"}, []int{1}},
		{"keyword mixed", logs.Search{Keyword: "logged"}, []int{0}},
		{"keyword percent literal", logs.Search{Keyword: "100%"}, []int{2}},
		{"keyword underscore literal", logs.Search{Keyword: "100_"}, nil},
		{"keyword lone percent", logs.Search{Keyword: "%"}, []int{2}},
		{"keyword lone underscore", logs.Search{Keyword: "_"}, []int{5}},
		{"keyword backslash literal", logs.Search{Keyword: `c:\temp\`}, []int{4}},
		{"keyword quote", logs.Search{Keyword: `' OR 1=1 --`}, nil},
		{"trace id", logs.Search{TraceID: "t1"}, []int{0, 3}},
		{"trace id missing", logs.Search{TraceID: "t9"}, nil},
		{"level and source", logs.Search{Levels: []logs.Level{logs.LevelError}, Sources: []string{"api"}}, []int{4}},
		{"level and keyword", logs.Search{Levels: []logs.Level{logs.LevelWarn, logs.LevelDebug}, Keyword: "0"}, []int{2, 3}},
		{"inclusive window", logs.Search{Start: t0.Add(1 * sec), End: t0.Add(3 * sec)}, []int{1, 2, 3}},
		{"instant window", logs.Search{Start: t0.Add(2 * sec), End: t0.Add(2 * sec)}, []int{2}},
		{"empty window", logs.Search{Start: t0.Add(2*sec + 1), End: t0.Add(3*sec - 1)}, nil},
		{"ascending", logs.Search{Asc: true, Sources: []string{"api"}}, []int{0, 2, 4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			if q.Start.IsZero() {
				q.Start, q.End = t0, t0.Add(5*sec)
			}
			q.Size = 100
			page, err := s.Search(context.Background(), q)
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			want := []uuid.UUID{}
			for _, i := range tc.want {
				want = append(want, e[i].ID)
			}
			if !q.Asc {
				slices.Reverse(want)
			}
			if got := ids(page.Events); !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
			if page.Total != int64(len(want)) || page.TotalIsEstimate {
				t.Errorf("total %d (estimate %v), want %d exact", page.Total, page.TotalIsEstimate, len(want))
			}
			if page.Next != nil {
				t.Errorf("Next = %v on the only page", page.Next)
			}
		})
	}
}

// pagingFixture writes n events, three per timestamp so that keyset
// paging must break ties on id, and returns them newest first.
func pagingFixture(t *testing.T, n int) (*store.Store, []logs.Event) {
	s, _ := open(t)
	events := make([]logs.Event, n)
	for i := range events {
		events[i] = ev(t0.Add(time.Duration(i/3)*time.Second), logs.LevelInfo, "api", fmt.Sprintf("event %d", i))
	}
	mustWrite(t, s, events...)
	slices.SortFunc(events, func(a, b logs.Event) int {
		return -cmp.Or(a.Timestamp.Compare(b.Timestamp), bytes.Compare(a.ID[:], b.ID[:]))
	})
	return s, events
}

func TestSearchOffsetPaging(t *testing.T) {
	t.Parallel()
	s, desc := pagingFixture(t, 25)
	asc := slices.Clone(desc)
	slices.Reverse(asc)
	for _, order := range []struct {
		asc  bool
		want []logs.Event
	}{{false, desc}, {true, asc}} {
		t.Run(fmt.Sprintf("asc=%v", order.asc), func(t *testing.T) {
			var got []uuid.UUID
			for p, wantLen := range []int{10, 10, 5, 0} {
				q := searchAll(t0, t0.Add(time.Hour), 10)
				q.Page, q.Asc = p, order.asc
				page, err := s.Search(context.Background(), q)
				if err != nil {
					t.Fatalf("page %d: %v", p, err)
				}
				if len(page.Events) != wantLen {
					t.Fatalf("page %d: %d events, want %d", p, len(page.Events), wantLen)
				}
				if page.Total != 25 {
					t.Errorf("page %d: total %d, want 25", p, page.Total)
				}
				// Next is set while more rows follow, for switching to cursors.
				if more := p < 2; (page.Next != nil) != more {
					t.Errorf("page %d: Next %v, want set=%v", p, page.Next, more)
				}
				if page.Next != nil {
					last := page.Events[len(page.Events)-1]
					if !page.Next.TS.Equal(last.Timestamp) || page.Next.ID != last.ID {
						t.Errorf("page %d: Next %v is not the last event", p, page.Next)
					}
				}
				got = append(got, ids(page.Events)...)
			}
			if !slices.Equal(got, ids(order.want)) {
				t.Errorf("pages joined: got %v, want %v", got, ids(order.want))
			}
		})
	}
}

func TestSearchCursorPaging(t *testing.T) {
	t.Parallel()
	s, desc := pagingFixture(t, 31)
	asc := slices.Clone(desc)
	slices.Reverse(asc)
	for _, order := range []struct {
		asc  bool
		want []logs.Event
	}{{false, desc}, {true, asc}} {
		for _, size := range []int{1, 3, 4, 31, 50} {
			t.Run(fmt.Sprintf("asc=%v/size=%d", order.asc, size), func(t *testing.T) {
				var got []uuid.UUID
				q := searchAll(t0, t0.Add(time.Hour), size)
				q.Asc = order.asc
				q.Page = 7 // ignored once a cursor is given
				for pages := 0; ; pages++ {
					if pages > 40 {
						t.Fatal("cursor paging does not end")
					}
					if q.After == nil {
						q.Page = 0
					}
					page, err := s.Search(context.Background(), q)
					if err != nil {
						t.Fatal(err)
					}
					if page.Total != 31 {
						t.Errorf("total %d, want 31", page.Total)
					}
					got = append(got, ids(page.Events)...)
					if page.Next == nil {
						break
					}
					q.After, q.Page = page.Next, 7
				}
				if !slices.Equal(got, ids(order.want)) {
					t.Errorf("walk: got %v, want %v", got, ids(order.want))
				}
			})
		}
	}
}

func TestSearchTotal(t *testing.T) {
	t.Parallel()
	s, _ := pagingFixture(t, 25)
	// Without a keyword, trace or metadata filter the total comes from the
	// rollups: exact whatever the count limit.
	for _, limit := range []int{0, 10, 25} {
		q := searchAll(t0, t0.Add(time.Hour), 5)
		q.CountLimit = limit
		page, err := s.Search(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if page.Total != 25 || page.TotalIsEstimate {
			t.Errorf("rollup total with CountLimit %d: %d estimate %v, want 25 exact", limit, page.Total, page.TotalIsEstimate)
		}
	}
	// With a keyword the rows are counted, at most CountLimit of them.
	for _, tc := range []struct {
		limit    int
		total    int64
		estimate bool
	}{
		{0, 25, false}, // default 10000
		{-1, 25, false},
		{10, 10, true},
		{24, 24, true},
		{25, 25, false},
		{26, 25, false},
	} {
		q := searchAll(t0, t0.Add(time.Hour), 5)
		q.CountLimit = tc.limit
		q.Keyword = "event"
		page, err := s.Search(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if page.Total != tc.total || page.TotalIsEstimate != tc.estimate {
			t.Errorf("CountLimit %d: total %d estimate %v, want %d %v",
				tc.limit, page.Total, page.TotalIsEstimate, tc.total, tc.estimate)
		}
	}
}

func TestSearchRejects(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	for _, q := range []logs.Search{
		{Start: t0, End: t0, Size: 0},
		{Start: t0, End: t0, Size: 10, Page: -1},
	} {
		if _, err := s.Search(context.Background(), q); err == nil {
			t.Errorf("Search(%+v) succeeded", q)
		}
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	var events []logs.Event
	add := func(n int, level logs.Level, source string, ts time.Time) {
		for range n {
			events = append(events, ev(ts, level, source, "m"))
		}
	}
	end := t0.Add(time.Hour)
	add(3, logs.LevelInfo, "api", t0)
	add(2, logs.LevelError, "api", end) // End is inclusive
	add(3, logs.LevelError, "db", t0.Add(time.Minute))
	add(3, logs.LevelDebug, "worker", t0.Add(time.Minute))
	add(1, logs.LevelWarn, "cache", t0.Add(time.Minute))
	add(3, logs.LevelInfo, "auth", t0.Add(time.Minute))
	// Outside the window.
	add(4, logs.LevelFatal, "api", t0.Add(-time.Microsecond))
	add(4, logs.LevelFatal, "zzz", end.Add(time.Microsecond))
	mustWrite(t, s, events...)

	type lv = map[logs.Level]int64
	type sc = []logs.SourceCount
	c := func(source string, n int64) logs.SourceCount { return logs.SourceCount{Source: source, Count: n} }
	cases := []struct {
		name string
		q    logs.Stats
		want logs.StatsResult
	}{
		{"all, default top", logs.Stats{}, logs.StatsResult{
			ByLevel:    lv{logs.LevelInfo: 6, logs.LevelError: 5, logs.LevelDebug: 3, logs.LevelWarn: 1},
			TopSources: sc{c("api", 5), c("auth", 3), c("db", 3), c("worker", 3), c("cache", 1)},
			Total:      15,
		}},
		{"top 2", logs.Stats{Top: 2}, logs.StatsResult{
			ByLevel:    lv{logs.LevelInfo: 6, logs.LevelError: 5, logs.LevelDebug: 3, logs.LevelWarn: 1},
			TopSources: sc{c("api", 5), c("auth", 3)},
			Total:      15,
		}},
		{"level filter", logs.Stats{Levels: []logs.Level{logs.LevelError}}, logs.StatsResult{
			ByLevel:    lv{logs.LevelError: 5},
			TopSources: sc{c("db", 3), c("api", 2)},
			Total:      5,
		}},
		{"source filter", logs.Stats{Sources: []string{"api", "cache"}}, logs.StatsResult{
			ByLevel:    lv{logs.LevelInfo: 3, logs.LevelError: 2, logs.LevelWarn: 1},
			TopSources: sc{c("api", 5), c("cache", 1)},
			Total:      6,
		}},
		{"narrow window", logs.Stats{Start: t0, End: t0}, logs.StatsResult{
			ByLevel:    lv{logs.LevelInfo: 3},
			TopSources: sc{c("api", 3)},
			Total:      3,
		}},
		{"empty window", logs.Stats{Start: t0.Add(2 * time.Hour), End: t0.Add(3 * time.Hour)}, logs.StatsResult{
			ByLevel:    lv{},
			TopSources: sc{},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			if q.Start.IsZero() {
				q.Start, q.End = t0, end
			}
			got, err := s.Stats(context.Background(), q)
			if err != nil {
				t.Fatalf("Stats: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// A trace search over many blocks keeps exactly the rows of the trace,
// whichever blocks' filters answer maybe.
func TestSearchTraceAcrossBlocks(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	base := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	var want []logs.Event
	for b := range 30 {
		var batch []logs.Event
		for i := range 50 {
			e := withTrace(ev(base.Add(time.Duration(b*50+i)*time.Second), logs.LevelInfo, "api", fmt.Sprint("log ", b, " ", i)), fmt.Sprintf("t%04d", b*50+i))
			if (b == 3 || b == 17) && i%10 == 0 {
				e = withTrace(e, "wanted")
				e.Message = "wanted " + e.Message
				want = append(want, e)
			}
			batch = append(batch, e)
		}
		mustWrite(t, s, batch...)
	}
	for _, tc := range []struct {
		name string
		q    logs.Search
		want int
	}{
		{"trace", logs.Search{TraceID: "wanted"}, len(want)},
		{"trace and keyword", logs.Search{TraceID: "wanted", Keyword: "log 17"}, 5},
		{"absent trace", logs.Search{TraceID: "absent"}, 0},
	} {
		q := tc.q
		q.Start, q.End, q.Size, q.CountLimit = base, base.Add(time.Hour), 100, 1000
		page, err := s.Search(context.Background(), q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(page.Events) != tc.want || page.Total != int64(tc.want) {
			t.Errorf("%s: %d logs, total %d; want %d", tc.name, len(page.Events), page.Total, tc.want)
		}
		for _, e := range page.Events {
			if e.TraceID != "wanted" {
				t.Errorf("%s: log of trace %q", tc.name, e.TraceID)
			}
		}
	}
}

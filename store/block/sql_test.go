package block_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/logengine/logengine/store"
	"github.com/logengine/logengine/store/block"
	"github.com/logengine/logengine/store/logs"
	"github.com/logengine/logengine/store/storetest"
)

// The block reader must select exactly the rows the row store's SQL
// selects (store.Search: ILIKE, jsonb containment, the time bounds), and a
// summary bloom must answer in SQL (get_bit) as MayContain does in Go.
// Both run here against the real PostgreSQL.
func TestMatchAgreesWithSQL(t *testing.T) {
	ctx := context.Background()
	url := storetest.NewURL(t)
	s, err := store.Open(ctx, store.Config{URL: url}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	codec, err := block.NewCodec(block.CompressionDefault)
	if err != nil {
		t.Fatal(err)
	}
	defer codec.Close()

	sqlRows := func(t *testing.T, f block.Filter) []uuid.UUID {
		t.Helper()
		page, err := s.Search(ctx, logs.Search{
			Start: f.Start, End: f.End, Levels: f.Levels, Sources: f.Sources,
			Keyword: f.Keyword, TraceID: f.TraceID, Meta: f.Meta, Size: 100000, Asc: true,
		})
		if err != nil {
			t.Fatalf("Search(%+v): %v", f, err)
		}
		var ids []uuid.UUID
		for _, e := range page.Events {
			ids = append(ids, e.ID)
		}
		return ids
	}
	blockRows := func(t *testing.T, data []byte, events []logs.Event, f block.Filter) []uuid.UUID {
		t.Helper()
		r, err := codec.NewReader(data)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := r.Match(f)
		if err != nil {
			t.Fatal(err)
		}
		var ids []uuid.UUID
		for _, i := range rows {
			ids = append(ids, events[i].ID)
		}
		return ids
	}
	// bloomSQL is the test the query executor runs on a stored summary.
	bloomSQL := func(t *testing.T, bloom []byte, hashes []uint64) bool {
		t.Helper()
		hs := make([]int64, len(hashes))
		for i, h := range hashes {
			hs[i] = int64(h)
		}
		var may bool
		err := conn.QueryRow(ctx, `SELECT coalesce(bool_and(get_bit($1::bytea, (h % (length($1::bytea) * 8))::int) = 1), true)
			FROM unnest($2::bigint[]) AS h`, bloom, hs).Scan(&may)
		if err != nil {
			t.Fatal(err)
		}
		return may
	}
	checkBlooms := func(t *testing.T, sum block.Summary, f block.Filter) {
		t.Helper()
		checks := []struct {
			bloom  []byte
			hashes []uint64
		}{{sum.MessageBloom, block.KeywordHashes(f.Keyword)}, {sum.TraceBloom, block.TraceHashes(f.TraceID)}}
		for _, m := range f.Meta {
			checks = append(checks, struct {
				bloom  []byte
				hashes []uint64
			}{sum.MetaBloom, block.MetaHashes(m.Key, m.Value)})
		}
		for _, c := range checks {
			if goSays, sqlSays := block.MayContain(c.bloom, c.hashes), bloomSQL(t, c.bloom, c.hashes); goSays != sqlSays {
				t.Errorf("filter %+v: MayContain = %v, get_bit in SQL = %v", f, goSays, sqlSays)
			}
		}
	}

	t.Run("semantics table", func(t *testing.T) {
		events := block.MatchEvents()
		if _, err := s.WriteBatch(ctx, events); err != nil {
			t.Fatal(err)
		}
		b, err := codec.Encode(events)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range block.MatchCases() {
			var want []uuid.UUID
			for _, i := range c.Want {
				want = append(want, events[i].ID)
			}
			// The table's own windows lie within the events' minute; the
			// other test's rows are hours away.
			f := c.Filter
			if f.Start.IsZero() {
				f.Start = events[0].Timestamp
			}
			if f.End.IsZero() {
				f.End = events[len(events)-1].Timestamp
			}
			if got := sqlRows(t, f); !slices.Equal(got, want) {
				t.Errorf("%s: SQL selects %v, the table says %v", c.Name, got, want)
			}
			if got := blockRows(t, b.Data, events, c.Filter); !slices.Equal(got, want) {
				t.Errorf("%s: Match selects %v, want %v", c.Name, got, want)
			}
			checkBlooms(t, b.Summary, c.Filter)
		}
	})

	t.Run("random rows and filters", func(t *testing.T) {
		// Random content a day later, so that windows keep the two sets
		// apart.
		events := block.RandomEvents(11, 400)
		for i := range events {
			events[i].Timestamp = events[i].Timestamp.Add(24 * time.Hour)
			events[i].Message = storable(events[i].Message)
		}
		events = block.Stored(events)
		if _, err := s.WriteBatch(ctx, events); err != nil {
			t.Fatal(err)
		}
		b, err := codec.Encode(events)
		if err != nil {
			t.Fatal(err)
		}
		window := block.Filter{Start: events[0].Timestamp, End: events[len(events)-1].Timestamp}
		var filters []block.Filter
		for i, e := range events {
			for _, f := range block.FiltersFor(uint64(i), e) {
				f.Start, f.End = window.Start, window.End
				filters = append(filters, f)
			}
		}
		// Narrower windows, levels and sources, alone and together.
		for i := range 20 {
			a, z := events[i*7].Timestamp, events[len(events)-1-i*11].Timestamp
			filters = append(filters,
				block.Filter{Start: a, End: z},
				block.Filter{Start: a.Add(time.Nanosecond), End: z.Add(-time.Nanosecond)},
				block.Filter{Start: a, End: z, Levels: []logs.Level{logs.Level(i % logs.NumLevels)}},
				block.Filter{Start: a, End: z, Sources: []string{fmt.Sprint("s", i%6)}, Keyword: "error"},
			)
		}
		differ := 0
		for _, f := range filters {
			want := sqlRows(t, f)
			if got := blockRows(t, b.Data, events, f); !slices.Equal(got, want) {
				differ++
				t.Errorf("filter %+v: Match selects %d rows, SQL %d", f, len(got), len(want))
			}
			if len(want) > 0 && !b.Summary.MayMatch(f) {
				t.Errorf("filter %+v: the summary rules out a block SQL finds rows in", f)
			}
			checkBlooms(t, b.Summary, f)
			if differ > 10 {
				t.FailNow()
			}
		}
		t.Logf("%d filters agree", len(filters))
	})
}

// storable drops what PostgreSQL's text type refuses: the NUL byte.
func storable(s string) string { return strings.ReplaceAll(s, "\x00", "") }

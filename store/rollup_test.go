package store_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/logengine/logengine/store"
	"github.com/logengine/logengine/store/logs"
	"github.com/logengine/logengine/store/storetest"
)

// The rollup tests' data spans two day boundaries and many hour and minute
// boundaries.
var (
	rollFrom    = time.Date(2024, 3, 9, 22, 0, 0, 0, time.UTC)
	rollTo      = time.Date(2024, 3, 12, 2, 0, 0, 0, time.UTC)
	rollSources = []string{"api", "auth", "db", "worker"}
	rollWords   = []string{"alpha", "bravo", "charlie", "delta", "echo"}
	rollUsers   = []string{"alice", "bob", "carol"}
)

// rollupSeed drives every random choice of these tests; a failure names
// the window, and the seed reproduces it.
const rollupSeed = 20240309

// openZoned opens a Store on a fresh database whose sessions run in a time
// zone 5:45 away from UTC, so that a bucket computed in the session's zone
// instead of UTC shows up as a wrong hour.
func openZoned(t *testing.T) (*store.Store, *pgx.Conn) {
	t.Helper()
	dbURL := storetest.NewURL(t)
	conn := sqlConn(t, dbURL)
	var name string
	if err := conn.QueryRow(context.Background(), "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(),
		"ALTER DATABASE "+pgx.Identifier{name}.Sanitize()+" SET timezone = 'Asia/Kathmandu'"); err != nil {
		t.Fatal(err)
	}
	s := openURL(t, dbURL) // its connections start after the ALTER
	return s, conn
}

// randomEvents makes n events in [from, to), at microsecond precision: many
// at random instants, the others exactly on or a microsecond around a
// minute, hour or day boundary, or crowded into one busy minute.
func randomEvents(r *rand.Rand, n int, from, to time.Time) []logs.Event {
	span := to.Sub(from).Microseconds()
	busy := from.Add(7*time.Hour + 13*time.Minute)
	out := make([]logs.Event, 0, n)
	for len(out) < n {
		ts := from.Add(time.Duration(r.Int64N(span)) * time.Microsecond)
		switch r.IntN(12) {
		case 0:
			ts = ts.Truncate(time.Minute)
		case 1:
			ts = ts.Truncate(time.Hour)
		case 2:
			ts = ts.Truncate(24 * time.Hour)
		case 3:
			ts = ts.Truncate(time.Minute).Add(-time.Microsecond)
		case 4:
			ts = ts.Truncate(time.Hour).Add(-time.Microsecond)
		case 5:
			ts = ts.Truncate(time.Hour).Add(time.Microsecond)
		case 6:
			ts = busy.Add(time.Duration(r.Int64N(60e6)) * time.Microsecond)
		}
		if ts.Before(from) || !ts.Before(to) {
			continue
		}
		e := logs.Event{
			ID:        uuid.New(),
			Timestamp: ts,
			Level:     logs.AllLevels()[r.IntN(len(logs.AllLevels()))],
			Source:    rollSources[r.IntN(len(rollSources))],
			Message:   fmt.Sprintf("%s request %d", rollWords[r.IntN(len(rollWords))], r.IntN(1000)),
		}
		if r.IntN(2) == 0 {
			e.Metadata = json.RawMessage(fmt.Sprintf(`{"user":%q,"status":%d}`,
				rollUsers[r.IntN(len(rollUsers))], []int{200, 404, 500}[r.IntN(3)]))
		}
		out = append(out, e)
	}
	return out
}

// rollupFixture writes a few thousand random events in several batches,
// some of them delivered twice, so that the rollups are built by upserts,
// and returns the stored timestamps in order.
func rollupFixture(t *testing.T, r *rand.Rand) (*store.Store, *pgx.Conn, []time.Time) {
	t.Helper()
	s, conn := openZoned(t)
	events := randomEvents(r, 4000, rollFrom, rollTo)
	const size = 500
	for i := 0; i < len(events); i += size {
		batch := store.Batch{Events: events[i:min(i+size, len(events))]}
		batch.Positions = at(0, int64(i), len(batch.Events))
		if n := mustWriteAt(t, s, batch); n != int64(len(batch.Events)) {
			t.Fatalf("batch at %d inserted %d, want %d", i, n, len(batch.Events))
		}
		if i%(2*size) == 0 {
			if n := mustWriteAt(t, s, batch); n != 0 {
				t.Fatalf("redelivered batch at %d inserted %d", i, n)
			}
		}
	}
	snapshot(t, conn)
	rows, err := conn.Query(context.Background(), "SELECT ts FROM logs ORDER BY ts")
	if err != nil {
		t.Fatal(err)
	}
	stamps, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		t.Fatal(err)
	}
	if len(stamps) != len(events) {
		t.Fatalf("logs holds %d rows, want %d", len(stamps), len(events))
	}
	return s, conn, stamps
}

// rollupMismatches compares a rollup table with count(*) over logs grouped
// the same way (computed with date_bin, not the writer's date_trunc) and
// describes every difference. An empty result means they are equal.
func rollupMismatches(t *testing.T, conn *pgx.Conn, table, width string) []string {
	t.Helper()
	snapshot(t, conn)
	rows, err := conn.Query(context.Background(), `
		WITH truth AS (
			SELECT date_bin('`+width+`', ts, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket, level, source, count(*) AS n
			FROM logs GROUP BY 1, 2, 3
		)
		SELECT to_char(coalesce(t.bucket, r.bucket) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
			coalesce(t.level, r.level), coalesce(t.source, r.source), coalesce(t.n, 0), coalesce(r.count, 0)
		FROM truth t FULL JOIN `+table+` r ON r.bucket = t.bucket AND r.level = t.level AND r.source = t.source
		WHERE t.n IS DISTINCT FROM r.count
		ORDER BY 1, 2, 3`)
	if err != nil {
		t.Fatalf("compare %s: %v", table, err)
	}
	var (
		out    []string
		bucket string
		level  int16
		source string
		truth  int64
		rollup int64
	)
	_, err = pgx.ForEachRow(rows, []any{&bucket, &level, &source, &truth, &rollup}, func() error {
		out = append(out, fmt.Sprintf("%s level %d source %q: logs %d, rollup %d", bucket, level, source, truth, rollup))
		return nil
	})
	if err != nil {
		t.Fatalf("compare %s: %v", table, err)
	}
	return out
}

// checkRollups fails t unless both rollups equal count(*) over logs.
func checkRollups(t *testing.T, conn *pgx.Conn, when string) {
	t.Helper()
	for _, r := range []struct{ table, width string }{
		{"log_rollup_minute", "1 minute"},
		{"log_rollup_hour", "1 hour"},
	} {
		if bad := rollupMismatches(t, conn, r.table, r.width); len(bad) > 0 {
			t.Errorf("%s: %s differs from logs in %d groups, first: %s", when, r.table, len(bad),
				strings.Join(bad[:min(len(bad), 5)], "; "))
		}
		// The rollup without the source is the sum over the sources.
		if n := queryInt(t, conn, `SELECT count(*) FROM `+r.table+`_level l FULL JOIN (
				SELECT bucket, level, sum(count) AS n FROM `+r.table+` GROUP BY 1, 2) s USING (bucket, level)
			WHERE l.count IS DISTINCT FROM s.n`); n != 0 {
			t.Errorf("%s: %s_level differs from the sum over sources in %d groups", when, r.table, n)
		}
	}
}

// rollupRows is the whole content of a rollup table, for before/after
// comparisons.
func rollupRows(t *testing.T, conn *pgx.Conn, table string) []string {
	t.Helper()
	minuteSnapshot(t, conn)
	rows, err := conn.Query(context.Background(),
		"SELECT bucket::text || ' ' || level || ' ' || source || ' ' || count FROM "+table+" ORDER BY bucket, level, source")
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRollupsMatchLogs(t *testing.T) {
	t.Parallel()
	s, conn := openZoned(t)
	r := rand.New(rand.NewPCG(rollupSeed, 1))
	first := randomEvents(r, 1500, rollFrom, rollTo)
	// Exact boundaries of every kind, and their neighbours.
	for _, ts := range []time.Time{
		time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC).Add(-time.Microsecond),
		time.Date(2024, 3, 10, 13, 0, 0, 0, time.UTC),
		time.Date(2024, 3, 10, 13, 0, 0, 0, time.UTC).Add(-time.Microsecond),
		time.Date(2024, 3, 10, 13, 0, 0, 1000, time.UTC),
		time.Date(2024, 3, 11, 9, 41, 0, 0, time.UTC),
		time.Date(2024, 3, 11, 9, 41, 59, 999999000, time.UTC),
		time.Date(2024, 3, 11, 9, 42, 0, 0, time.UTC),
	} {
		first = append(first, ev(ts, logs.LevelWarn, "edge", "boundary"), ev(ts, logs.LevelWarn, "edge", "boundary"))
	}

	firstAt := store.Batch{Events: first, Positions: at(0, 0, len(first))}

	// Client retries: events whose client chose the id, some sent twice
	// more in the same batch, in another order (new records of partition 1).
	second := randomEvents(r, 300, rollFrom, rollTo)
	for i := range second {
		second[i].ClientID = true
	}
	withDups := slices.Clone(second)
	for i := 0; i < len(second); i += 3 {
		withDups = append(withDups, second[i], second[i])
	}
	r.Shuffle(len(withDups), func(i, j int) { withDups[i], withDups[j] = withDups[j], withDups[i] })
	secondAt := store.Batch{Events: withDups, Positions: at(1, 0, len(withDups))}

	// A batch redelivering records of the first one, then new records.
	fresh := randomEvents(r, 200, rollFrom, rollTo)
	overlap := store.Batch{Events: slices.Concat(first[100:400], fresh),
		Positions: slices.Concat(at(0, 100, 300), at(0, int64(len(first)), len(fresh)))}

	// A client's retry without a timestamp of its own gets another one.
	moved := second[7]
	moved.Timestamp = moved.Timestamp.Add(time.Hour)
	movedAt := store.Batch{Events: []logs.Event{moved, moved}, Positions: at(1, int64(len(withDups)), 2)}

	everything := store.Batch{Events: slices.Concat(firstAt.Events, secondAt.Events, fresh, movedAt.Events),
		Positions: slices.Concat(firstAt.Positions, secondAt.Positions, overlap.Positions[300:], movedAt.Positions)}

	steps := []struct {
		name  string
		batch store.Batch
		want  int64
	}{
		{"first batch", firstAt, int64(len(first))},
		{"redelivery", firstAt, 0},
		{"duplicates inside the batch", secondAt, int64(len(second))},
		{"overlapping batch", overlap, int64(len(fresh))},
		{"client id again, another timestamp", movedAt, 0},
		{"redelivery of everything", everything, 0},
	}
	total := int64(0)
	for _, st := range steps {
		minuteBefore := rollupRows(t, conn, "log_rollup_minute")
		hourBefore := rollupRows(t, conn, "log_rollup_hour")
		if n := mustWriteAt(t, s, st.batch); n != st.want {
			t.Errorf("%s: inserted %d, want %d", st.name, n, st.want)
		}
		total += st.want
		if n := storedCount(t, conn); n != total {
			t.Errorf("%s: logs holds %d rows, want %d", st.name, n, total)
		}
		checkRollups(t, conn, st.name)
		if st.want == 0 {
			if !slices.Equal(rollupRows(t, conn, "log_rollup_minute"), minuteBefore) ||
				!slices.Equal(rollupRows(t, conn, "log_rollup_hour"), hourBefore) {
				t.Errorf("%s: rollups changed though nothing was inserted", st.name)
			}
		}
	}
	minuteSnapshot(t, conn)
	if n := queryInt(t, conn, "SELECT count(*) FROM log_rollup_minute WHERE count <= 0"); n != 0 {
		t.Errorf("%d minute rollup rows with a count <= 0", n)
	}
	// The hour rollup is the sum of the minute rollup.
	if n := queryInt(t, conn, `SELECT count(*) FROM log_rollup_hour h FULL JOIN (
			SELECT date_bin('1 hour', bucket, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket, level, source, sum(count) AS n
			FROM log_rollup_minute GROUP BY 1, 2, 3) m USING (bucket, level, source)
		WHERE h.count IS DISTINCT FROM m.n`); n != 0 {
		t.Errorf("%d hour rollup rows differ from the sum of their minutes", n)
	}
}

// Writers racing on the same rollup rows, and on the same events.
func TestRollupsConcurrentWriters(t *testing.T) {
	t.Parallel()
	s, conn := openZoned(t)
	r := rand.New(rand.NewPCG(rollupSeed, 2))
	// A narrow range so that the writers share rollup rows.
	from := time.Date(2024, 3, 10, 11, 58, 0, 0, time.UTC)
	shared := randomEvents(r, 400, from, from.Add(5*time.Minute))
	const writers = 6
	own := make([][]logs.Event, writers)
	for i := range own {
		own[i] = randomEvents(r, 400, from, from.Add(5*time.Minute))
	}
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			for j := 0; j < 400; j += 50 {
				// The shared records in the same order for everyone (a
				// redelivery), plus records only this writer has.
				batch := store.Batch{Events: slices.Concat(shared[j:j+50], own[i][j:j+50]),
					Positions: slices.Concat(at(0, int64(j), 50), at(int32(i+1), int64(j), 50))}
				if _, err := s.Write(context.Background(), batch); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	if n := storedCount(t, conn); n != 400*(writers+1) {
		t.Errorf("logs holds %d rows, want %d", n, 400*(writers+1))
	}
	checkRollups(t, conn, "after concurrent writers")
}

// levelCodes is levels as stored, never nil (a nil array would be NULL).
func levelCodes(levels []logs.Level) []int16 {
	codes := []int16{}
	for _, l := range levels {
		codes = append(codes, l.Code())
	}
	return codes
}

// rawCounts counts logs with ts BETWEEN start AND end per level and
// source, straight from logs. Empty levels or sources mean no filter.
func rawCounts(t *testing.T, conn *pgx.Conn, start, end time.Time, levels []logs.Level, sources []string) map[logs.Level]map[string]int64 {
	t.Helper()
	snapshot(t, conn)
	rows, err := conn.Query(context.Background(), `SELECT level, source, count(*) FROM logs
		WHERE ts BETWEEN $1 AND $2
		AND (cardinality($3::smallint[]) = 0 OR level = ANY($3))
		AND (cardinality($4::text[]) = 0 OR source = ANY($4))
		GROUP BY 1, 2`, start, end, levelCodes(levels), append([]string{}, sources...))
	if err != nil {
		t.Fatal(err)
	}
	out := map[logs.Level]map[string]int64{}
	var (
		code   int16
		source string
		n      int64
	)
	_, err = pgx.ForEachRow(rows, []any{&code, &source, &n}, func() error {
		l, err := logs.LevelFromCode(code)
		if err != nil {
			return err
		}
		if out[l] == nil {
			out[l] = map[string]int64{}
		}
		out[l][source] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// wantStats is the StatsResult that raw counts call for.
func wantStats(counts map[logs.Level]map[string]int64, top int) logs.StatsResult {
	res := logs.StatsResult{ByLevel: map[logs.Level]int64{}, TopSources: []logs.SourceCount{}}
	bySource := map[string]int64{}
	for l, m := range counts {
		for src, n := range m {
			res.ByLevel[l] += n
			res.Total += n
			bySource[src] += n
		}
	}
	for src, n := range bySource {
		res.TopSources = append(res.TopSources, logs.SourceCount{Source: src, Count: n})
	}
	slices.SortFunc(res.TopSources, func(a, b logs.SourceCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Source, b.Source))
	})
	res.TopSources = res.TopSources[:min(top, len(res.TopSources))]
	return res
}

// randomMicro is a random instant in [from, to), at microsecond precision.
func randomMicro(r *rand.Rand, from, to time.Time) time.Time {
	return from.Add(time.Duration(r.Int64N(to.Sub(from).Microseconds())) * time.Microsecond)
}

// randomWindow picks an inclusive window of one of many shapes over the
// data (stamps are the stored timestamps, in order) and names its shape.
func randomWindow(r *rand.Rand, stamps []time.Time) (start, end time.Time, kind string) {
	lo, hi := rollFrom.Add(-time.Hour), rollTo.Add(time.Hour)
	a, b := randomMicro(r, lo, hi), randomMicro(r, lo, hi)
	if b.Before(a) {
		a, b = b, a
	}
	stamp := func() time.Time { return stamps[r.IntN(len(stamps))] }
	switch r.IntN(13) {
	case 0:
		return a, b, "mid-minute both ends"
	case 1:
		return a.Truncate(time.Minute), b.Truncate(time.Minute), "on minute boundaries"
	case 2:
		return a.Truncate(time.Hour), b.Truncate(time.Hour), "on hour boundaries"
	case 3:
		return a.Truncate(time.Hour), b.Truncate(time.Hour).Add(-time.Microsecond), "whole hours"
	case 4:
		d := a.Truncate(24 * time.Hour)
		return d, d.Add(time.Duration(1+r.IntN(2))*24*time.Hour - time.Microsecond), "whole days"
	case 5:
		return a, b.Truncate(time.Minute), "mid-minute start, end on a minute"
	case 6:
		return a.Truncate(time.Minute), b, "start on a minute, mid-minute end"
	case 7:
		return a, a.Add(time.Duration(r.Int64N(60e6)) * time.Microsecond), "shorter than a minute"
	case 8:
		m := a.Truncate(time.Minute)
		return m.Add(-time.Duration(1+r.Int64N(30e6)) * time.Microsecond),
			m.Add(time.Duration(r.Int64N(30e6)) * time.Microsecond), "short, across a minute boundary"
	case 9:
		s, e := stamp(), stamp()
		if e.Before(s) {
			s, e = e, s
		}
		return s, e, "from one event to another"
	case 10:
		s := stamp()
		return s, s, "a single instant with events"
	case 11:
		if r.IntN(2) == 0 {
			return lo, rollFrom.Add(-time.Microsecond), "empty, before the data"
		}
		return rollTo, hi, "empty, after the data"
	default:
		h := a.Truncate(time.Hour)
		return h.Add(time.Microsecond), h.Add(time.Duration(1+r.IntN(30))*time.Hour - time.Microsecond), "hours minus a microsecond at both ends"
	}
}

// randomFilter picks no filter, or a few levels, or a few sources, or both.
func randomFilter(r *rand.Rand) ([]logs.Level, []string) {
	var levels []logs.Level
	var sources []string
	k := r.IntN(4)
	if k&1 != 0 {
		for _, i := range r.Perm(len(logs.AllLevels()))[:1+r.IntN(3)] {
			levels = append(levels, logs.AllLevels()[i])
		}
	}
	if k&2 != 0 {
		for _, i := range r.Perm(len(rollSources))[:1+r.IntN(2)] {
			sources = append(sources, rollSources[i])
		}
		if r.IntN(4) == 0 {
			sources = append(sources, "no-such-source")
		}
	}
	return levels, sources
}

// The main check of the split between rollups and raw edges: Stats equals
// a direct count(*) over logs for windows of every shape.
func TestStatsMatchesRawCounts(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(rollupSeed, 3))
	s, conn, stamps := rollupFixture(t, r)
	type window struct {
		start, end time.Time
		kind       string
	}
	var windows []window
	// Fixed shapes first, then random ones.
	for _, w := range []window{
		{rollFrom, rollTo, "all the data"},
		{rollFrom.Add(-24 * time.Hour), rollTo.Add(24 * time.Hour), "days around the data"},
		{time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC), time.Date(2024, 3, 11, 0, 0, 0, 0, time.UTC), "a day, both midnights"},
		{time.Date(2024, 3, 10, 5, 0, 0, 0, time.UTC), time.Date(2024, 3, 10, 6, 0, 0, 0, time.UTC), "an hour, both ends"},
		{time.Date(2024, 3, 10, 5, 7, 0, 0, time.UTC), time.Date(2024, 3, 10, 5, 8, 0, 0, time.UTC), "a minute, both ends"},
		{rollFrom.Add(7*time.Hour + 13*time.Minute + 17*time.Second), rollFrom.Add(7*time.Hour + 13*time.Minute + 41*time.Second), "inside the busy minute"},
		{rollFrom.Add(7*time.Hour + 13*time.Minute), rollFrom.Add(7*time.Hour + 14*time.Minute - time.Microsecond), "the busy minute"},
		{stamps[len(stamps)/2], stamps[len(stamps)/2], "one instant"},
		{stamps[0], stamps[len(stamps)-1], "first to last event"},
		{rollTo, rollFrom, "end before start"},
	} {
		windows = append(windows, w)
	}
	for range 200 {
		start, end, kind := randomWindow(r, stamps)
		windows = append(windows, window{start, end, kind})
	}
	for i, w := range windows {
		levels, sources := randomFilter(r)
		if i < 10 {
			levels, sources = nil, nil
		}
		top := 1 + r.IntN(len(rollSources)+1)
		q := logs.Stats{Start: w.start, End: w.end, Levels: levels, Sources: sources, Top: top}
		got, err := s.Stats(context.Background(), q)
		if err != nil {
			t.Fatalf("window %d (%s): Stats: %v", i, w.kind, err)
		}
		want := wantStats(rawCounts(t, conn, w.start, w.end, levels, sources), top)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("window %d (%s) [%s, %s] levels %v sources %v top %d:\n got %+v\nwant %+v",
				i, w.kind, w.start.Format(time.RFC3339Nano), w.end.Format(time.RFC3339Nano), levels, sources, top, got, want)
		}
	}
}

// Totals without a keyword come from the rollups and are exact; with a
// keyword (or a metadata filter) they are counted and bounded.
func TestSearchTotalsMatchRawCounts(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(rollupSeed, 4))
	s, conn, stamps := rollupFixture(t, r)
	rawTotal := func(start, end time.Time, levels []logs.Level, sources []string, keyword string, user string) int64 {
		return queryInt(t, conn, `SELECT count(*) FROM logs
			WHERE ts BETWEEN $1 AND $2
			AND (cardinality($3::smallint[]) = 0 OR level = ANY($3))
			AND (cardinality($4::text[]) = 0 OR source = ANY($4))
			AND message ILIKE '%' || $5 || '%'
			AND ($6 = '' OR metadata->>'user' = $6)`,
			start, end, levelCodes(levels), append([]string{}, sources...), keyword, user)
	}
	const size = 3
	for i := range 150 {
		start, end, kind := randomWindow(r, stamps)
		levels, sources := randomFilter(r)
		limit := 1 + r.IntN(40)
		name := fmt.Sprintf("window %d (%s) [%s, %s] levels %v sources %v limit %d", i, kind,
			start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano), levels, sources, limit)
		q := logs.Search{Start: start, End: end, Levels: levels, Sources: sources, Size: size, CountLimit: limit}

		page, err := s.Search(context.Background(), q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := rawTotal(start, end, levels, sources, "", "")
		if page.Total != want || page.TotalIsEstimate {
			t.Errorf("%s: total %d (estimate %v), want %d exact", name, page.Total, page.TotalIsEstimate, want)
		}
		if len(page.Events) != int(min(want, size)) {
			t.Errorf("%s: page of %d events, want %d", name, len(page.Events), min(want, size))
		}

		// A keyword in any case, or part of one: counted up to the limit.
		word := rollWords[r.IntN(len(rollWords))]
		switch r.IntN(3) {
		case 0:
			word = strings.ToUpper(word)
		case 1:
			word = word[1:] + " rEq" // across two words
		}
		kq := q
		kq.Keyword = word
		page, err = s.Search(context.Background(), kq)
		if err != nil {
			t.Fatalf("%s keyword %q: %v", name, word, err)
		}
		raw := rawTotal(start, end, levels, sources, word, "")
		if wantTotal, est := min(raw, int64(limit)), raw > int64(limit); page.Total != wantTotal || page.TotalIsEstimate != est {
			t.Errorf("%s keyword %q: total %d (estimate %v), want %d (estimate %v) of %d",
				name, word, page.Total, page.TotalIsEstimate, wantTotal, est, raw)
		}

		// A metadata filter: counted up to the limit too.
		user := rollUsers[r.IntN(len(rollUsers))]
		mq := q
		mq.Meta = []logs.MetaMatch{{Key: "user", Value: user}}
		page, err = s.Search(context.Background(), mq)
		if err != nil {
			t.Fatalf("%s user %q: %v", name, user, err)
		}
		raw = rawTotal(start, end, levels, sources, "", user)
		if wantTotal, est := min(raw, int64(limit)), raw > int64(limit); page.Total != wantTotal || page.TotalIsEstimate != est {
			t.Errorf("%s user %q: total %d (estimate %v), want %d (estimate %v) of %d",
				name, user, page.Total, page.TotalIsEstimate, wantTotal, est, raw)
		}
	}
}

// epochFloor is the start of the epoch-aligned interval holding t.
func epochFloor(t time.Time, d time.Duration) time.Time {
	us, step := t.UnixMicro(), d.Microseconds()
	q := us / step
	if us%step < 0 {
		q--
	}
	return time.UnixMicro(q * step).UTC()
}

type storedRow struct {
	ts     time.Time
	level  logs.Level
	source string
}

// wantHistogram builds the histogram of q from every stored row.
func wantHistogram(rows []storedRow, q logs.Histogram) []logs.Bucket {
	var out []logs.Bucket
	index := map[time.Time]int{}
	for b := epochFloor(q.Start, q.Interval); !b.After(q.End); b = b.Add(q.Interval) {
		index[b] = len(out)
		out = append(out, logs.Bucket{Time: b, Counts: map[logs.Level]int64{}})
	}
	for _, row := range rows {
		if row.ts.Before(q.Start) || row.ts.After(q.End) ||
			(len(q.Levels) > 0 && !slices.Contains(q.Levels, row.level)) ||
			(len(q.Sources) > 0 && !slices.Contains(q.Sources, row.source)) {
			continue
		}
		b := &out[index[epochFloor(row.ts, q.Interval)]]
		b.Counts[row.level]++
		b.Total++
	}
	return out
}

func TestHistogramMatchesRawCounts(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(rollupSeed, 5))
	s, conn, stamps := rollupFixture(t, r)
	snapshot(t, conn)
	rows, err := conn.Query(context.Background(), "SELECT ts, level, source FROM logs")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storedRow, error) {
		var (
			sr   storedRow
			code int16
		)
		if err := row.Scan(&sr.ts, &code, &sr.source); err != nil {
			return sr, err
		}
		var err error
		sr.level, err = logs.LevelFromCode(code)
		return sr, err
	})
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		interval time.Duration
		maxSpan  time.Duration // keeps the number of buckets reasonable
	}{
		{time.Second, 10 * time.Minute},
		{time.Minute, 8 * time.Hour},
		{5 * time.Minute, 30 * time.Hour},
		{time.Hour, 0},
		{24 * time.Hour, 0},
	}
	for _, tc := range cases {
		t.Run(tc.interval.String(), func(t *testing.T) {
			type window struct {
				start, end time.Time
				kind       string
			}
			windows := []window{
				// Starting before the first event: leading empty buckets.
				{rollFrom.Add(-3*tc.interval - tc.interval/2), rollFrom.Add(2*tc.interval + time.Microsecond), "starts before the data"},
				{rollFrom.Add(7*time.Hour + 13*time.Minute), rollFrom.Add(7*time.Hour + 13*time.Minute + 59*time.Second), "the busy minute"},
				{time.Date(2024, 3, 10, 23, 59, 59, 0, time.UTC), time.Date(2024, 3, 11, 0, 0, 1, 0, time.UTC), "across midnight"},
			}
			if tc.maxSpan == 0 {
				windows = append(windows, window{rollFrom.Add(-25 * time.Hour), rollTo.Add(25 * time.Hour), "around all the data"})
			}
			for range 25 {
				start, end, kind := randomWindow(r, stamps)
				if tc.maxSpan > 0 && end.Sub(start) > tc.maxSpan {
					end = start.Add(time.Duration(r.Int64N(tc.maxSpan.Microseconds())) * time.Microsecond)
					kind += ", shortened"
				}
				windows = append(windows, window{start, end, kind})
			}
			for i, w := range windows {
				levels, sources := randomFilter(r)
				if i == 0 {
					levels, sources = nil, nil
				}
				q := logs.Histogram{Start: w.start, End: w.end, Levels: levels, Sources: sources, Interval: tc.interval}
				name := fmt.Sprintf("window %d (%s) [%s, %s] levels %v sources %v", i, w.kind,
					w.start.Format(time.RFC3339Nano), w.end.Format(time.RFC3339Nano), levels, sources)
				got, err := s.Histogram(context.Background(), q)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				want := wantHistogram(stored, q)
				checkBuckets(t, name, q, got.Buckets, want)
				if i == 0 {
					for j := range 3 {
						if j >= len(got.Buckets) || got.Buckets[j].Total != 0 {
							t.Errorf("%s: bucket %d before the first event is not empty", name, j)
						}
					}
				}
			}
		})
	}
}

// checkBuckets compares a histogram with the expected one, and checks the
// shape of the buckets on their own: contiguous, epoch-aligned, covering
// the window.
func checkBuckets(t *testing.T, name string, q logs.Histogram, got, want []logs.Bucket) {
	t.Helper()
	if len(got) == 0 {
		t.Errorf("%s: no buckets", name)
		return
	}
	if first := got[0].Time; first.After(q.Start) || !first.Add(q.Interval).After(q.Start) {
		t.Errorf("%s: first bucket %s does not hold the start", name, first)
	}
	if last := got[len(got)-1].Time; last.After(q.End) || !last.Add(q.Interval).After(q.End) {
		t.Errorf("%s: last bucket %s does not hold the end", name, last)
	}
	for i, b := range got {
		if !b.Time.Equal(epochFloor(b.Time, q.Interval)) || b.Time.Location() != time.UTC {
			t.Errorf("%s: bucket %s is not aligned to the epoch in UTC", name, b.Time)
		}
		if i > 0 && !b.Time.Equal(got[i-1].Time.Add(q.Interval)) {
			t.Errorf("%s: bucket %s does not follow %s", name, b.Time, got[i-1].Time)
		}
		var sum int64
		for _, n := range b.Counts {
			sum += n
		}
		if sum != b.Total {
			t.Errorf("%s: bucket %s: total %d, counts sum to %d", name, b.Time, b.Total, sum)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d buckets, want %d", name, len(got), len(want))
		return
	}
	nonZero := func(m map[logs.Level]int64) map[logs.Level]int64 {
		out := maps.Clone(m)
		maps.DeleteFunc(out, func(_ logs.Level, n int64) bool { return n == 0 })
		return out
	}
	bad := 0
	for i := range got {
		g, w := got[i], want[i]
		if !g.Time.Equal(w.Time) || g.Total != w.Total || !maps.Equal(nonZero(g.Counts), w.Counts) {
			if bad++; bad <= 3 {
				t.Errorf("%s: bucket %d: got %s %v total %d, want %s %v total %d",
					name, i, g.Time, g.Counts, g.Total, w.Time, w.Counts, w.Total)
			}
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d buckets wrong in all", name, bad)
	}
}

func TestHistogramRejectsInterval(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	for _, iv := range []time.Duration{0, -time.Minute} {
		if _, err := s.Histogram(context.Background(), logs.Histogram{Start: t0, End: t0.Add(time.Hour), Interval: iv}); err == nil {
			t.Errorf("Histogram with interval %v succeeded", iv)
		}
	}
}

func TestSearchMetadata(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	meta := []string{
		`{"user":"alice","status":500,"ok":true,"nested":{"a":1}}`,
		`{"user":"bob","status":"500","ok":false}`,
		`{"user":"alice","status":200,"ok":"true"}`,
		`{"a.b":"dot","it's":"q\"uote","a":{"b":"dot"}}`,
		``, // no metadata
		`{"user":"ALICE","status":500.0}`,
		`{"user":"carol","status":"five hundred","ok":null}`,
	}
	e := make([]logs.Event, len(meta))
	for i, m := range meta {
		level := logs.LevelInfo
		if i%2 == 1 {
			level = logs.LevelError
		}
		e[i] = ev(t0.Add(time.Duration(i)*time.Second), level, "api", fmt.Sprintf("event %d", i))
		if m != "" {
			e[i].Metadata = json.RawMessage(m)
		}
	}
	mustWrite(t, s, e...)
	// Outside the window: never returned.
	late := ev(t0.Add(time.Hour), logs.LevelInfo, "api", "late")
	late.Metadata = json.RawMessage(meta[0])
	mustWrite(t, s, late)

	mm := func(kv ...string) []logs.MetaMatch {
		var out []logs.MetaMatch
		for i := 0; i < len(kv); i += 2 {
			out = append(out, logs.MetaMatch{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	cases := []struct {
		name   string
		meta   []logs.MetaMatch
		levels []logs.Level
		want   []int
	}{
		{"string value", mm("user", "alice"), nil, []int{0, 2}},
		{"string value is case-sensitive", mm("user", "ALICE"), nil, []int{5}},
		{"another user", mm("user", "bob"), nil, []int{1}},
		{"no such user", mm("user", "mallory"), nil, nil},
		{"number matches number and string", mm("status", "500"), nil, []int{0, 1, 5}},
		{"number not present", mm("status", "404"), nil, nil},
		{"boolean matches boolean and string", mm("ok", "true"), nil, []int{0, 2}},
		{"false", mm("ok", "false"), nil, []int{1}},
		{"two filters AND-ed", mm("user", "alice", "status", "500"), nil, []int{0}},
		{"two filters, one failing", mm("user", "bob", "ok", "true"), nil, nil},
		{"with a level filter", mm("status", "500"), []logs.Level{logs.LevelError}, []int{1, 5}},
		{"key with a dot is a plain key", mm("a.b", "dot"), nil, []int{3}},
		{"a dot is no path", mm("a", "dot"), nil, nil},
		{"key and value with quotes", mm("it's", `q"uote`), nil, []int{3}},
		{"injection in the key", mm(`user":"alice"}' OR '1'='1`, "x"), nil, nil},
		{"injection in the value", mm("user", `alice"}' OR 1=1 --`), nil, nil},
		{"missing key", mm("nope", "alice"), nil, nil},
		{"empty value", mm("user", ""), nil, nil},
		{"nested key", mm("nested", "1"), nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := logs.Search{Start: t0, End: t0.Add(time.Minute), Meta: tc.meta, Levels: tc.levels, Size: 100, Asc: true}
			page, err := s.Search(context.Background(), q)
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			want := []uuid.UUID{}
			for _, i := range tc.want {
				want = append(want, e[i].ID)
			}
			if got := ids(page.Events); !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
			if page.Total != int64(len(want)) || page.TotalIsEstimate {
				t.Errorf("total %d (estimate %v), want %d exact", page.Total, page.TotalIsEstimate, len(want))
			}
		})
	}
}

// Blocks wholly inside the partial minute at a window's edge are counted
// from their summaries, the others row by row: the totals are the same.
func TestEdgeBlocksCountedFromSummaries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, conn := openZoned(t)
	minute := time.Date(2024, 3, 10, 12, 30, 0, 0, time.UTC)
	levels := []logs.Level{logs.LevelInfo, logs.LevelWarn, logs.LevelError}
	// Batches of a few seconds each: small blocks inside the edge.
	for b := range 10 {
		var batch []logs.Event
		for i := range 7 {
			ts := minute.Add(time.Duration(5*b+i%5)*time.Second + time.Duration(i)*time.Millisecond)
			batch = append(batch, ev(ts, levels[(b+i)%3], fmt.Sprintf("src%d", i%2), "edge"))
		}
		mustWrite(t, s, batch...)
	}
	snapshot(t, conn)
	for _, start := range []time.Time{minute.Add(2 * time.Second), minute.Add(12500 * time.Millisecond), minute.Add(-time.Minute)} {
		end := minute.Add(2 * time.Minute)
		for _, lv := range [][]logs.Level{nil, {logs.LevelWarn}} {
			codes := make([]int16, len(lv))
			for i, l := range lv {
				codes[i] = l.Code()
			}
			want := queryInt(t, conn, `SELECT count(*) FROM logs WHERE ts BETWEEN $1 AND $2
				AND (cardinality($3::smallint[]) = 0 OR level = ANY($3))`, start, end, codes)
			page, err := s.Search(ctx, logs.Search{Start: start, End: end, Levels: lv, Size: 1})
			if err != nil || page.Total != want || page.TotalIsEstimate {
				t.Errorf("from %s levels %v: total %d (%v), want %d", start.Format(time.RFC3339Nano), lv, page.Total, err, want)
			}
			h, err := s.Histogram(ctx, logs.Histogram{Start: start, End: end, Levels: lv, Interval: 10 * time.Second})
			var sum int64
			for _, b := range h.Buckets {
				sum += b.Total
				wantB := queryInt(t, conn, `SELECT count(*) FROM logs WHERE ts >= $1 AND ts < $2 AND ts BETWEEN $3 AND $4
					AND (cardinality($5::smallint[]) = 0 OR level = ANY($5))`, b.Time, b.Time.Add(10*time.Second), start, end, codes)
				if b.Total != wantB {
					t.Errorf("from %s levels %v: bucket %s has %d, want %d", start.Format(time.RFC3339Nano), lv, b.Time.Format(time.RFC3339), b.Total, wantB)
				}
			}
			if err != nil || sum != want {
				t.Errorf("from %s levels %v: histogram sums to %d (%v), want %d", start.Format(time.RFC3339Nano), lv, sum, err, want)
			}
		}
	}
}

// Buckets stay aligned centuries before 1970, where a time.Duration from
// the epoch no longer reaches.
func TestHistogramBeforeDurationRange(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	at := time.Date(1500, 1, 1, 5, 30, 0, 0, time.UTC)
	mustWrite(t, s, ev(at, logs.LevelWarn, "api", "old"))
	res, err := s.Histogram(context.Background(), logs.Histogram{Start: at.Add(-3 * time.Hour), End: at.Add(2 * time.Hour), Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Buckets) != 6 || !res.Buckets[0].Time.Equal(time.Date(1500, 1, 1, 2, 0, 0, 0, time.UTC)) {
		t.Fatalf("buckets %v, want 6 from 1500-01-01T02:00Z", res.Buckets)
	}
	if b := res.Buckets[3]; !b.Time.Equal(time.Date(1500, 1, 1, 5, 0, 0, 0, time.UTC)) || b.Counts[logs.LevelWarn] != 1 || b.Total != 1 {
		t.Errorf("bucket 3: %+v, want 05:00 with one WARN", b)
	}
}

package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/logengine/logengine/store/block"
	"github.com/logengine/logengine/store/logs"
)

// counting is a count over a window, grouped by some of time bucket, level
// and source. It reads whole hours from log_rollup_hour, whole minutes from
// the minute rollups and only the partial minutes at the edges from the
// blocks.
type counting struct {
	tenants    []string  // none: the default tenant
	start, end time.Time // inclusive
	levels     []logs.Level
	sources    []string
	// interval buckets the time (0: no time grouping). Rollups serve only
	// an interval they divide: an hour rollup cannot be split in 5 minutes.
	interval time.Duration
	byLevel  bool
	bySource bool
}

func ceilTo(t time.Time, d time.Duration) time.Time {
	if f := t.Truncate(d); !f.Equal(t) {
		return f.Add(d)
	}
	return t
}

// timeRange is [from, to).
type timeRange struct{ from, to time.Time }

// bucket is the start of t's bucket: the zero time without an interval.
func (c counting) bucket(t time.Time) time.Time {
	if c.interval <= 0 {
		return time.Time{}
	}
	return binStart(t, c.interval)
}

// binStart is the start of the bucket of width d holding t, buckets being
// aligned on the Unix epoch as date_bin aligns them. It counts in
// microseconds, as PostgreSQL does: a time.Duration spans only 292 years
// either side, and windows may start in year 0.
func binStart(t time.Time, d time.Duration) time.Time {
	us, step := t.UnixMicro(), max(d.Microseconds(), 1)
	b := us / step * step
	if b > us { // before 1970: round down, not toward zero
		b -= step
	}
	return time.UnixMicro(b).UTC()
}

// perSource tells whether the count needs the rollups per source; without
// a source to filter or group by, those of all sources answer with a
// fiftieth of the rows.
func (c counting) perSource() bool { return len(c.sources) > 0 || c.bySource }

// sql builds the statement over the hour rollups and its arguments, and
// lists the whole minutes the minute rollups answer and the ranges no
// rollup can (partial minutes), which count reads from the blocks.
func (c counting) sql() (string, pgx.NamedArgs, []timeRange, []timeRange) {
	args := pgx.NamedArgs{}
	// Shared filters, written once per branch with the same arguments.
	filters := " AND " + tenantCondition(args, c.tenants)
	if len(c.levels) > 0 {
		codes := make([]int16, len(c.levels))
		for i, l := range c.levels {
			codes[i] = l.Code()
		}
		args["levels"] = codes
		filters += " AND level = ANY(@levels)"
	}
	if len(c.sources) > 0 {
		args["sources"] = c.sources
		filters += " AND source = ANY(@sources)"
	}
	timeExpr := "NULL::timestamptz"
	if c.interval > 0 {
		args["interval"] = strconv.FormatInt(c.interval.Microseconds(), 10) + " microseconds"
		timeExpr = "date_bin(@interval::interval, bucket, TIMESTAMPTZ '1970-01-01 00:00:00+00')"
	}
	start := ceilTo(c.start, time.Microsecond)
	endExcl := c.end.Truncate(time.Microsecond).Add(time.Microsecond)

	suffix, sourceCol := "", "source"
	if !c.perSource() {
		suffix, sourceCol = "_level", "''::text"
	}
	var branches []string
	rollup := func(name, table string, from, to time.Time) {
		if !from.Before(to) {
			return
		}
		args[name+"_from"], args[name+"_to"] = from, to
		branches = append(branches, "SELECT "+timeExpr+" AS t, level, "+sourceCol+" AS source, count AS n FROM "+table+suffix+
			" WHERE bucket >= @"+name+"_from AND bucket < @"+name+"_to"+filters)
	}
	var raw, minutes []timeRange
	rawRange := func(from, to time.Time) {
		if from.Before(to) {
			raw = append(raw, timeRange{from, to})
		}
	}
	minuteRange := func(from, to time.Time) {
		if from.Before(to) {
			minutes = append(minutes, timeRange{from, to})
		}
	}
	useMinutes := c.interval%time.Minute == 0
	useHours := c.interval%time.Hour == 0
	m0, m1 := ceilTo(start, time.Minute), endExcl.Truncate(time.Minute)
	switch {
	case !useMinutes || !m0.Before(m1):
		rawRange(start, endExcl)
	default:
		h0, h1 := ceilTo(m0, time.Hour), m1.Truncate(time.Hour)
		if useHours && h0.Before(h1) {
			rollup("hours", "log_rollup_hour", h0, h1)
			minuteRange(m0, h0)
			minuteRange(h1, m1)
		} else {
			minuteRange(m0, m1)
		}
		rawRange(start, m0)
		rawRange(m1, endExcl)
	}
	if len(branches) == 0 {
		return "", args, minutes, raw
	}
	level, source := "0::smallint", "''::text"
	group := []string{"t"}
	if c.byLevel {
		level = "level"
		group = append(group, "level")
	}
	if c.bySource {
		source = "source"
		group = append(group, "source")
	}
	return "SELECT t, " + level + ", " + source + ", sum(n)::bigint FROM (" + strings.Join(branches, " UNION ALL ") +
		") s GROUP BY " + strings.Join(group, ", "), args, minutes, raw
}

// countRow is one group of a count: a time bucket (zero without one), a
// level code and a source (0 and "" when not grouped by them).
type countRow struct {
	t      time.Time
	level  int16
	source string
	n      int64
}

// count runs c: the hour rollups in PostgreSQL, the minute rollups, and
// the partial minutes at the edges from the blocks' rows. Groups may be
// reported more than once, to be added up. cache holds the blocks already
// read.
// known, when not nil, are the blocks of the whole window with c's
// filters, which a search has listed already.
func (s *Store) count(ctx context.Context, tx pgx.Tx, cache map[int64]*block.Reader, known []candidate, c counting, fn func(countRow)) error {
	sql, args, minutes, raw := c.sql()
	if sql != "" {
		rows, err := tx.Query(ctx, sql, args)
		if err != nil {
			return err
		}
		var (
			r countRow
			t *time.Time
		)
		_, err = pgx.ForEachRow(rows, []any{&t, &r.level, &r.source, &r.n}, func() error {
			r.t = time.Time{}
			if t != nil {
				r.t = t.UTC()
			}
			fn(r)
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, rg := range minutes {
		err := readMinutes(ctx, tx, c.tenants, rg.from, rg.to, c.levels, c.sources, c.perSource(), func(m minuteRow) {
			r := countRow{t: c.bucket(m.minute), n: m.n}
			if c.byLevel {
				r.level = m.level
			}
			if c.bySource {
				r.source = m.source
			}
			fn(r)
		})
		if err != nil {
			return err
		}
	}
	if len(raw) == 0 {
		return nil
	}
	return s.countRows(ctx, tx, cache, known, c, raw, fn)
}

// countRows counts the rows of the ranges from the blocks, grouped as c
// says, reading each block that overlaps any of them once.
func (s *Store) countRows(ctx context.Context, tx pgx.Tx, cache map[int64]*block.Reader, known []candidate, c counting, ranges []timeRange, fn func(countRow)) error {
	var cands []candidate
	if known != nil {
		for _, cand := range known {
			if slices.ContainsFunc(ranges, func(rg timeRange) bool { return !cand.maxTS.Before(rg.from) && cand.minTS.Before(rg.to) }) {
				cands = append(cands, cand)
			}
		}
	} else {
		all := block.Filter{Start: ranges[0].from, End: ranges[len(ranges)-1].to.Add(-time.Microsecond), Levels: c.levels, Sources: c.sources}
		var err error
		if cands, err = s.candidates(ctx, tx, c.tenants, all, true, nil, ranges...); err != nil {
			return err
		}
	}
	groups := map[countRow]int64{}
	bucket := c.bucket
	// Without a source to filter or group by, a block wholly inside a
	// range (and inside one bucket) is counted from its summary; only the
	// blocks across a boundary are read. At a high rate the partial
	// minutes hold many blocks.
	if !c.perSource() {
		var read []candidate
		for _, cand := range cands {
			inside := slices.ContainsFunc(ranges, func(rg timeRange) bool {
				return !cand.minTS.Before(rg.from) && cand.maxTS.Before(rg.to)
			})
			if !inside || !bucket(cand.minTS).Equal(bucket(cand.maxTS)) {
				read = append(read, cand)
				continue
			}
			for code, n := range cand.levels {
				level := logs.Level(code)
				if n == 0 || (len(c.levels) > 0 && !slices.Contains(c.levels, level)) {
					continue
				}
				k := countRow{t: bucket(cand.minTS)}
				if c.byLevel {
					k.level = level.Code()
				}
				groups[k] += int64(n)
			}
		}
		cands = read
	}
	// Blocks not read whole yet are read in part: only the columns a
	// count needs.
	briefs := map[int64]*block.Reader{}
	for i := 0; i < len(cands); i += fetchBlocks {
		chunk := cands[i:min(i+fetchBlocks, len(cands))]
		if err := s.briefReaders(ctx, tx, cache, briefs, chunk); err != nil {
			return err
		}
		for _, cand := range chunk {
			r := cache[cand.id]
			if r == nil {
				r = briefs[cand.id]
			}
			for _, rg := range ranges {
				f := block.Filter{Start: rg.from, End: rg.to.Add(-time.Microsecond), Levels: c.levels, Sources: c.sources}
				rows, err := r.Match(f)
				if err != nil {
					return fmt.Errorf("block %d: %w", cand.id, err)
				}
				briefs, err := r.Briefs(rows)
				if err != nil {
					return fmt.Errorf("block %d: %w", cand.id, err)
				}
				for _, b := range briefs {
					k := countRow{t: bucket(b.Timestamp)}
					if c.byLevel {
						k.level = b.Level.Code()
					}
					if c.bySource {
						k.source = b.Source
					}
					groups[k]++
				}
			}
		}
	}
	for k, n := range groups {
		k.n = n
		fn(k)
	}
	return nil
}

// total counts the logs c selects, exactly.
func (s *Store) total(ctx context.Context, tx pgx.Tx, cache map[int64]*block.Reader, known []candidate, c counting) (int64, error) {
	var n int64
	err := s.count(ctx, tx, cache, known, c, func(r countRow) { n += r.n })
	return n, err
}

// Histogram counts logs per bucket and level. Every bucket overlapping the
// window is returned, empty ones included.
func (s *Store) Histogram(ctx context.Context, q logs.Histogram) (logs.HistogramResult, error) {
	if q.Interval <= 0 {
		return logs.HistogramResult{}, fmt.Errorf("store: histogram interval must be positive")
	}
	c := counting{tenants: q.Tenants, start: q.Start, end: q.End, levels: q.Levels, sources: q.Sources, interval: q.Interval, byLevel: true}
	byTime := map[time.Time]*logs.Bucket{}
	var bad error
	err := s.read(ctx, func(tx pgx.Tx) error {
		defer s.observe("histogram", time.Now())
		return s.count(ctx, tx, map[int64]*block.Reader{}, nil, c, func(r countRow) {
			l, err := logs.LevelFromCode(r.level)
			if err != nil {
				bad = err
				return
			}
			b := byTime[r.t]
			if b == nil {
				b = &logs.Bucket{Time: r.t, Counts: map[logs.Level]int64{}}
				byTime[r.t] = b
			}
			b.Counts[l] += r.n
			b.Total += r.n
		})
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return logs.HistogramResult{}, fmt.Errorf("store: histogram: %w", err)
	}
	var res logs.HistogramResult
	first := binStart(q.Start, q.Interval)
	for t := first; !t.After(q.End); t = t.Add(q.Interval) {
		if b := byTime[t]; b != nil {
			res.Buckets = append(res.Buckets, *b)
		} else {
			res.Buckets = append(res.Buckets, logs.Bucket{Time: t, Counts: map[logs.Level]int64{}})
		}
	}
	return res, nil
}

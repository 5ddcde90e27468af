package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/logengine/logengine/store/logs"
)

// counting is a count over a window, grouped by some of time bucket, level
// and source. It reads whole hours from log_rollup_hour, whole minutes from
// log_rollup_minute and only the partial minutes at the edges from logs.
type counting struct {
	start, end time.Time // inclusive
	levels     []logs.Level
	sources    []string
	// interval buckets the time (0: no time grouping). Rollups serve only
	// an interval they divide: an hour rollup cannot be split in 5 minutes.
	interval time.Duration
	groupBy  string // "level, source", "t, level" or "" (a total)
}

func ceilTo(t time.Time, d time.Duration) time.Time {
	if f := t.Truncate(d); !f.Equal(t) {
		return f.Add(d)
	}
	return t
}

// sql builds the statement and its arguments: one pgx.NamedArgs, to pass
// as the statement's only argument.
func (c counting) sql() (string, []any, error) {
	args := pgx.NamedArgs{}
	// Shared filters, written once per branch with the same arguments.
	var filters string
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
	timeExpr := func(col string) string { return "NULL::timestamptz" }
	if c.interval > 0 {
		args["interval"] = strconv.FormatInt(c.interval.Microseconds(), 10) + " microseconds"
		timeExpr = func(col string) string {
			return "date_bin(@interval::interval, " + col + ", TIMESTAMPTZ '1970-01-01 00:00:00+00')"
		}
	}
	start := ceilTo(c.start, time.Microsecond)
	endExcl := c.end.Truncate(time.Microsecond).Add(time.Microsecond)

	// Each range binds its bounds as <name>_from and <name>_to.
	bounds := func(name string, from, to time.Time) (string, string) {
		args[name+"_from"], args[name+"_to"] = from, to
		return "@" + name + "_from", "@" + name + "_to"
	}
	var branches []string
	rollup := func(name, table string, from, to time.Time) {
		if !from.Before(to) {
			return
		}
		lo, hi := bounds(name, from, to)
		branches = append(branches, "SELECT "+timeExpr("bucket")+" AS t, level, source, count AS n FROM "+table+
			" WHERE bucket >= "+lo+" AND bucket < "+hi+filters)
	}
	var raw []string
	rawRange := func(name string, from, to time.Time) {
		if from.Before(to) {
			lo, hi := bounds(name, from, to)
			raw = append(raw, "(ts >= "+lo+" AND ts < "+hi+")")
		}
	}
	useMinutes := c.interval%time.Minute == 0
	useHours := c.interval%time.Hour == 0
	m0, m1 := ceilTo(start, time.Minute), endExcl.Truncate(time.Minute)
	switch {
	case !useMinutes || !m0.Before(m1):
		rawRange("raw", start, endExcl)
	default:
		h0, h1 := ceilTo(m0, time.Hour), m1.Truncate(time.Hour)
		if useHours && h0.Before(h1) {
			rollup("hours", "log_rollup_hour", h0, h1)
			rollup("minutes_head", "log_rollup_minute", m0, h0)
			rollup("minutes_tail", "log_rollup_minute", h1, m1)
		} else {
			rollup("minutes", "log_rollup_minute", m0, m1)
		}
		rawRange("raw_head", start, m0)
		rawRange("raw_tail", m1, endExcl)
	}
	if len(raw) > 0 {
		branches = append(branches, "SELECT "+timeExpr("ts")+" AS t, level, source, count(*) AS n FROM logs WHERE ("+
			strings.Join(raw, " OR ")+")"+filters+" GROUP BY 1, 2, 3")
	}
	if len(branches) == 0 { // an empty window
		branches = append(branches, "SELECT NULL::timestamptz AS t, 0::smallint AS level, ''::text AS source, 0::bigint AS n WHERE false")
	}
	inner := strings.Join(branches, " UNION ALL ")
	if c.groupBy == "" {
		return "SELECT coalesce(sum(n), 0)::bigint FROM (" + inner + ") s", []any{args}, nil
	}
	return "SELECT " + c.groupBy + ", sum(n)::bigint FROM (" + inner + ") s GROUP BY " + c.groupBy, []any{args}, nil
}

// total counts the logs in a window matching levels and sources, exactly.
func (s *Store) total(ctx context.Context, tx pgx.Tx, start, end time.Time, levels []logs.Level, sources []string) (int64, error) {
	sql, args, err := counting{start: start, end: end, levels: levels, sources: sources}.sql()
	if err != nil {
		return 0, err
	}
	var n int64
	err = tx.QueryRow(ctx, sql, args...).Scan(&n)
	return n, err
}

// Histogram counts logs per bucket and level. Every bucket overlapping the
// window is returned, empty ones included.
func (s *Store) Histogram(ctx context.Context, q logs.Histogram) (logs.HistogramResult, error) {
	if q.Interval <= 0 {
		return logs.HistogramResult{}, fmt.Errorf("store: histogram interval must be positive")
	}
	sql, args, err := counting{start: q.Start, end: q.End, levels: q.Levels, sources: q.Sources,
		interval: q.Interval, groupBy: "t, level"}.sql()
	if err != nil {
		return logs.HistogramResult{}, err
	}
	byTime := map[time.Time]*logs.Bucket{}
	err = s.read(ctx, func(tx pgx.Tx) error {
		defer s.observe("histogram", time.Now())
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		var (
			t    time.Time
			code int16
			n    int64
		)
		_, err = pgx.ForEachRow(rows, []any{&t, &code, &n}, func() error {
			l, err := logs.LevelFromCode(code)
			if err != nil {
				return err
			}
			b := byTime[t.UTC()]
			if b == nil {
				b = &logs.Bucket{Time: t.UTC(), Counts: map[logs.Level]int64{}}
				byTime[t.UTC()] = b
			}
			b.Counts[l] += n
			b.Total += n
			return nil
		})
		return err
	})
	if err != nil {
		return logs.HistogramResult{}, fmt.Errorf("store: histogram: %w", err)
	}
	var res logs.HistogramResult
	epoch := time.Unix(0, 0).UTC()
	first := epoch.Add(q.Start.Sub(epoch) / q.Interval * q.Interval)
	if first.After(q.Start) { // before 1970
		first = first.Add(-q.Interval)
	}
	for t := first; !t.After(q.End); t = t.Add(q.Interval) {
		if b := byTime[t]; b != nil {
			res.Buckets = append(res.Buckets, *b)
		} else {
			res.Buckets = append(res.Buckets, logs.Bucket{Time: t, Counts: map[logs.Level]int64{}})
		}
	}
	return res, nil
}

package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/logengine/logengine/store/block"
	"github.com/logengine/logengine/store/logs"
)

// read runs fn in a read-only transaction, in one round trip set up so:
//
//   - PostgreSQL itself cancels each statement after the statement
//     timeout. A context deadline alone would only make pgx drop the
//     connection while the server kept running the query; SET LOCAL stops
//     the query, frees the backend and keeps the connection usable.
//   - Every statement is planned for its actual parameters. pgx caches
//     prepared statements and PostgreSQL soon switches them to a generic
//     plan, which cannot prune partitions at planning time.
//   - Every statement sees one snapshot (repeatable read), so a merge
//     committing between the summaries and the blocks never hides or
//     doubles a row.
func (s *Store) read(ctx context.Context, fn func(pgx.Tx) error) error {
	begin := "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL plan_cache_mode = force_custom_plan"
	if s.timeout > 0 {
		begin += fmt.Sprintf("; SET LOCAL statement_timeout = %d", s.timeout.Milliseconds())
	}
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{BeginQuery: begin}, fn)
}

// observe records a read's duration under kind.
func (s *Store) observe(kind string, start time.Time) {
	s.m.queryDuration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
}

// Stats counts the logs in [q.Start, q.End] matching q's level and source
// filters: exactly, per level and for the top sources.
func (s *Store) Stats(ctx context.Context, q logs.Stats) (logs.StatsResult, error) {
	top := q.Top
	if top <= 0 {
		top = defaultTop
	}
	c := counting{tenants: q.Tenants, start: q.Start, end: q.End, levels: q.Levels, sources: q.Sources, byLevel: true, bySource: true}
	res := logs.StatsResult{ByLevel: make(map[logs.Level]int64)}
	bySource := map[string]int64{}
	var bad error
	err := s.read(ctx, func(tx pgx.Tx) error {
		defer s.observe("stats", time.Now())
		return s.count(ctx, tx, map[int64]*block.Reader{}, nil, c, func(r countRow) {
			l, err := logs.LevelFromCode(r.level)
			if err != nil {
				bad = err
				return
			}
			res.ByLevel[l] += r.n
			res.Total += r.n
			bySource[r.source] += r.n
		})
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return logs.StatsResult{}, fmt.Errorf("store: stats: %w", err)
	}
	sources := make([]logs.SourceCount, 0, len(bySource))
	for src, n := range bySource {
		sources = append(sources, logs.SourceCount{Source: src, Count: n})
	}
	slices.SortFunc(sources, func(a, b logs.SourceCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Source, b.Source))
	})
	res.TopSources = sources[:min(top, len(sources))]
	if res.TopSources == nil {
		res.TopSources = []logs.SourceCount{}
	}
	return res, nil
}

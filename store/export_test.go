package store

import "time"

// StatsSQL exposes the statement Stats runs, for benchmarks.
func StatsSQL(start, end time.Time) (string, []any, error) {
	return counting{start: start, end: end, groupBy: "level, source"}.sql()
}

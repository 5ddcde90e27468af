package store

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/logengine/logengine/store/logs"
)

// The minute rollups hold one row per (hour, source): the counts of the
// hour's minutes per level, as minuteCells. An hour of one source costs one
// row, however many of its minutes and levels have logs, and a batch
// rewrites the rows of the hours it touches, where a row per (minute,
// level, source) was inserted for nearly every few logs of a sparse stream.

// minuteCells counts one hour's logs of one source (or of all) per minute
// and level: cell minute*logs.NumLevels + level.
type minuteCells [60 * logs.NumLevels]int64

// minutesFormat leads an encoded minuteCells, so the format can evolve.
const minutesFormat = 1

// encode writes the cells that are not zero, in order, each as the
// uvarint gap from the previous one and the uvarint count.
func (c *minuteCells) encode() []byte {
	out := make([]byte, 1, 64)
	out[0] = minutesFormat
	prev := -1
	for i, n := range c {
		if n == 0 {
			continue
		}
		out = binary.AppendUvarint(out, uint64(i-prev-1))
		out = binary.AppendUvarint(out, uint64(n))
		prev = i
	}
	return out
}

// add adds encoded counts to c.
func (c *minuteCells) add(b []byte) error {
	if len(b) == 0 || b[0] != minutesFormat {
		return errors.New("minute counts: unknown format")
	}
	b = b[1:]
	cell := -1
	for len(b) > 0 {
		gap, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("minute counts: bad cell")
		}
		b = b[n:]
		count, n := binary.Uvarint(b)
		if n <= 0 || count > 1<<62 {
			return errors.New("minute counts: bad count")
		}
		b = b[n:]
		if gap >= uint64(len(c)) || cell+1+int(gap) >= len(c) {
			return errors.New("minute counts: cell out of range")
		}
		cell += 1 + int(gap)
		c[cell] += int64(count)
	}
	return nil
}

// minuteKey names one row of the minute rollups; hour is in Unix seconds,
// so that keys compare whatever the time's location or encoding.
type minuteKey struct {
	tenant string
	hour   int64
	source string
}

func (k minuteKey) time() time.Time { return time.Unix(k.hour, 0).UTC() }

// addMinutes adds the events to the minute rollups: per source, and of all
// sources. The rows a batch touches are locked in key order, read, added
// to and rewritten; rows that do not exist yet are inserted, and one that
// another writer inserted meanwhile is locked and added to on the next
// round.
func addMinutes(ctx context.Context, tx pgx.Tx, events []logs.Event) error {
	bySource := map[minuteKey]*minuteCells{}
	all := map[minuteKey]*minuteCells{}
	for i := range events {
		e := &events[i]
		ts := e.Timestamp.UTC()
		hour := ts.Truncate(time.Hour)
		tenant := logs.TenantOrDefault(e.Tenant)
		cell := int(ts.Sub(hour)/time.Minute)*logs.NumLevels + int(e.Level.Code())
		for _, k := range []struct {
			m   map[minuteKey]*minuteCells
			key minuteKey
		}{{bySource, minuteKey{tenant, hour.Unix(), e.Source}}, {all, minuteKey{tenant, hour.Unix(), ""}}} {
			c := k.m[k.key]
			if c == nil {
				c = new(minuteCells)
				k.m[k.key] = c
			}
			c[cell]++
		}
	}
	if err := upsertMinutes(ctx, tx, "log_rollup_minutes", bySource); err != nil {
		return err
	}
	return upsertMinutes(ctx, tx, "log_rollup_minutes_level", all)
}

func upsertMinutes(ctx context.Context, tx pgx.Tx, table string, add map[minuteKey]*minuteCells) error {
	pending := slices.SortedFunc(maps.Keys(add), func(a, b minuteKey) int {
		return cmp.Or(cmp.Compare(a.tenant, b.tenant), cmp.Compare(a.hour, b.hour), cmp.Compare(a.source, b.source))
	})
	for round := 0; len(pending) > 0; round++ {
		if round == 10 {
			return fmt.Errorf("%s: %d rows still contended after %d rounds", table, len(pending), round)
		}
		tenants, hours, sources := make([]string, len(pending)), make([]time.Time, len(pending)), make([]string, len(pending))
		for i, k := range pending {
			tenants[i], hours[i], sources[i] = k.tenant, k.time(), k.source
		}
		rows, err := tx.Query(ctx, `SELECT t.tenant, t.hour, t.source, t.counts FROM `+table+` t
			JOIN unnest($1::text[], $2::timestamptz[], $3::text[]) AS u(t, h, s) ON t.tenant = u.t AND t.hour = u.h AND t.source = u.s
			ORDER BY t.tenant, t.hour, t.source FOR UPDATE OF t`, tenants, hours, sources)
		if err != nil {
			return err
		}
		var (
			tenant string
			hour   time.Time
			source string
			stored []byte
			up     struct {
				tenants []string
				hours   []time.Time
				sources []string
				counts  [][]byte
			}
		)
		found := map[minuteKey]bool{}
		_, err = pgx.ForEachRow(rows, []any{&tenant, &hour, &source, &stored}, func() error {
			k := minuteKey{tenant, hour.Unix(), source}
			c := *add[k]
			if err := c.add(stored); err != nil {
				return fmt.Errorf("%s %s %s %q: %w", table, tenant, hour, source, err)
			}
			found[k] = true
			up.tenants, up.hours, up.sources = append(up.tenants, tenant), append(up.hours, hour), append(up.sources, source)
			up.counts = append(up.counts, c.encode())
			return nil
		})
		if err != nil {
			return err
		}
		if len(up.hours) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE `+table+` t SET counts = u.c
				FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::bytea[]) AS u(t, h, s, c)
				WHERE t.tenant = u.t AND t.hour = u.h AND t.source = u.s`,
				up.tenants, up.hours, up.sources, up.counts); err != nil {
				return err
			}
		}
		var missing []minuteKey
		var mt []string
		var mh []time.Time
		var ms []string
		var mc [][]byte
		for _, k := range pending {
			if !found[k] {
				missing = append(missing, k)
				mt, mh, ms, mc = append(mt, k.tenant), append(mh, k.time()), append(ms, k.source), append(mc, add[k].encode())
			}
		}
		if len(missing) == 0 {
			return nil
		}
		rows, err = tx.Query(ctx, `INSERT INTO `+table+` (tenant, hour, source, counts)
			SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::bytea[]) ON CONFLICT DO NOTHING RETURNING tenant, hour, source`,
			mt, mh, ms, mc)
		if err != nil {
			return err
		}
		inserted := map[minuteKey]bool{}
		_, err = pgx.ForEachRow(rows, []any{&tenant, &hour, &source}, func() error {
			inserted[minuteKey{tenant, hour.Unix(), source}] = true
			return nil
		})
		if err != nil {
			return err
		}
		pending = pending[:0]
		for _, k := range missing {
			if !inserted[k] {
				pending = append(pending, k) // another writer's row since: add to it
			}
		}
	}
	return nil
}

// minuteRow is one cell of the minute rollups: the count of one minute,
// level and source.
type minuteRow struct {
	minute time.Time
	level  int16
	source string
	n      int64
}

// readMinutes calls fn for each cell of the minute rollups of tenants in
// [from, to) (whole minutes) that matches levels and sources; the source
// is "" when perSource is false (the rollups of all sources are read). A
// cell may come once per tenant, to be added up.
func readMinutes(ctx context.Context, tx pgx.Tx, tenants []string, from, to time.Time, levels []logs.Level, sources []string, perSource bool, fn func(minuteRow)) error {
	table := "log_rollup_minutes_level"
	if perSource {
		table = "log_rollup_minutes"
	}
	args := pgx.NamedArgs{"from": from.Truncate(time.Hour), "to": to}
	sql := "SELECT hour, source, counts FROM " + table + " WHERE " + tenantCondition(args, tenants) + " AND hour >= @from AND hour < @to"
	if len(sources) > 0 {
		args["sources"] = sources
		sql += " AND source = ANY(@sources)"
	}
	rows, err := tx.Query(ctx, sql, args)
	if err != nil {
		return err
	}
	var want [logs.NumLevels]bool
	for _, l := range levels {
		want[l.Code()] = true
	}
	var (
		hour   time.Time
		source string
		counts []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&hour, &source, &counts}, func() error {
		var c minuteCells
		if err := c.add(counts); err != nil {
			return fmt.Errorf("%s %s %q: %w", table, hour, source, err)
		}
		hour = hour.UTC()
		for cell, n := range c {
			if n == 0 {
				continue
			}
			level := int16(cell % logs.NumLevels)
			if len(levels) > 0 && !want[level] {
				continue
			}
			minute := hour.Add(time.Duration(cell/logs.NumLevels) * time.Minute)
			if minute.Before(from) || !minute.Before(to) {
				continue
			}
			fn(minuteRow{minute: minute, level: level, source: source, n: n})
		}
		return nil
	})
	return err
}

// convertMinuteRollups moves the counts of the old per-minute rollup
// tables (a row per minute, level and source) into the rows per hour, and
// drops them, in one transaction.
func (s *Store) convertMinuteRollups(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLockKey); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass('log_rollup_minute') IS NOT NULL").Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return nil
		}
		for _, old := range []struct{ from, to, source string }{
			{"log_rollup_minute", "log_rollup_minutes", "source"},
			{"log_rollup_minute_level", "log_rollup_minutes_level", "''::text"},
		} {
			rows, err := tx.Query(ctx, "SELECT bucket, level, "+old.source+", count FROM "+old.from)
			if err != nil {
				return err
			}
			cells := map[minuteKey]*minuteCells{}
			var (
				bucket time.Time
				level  int16
				source string
				n      int64
			)
			_, err = pgx.ForEachRow(rows, []any{&bucket, &level, &source, &n}, func() error {
				if level < 0 || level >= logs.NumLevels {
					return fmt.Errorf("%s: level code %d", old.from, level)
				}
				hour := bucket.UTC().Truncate(time.Hour)
				k := minuteKey{logs.DefaultTenant, hour.Unix(), source}
				c := cells[k]
				if c == nil {
					c = new(minuteCells)
					cells[k] = c
				}
				c[int(bucket.Sub(hour)/time.Minute)*logs.NumLevels+int(level)] += n
				return nil
			})
			if err != nil {
				return err
			}
			if err := upsertMinutes(ctx, tx, old.to, cells); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "DROP TABLE "+old.from); err != nil {
				return err
			}
			s.log.Info("converted the minute rollups", "table", old.from, "rows", len(cells))
		}
		return nil
	})
}

package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/logengine/logengine/store/logs"
)

// convertRows moves the logs of a database written before blocks existed
// (one row per log in the table logs) into blocks, one old partition per
// transaction, oldest first, and drops the old table once it is empty.
// The rollups already count these logs and stay as they are. A restart
// part way resumes with the partitions left.
func (s *Store) convertRows(ctx context.Context) error {
	var exists bool
	if err := s.pool.QueryRow(ctx, "SELECT to_regclass('logs') IS NOT NULL").Scan(&exists); err != nil {
		return fmt.Errorf("store: look for old rows: %w", err)
	}
	if !exists {
		return nil
	}
	// to_regclass: no rows, rather than an error, once another process
	// converted and dropped the table meanwhile.
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = to_regclass('logs') ORDER BY c.relname`)
	if err != nil {
		return fmt.Errorf("store: list old partitions: %w", err)
	}
	parts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("store: list old partitions: %w", err)
	}
	for _, p := range parts {
		start := time.Now()
		n, err := s.convertPartition(ctx, p)
		if pgCode(err) == pgerrcode.UndefinedTable {
			continue // another process converted it meanwhile
		}
		if err != nil {
			return fmt.Errorf("store: convert %s into blocks: %w", p, err)
		}
		s.log.Info("converted old rows into blocks", "partition", p, "rows", n, "duration", time.Since(start))
	}
	if _, err := s.pool.Exec(ctx, "DROP TABLE IF EXISTS logs"); err != nil {
		return fmt.Errorf("store: drop the old logs table: %w", err)
	}
	return nil
}

// convertPartition writes one old partition's rows as merged blocks, a
// block's worth per transaction that also deletes those rows, so a
// restart resumes where it stopped; then drops the emptied partition.
func (s *Store) convertPartition(ctx context.Context, name string) (int, error) {
	table := pgx.Identifier{name}.Sanitize()
	total := 0
	for {
		var n int
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			events, err := readOldRows(ctx, tx, table, s.cfg.Maintenance.MergeRows)
			if err != nil || len(events) == 0 {
				return err
			}
			n = len(events)
			if err := s.ensureDays(ctx, s.pool, s.distinctPeriods(events)); err != nil {
				return err
			}
			last := events[len(events)-1]
			var batch pgx.Batch
			// Old partitions and block partitions may differ in period:
			// a block is cut where a block partition ends.
			for len(events) > 0 {
				k := len(events)
				p := s.periodOf(events[0].Timestamp)
				for i := 1; i < k; i++ {
					if !s.periodOf(events[i].Timestamp).Equal(p) {
						k = i
						break
					}
				}
				blk, err := s.merged.Encode(events[:k])
				if err != nil {
					return err
				}
				queueBlock(&batch, blk, true, logs.DefaultTenant)
				events = events[k:]
			}
			batch.Queue("DELETE FROM "+table+" WHERE (ts, id) <= ($1, $2)", last.Timestamp, last.ID)
			return tx.SendBatch(ctx, &batch).Close()
		})
		if err != nil {
			return total, err
		}
		if n == 0 {
			break
		}
		total += n
	}
	_, err := s.pool.Exec(ctx, "DROP TABLE IF EXISTS "+table)
	return total, err
}

// readOldRows reads the first rows of an old partition, in (ts, id) order.
func readOldRows(ctx context.Context, tx pgx.Tx, table string, limit int) ([]logs.Event, error) {
	// FOR UPDATE: a second process converting at the same time waits,
	// then skips the rows the first deleted.
	rows, err := tx.Query(ctx, "SELECT ts, id, level, source, message, metadata, trace_id FROM "+table+
		" ORDER BY ts, id LIMIT $1 FOR UPDATE", limit)
	if err != nil {
		return nil, err
	}
	var (
		events   []logs.Event
		e        logs.Event
		code     int16
		metadata []byte
		traceID  *string
	)
	_, err = pgx.ForEachRow(rows, []any{&e.Timestamp, &e.ID, &code, &e.Source, &e.Message, &metadata, &traceID}, func() error {
		level, err := logs.LevelFromCode(code)
		if err != nil {
			return err
		}
		ev := logs.Event{ID: e.ID, Timestamp: e.Timestamp.UTC(), Level: level, Source: e.Source, Message: e.Message}
		if metadata != nil {
			ev.Metadata = json.RawMessage(append([]byte(nil), metadata...))
		}
		if traceID != nil {
			ev.TraceID = *traceID
		}
		events = append(events, ev)
		return nil
	})
	return events, err
}

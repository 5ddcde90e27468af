package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/logengine/logengine/store/block"
	"github.com/logengine/logengine/store/logs"
)

// Export calls fn with every log q's filters select (its paging is
// ignored), oldest first, reading one snapshot a few blocks at a time:
// memory stays bounded by the blocks in flight, whatever the window.
// The blocks cannot be read by SQL, so this is how logs leave as rows.
func (s *Store) Export(ctx context.Context, q logs.Search, fn func(logs.Event) error) error {
	f := block.SearchFilter(q)
	return s.read(ctx, func(tx pgx.Tx) error {
		cands, err := s.candidates(ctx, tx, q.Tenants, f, true, nil)
		if err != nil {
			return err
		}
		// Blocks are read by first timestamp; rows of a later block may
		// still come before rows of an earlier one while blocks overlap,
		// so rows wait until no block left can come before them.
		var pending []logs.Event
		flush := func(upTo int) error {
			for _, e := range pending[:upTo] {
				if err := fn(e); err != nil {
					return err
				}
			}
			pending = pending[upTo:]
			return nil
		}
		for i := 0; i < len(cands); i += fetchBlocks {
			chunk := cands[i:min(i+fetchBlocks, len(cands))]
			readers := map[int64]*block.Reader{} // one chunk at a time: bounded memory
			if err := s.readers(ctx, tx, readers, chunk); err != nil {
				return err
			}
			for _, c := range chunk {
				r := readers[c.id]
				rows, err := r.Match(f)
				if err != nil {
					return fmt.Errorf("block %d: %w", c.id, err)
				}
				events, err := r.Events(rows)
				if err != nil {
					return fmt.Errorf("block %d: %w", c.id, err)
				}
				for j := range events {
					events[j].Tenant = c.tenant
				}
				pending = append(pending, events...)
			}
			slices.SortStableFunc(pending, func(a, b logs.Event) int {
				return compareKeys(logs.Cursor{TS: a.Timestamp, ID: a.ID}, logs.Cursor{TS: b.Timestamp, ID: b.ID})
			})
			ready := len(pending)
			if next := i + fetchBlocks; next < len(cands) {
				ready, _ = slices.BinarySearchFunc(pending, cands[next].minTS, func(e logs.Event, t time.Time) int {
					return e.Timestamp.Compare(t)
				})
			}
			if err := flush(ready); err != nil {
				return err
			}
		}
		return flush(len(pending))
	})
}

package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/logengine/logengine/store/block"
	"github.com/logengine/logengine/store/logs"
)

const (
	defaultCountLimit = 10000
	defaultTop        = 10
	// fetchBlocks is how many candidate blocks one round trip reads.
	fetchBlocks = 4
)

// candidate is a block whose summary says it may hold matches.
type candidate struct {
	minTS, maxTS time.Time
	id           int64
	levels       []int32 // rows per level code
	tenant       string
}

// candidates lists the blocks that may hold rows f matches, in the order
// a search reads them: newest last row first, or oldest first row first
// when asc. Everything the summaries can rule out is ruled out here, in
// PostgreSQL, without reading any block. Only the blocks of tenants are
// listed (the default tenant's when none is named).
func (s *Store) candidates(ctx context.Context, tx pgx.Tx, tenants []string, f block.Filter, asc bool, after *logs.Cursor, within ...timeRange) ([]candidate, error) {
	args := pgx.NamedArgs{}
	conds := []string{tenantCondition(args, tenants)}
	if len(within) > 0 {
		// Only blocks overlapping one of these ranges (within the window).
		var any []string
		for i, r := range within {
			n := strconv.Itoa(i)
			any = append(any, "(max_ts >= @from"+n+" AND min_ts < @to"+n+")")
			args["from"+n], args["to"+n] = r.from, r.to
		}
		conds = append(conds, "("+strings.Join(any, " OR ")+")")
	}
	if !f.Start.IsZero() {
		// A block lies within one partition, so one overlapping the
		// window starts in the period of the window's start or later:
		// older partitions are pruned at planning.
		conds = append(conds, "max_ts >= @start", "min_ts >= @period")
		args["start"] = f.Start.Truncate(time.Microsecond)
		args["period"] = s.periodOf(f.Start)
	}
	if !f.End.IsZero() {
		conds = append(conds, "min_ts <= @end")
		args["end"] = f.End
	}
	if after != nil {
		if asc {
			conds = append(conds, "max_ts >= @after")
		} else {
			conds = append(conds, "min_ts <= @after")
		}
		args["after"] = after.TS
	}
	if len(f.Levels) > 0 {
		codes := make([]int32, len(f.Levels))
		for i, l := range f.Levels {
			codes[i] = int32(l.Code())
		}
		conds = append(conds, "EXISTS (SELECT 1 FROM unnest(@levels::int[]) c WHERE levels[c + 1] > 0)")
		args["levels"] = codes
	}
	if len(f.Sources) > 0 {
		conds = append(conds, "sources && @sources::text[]")
		args["sources"] = f.Sources
	}
	bloom := func(column, name string, hashes []uint64) {
		if len(hashes) == 0 {
			return
		}
		conds = append(conds, "bloom_may_contain("+column+", @"+name+"::bigint[])")
		vs := make([]int64, len(hashes))
		for i, h := range hashes {
			vs[i] = int64(h) // 63-bit values: never negative
		}
		args[name] = vs
	}
	bloom("msg_bloom", "keyword", block.KeywordHashes(f.Keyword))
	// The trace filter is in the row (0006): its few bits are tested in
	// the statement, cheaper than a PL/pgSQL call.
	for i, h := range block.TraceHashes(f.TraceID) {
		n := "trace" + strconv.Itoa(i)
		conds = append(conds, "get_bit(trace_bloom, @"+n+" % (length(trace_bloom)::bigint * 8)) = 1")
		args[n] = int64(h) // 63-bit values: never negative
	}
	var meta []uint64
	for _, m := range f.Meta {
		meta = append(meta, block.MetaHashes(m.Key, m.Value)...)
	}
	bloom("meta_bloom", "meta", meta)

	sql := "SELECT min_ts, max_ts, id, levels, tenant FROM all_blocks WHERE " + strings.Join(conds, " AND ")
	if asc {
		sql += " ORDER BY min_ts, id"
	} else {
		sql += " ORDER BY max_ts DESC, id DESC"
	}
	rows, err := tx.Query(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	var out []candidate
	var c candidate
	_, err = pgx.ForEachRow(rows, []any{&c.minTS, &c.maxTS, &c.id, &c.levels, &c.tenant}, func() error {
		out = append(out, c)
		c.levels = nil
		return nil
	})
	return out, err
}

// readers opens the blocks of cs, reading from PostgreSQL only those not
// in cache (blocks one request already read), and adds them to it.
func (s *Store) readers(ctx context.Context, tx pgx.Tx, cache map[int64]*block.Reader, cs []candidate) error {
	var missing []candidate
	for _, c := range cs {
		if cache[c.id] == nil {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	data, err := fetch(ctx, tx, missing)
	if err != nil {
		return err
	}
	for id, b := range data {
		r, err := s.fresh.NewReader(b)
		if err != nil {
			return fmt.Errorf("block %d: %w", id, err)
		}
		cache[id] = r
	}
	return nil
}

// briefReaders makes, for each block of cs that cache does not hold whole,
// a reader of only the columns Briefs and time, level and source filters
// read: the block's header first, then those columns' bytes, a few
// kilobytes of a block's two hundred. briefs receives them.
func (s *Store) briefReaders(ctx context.Context, tx pgx.Tx, cache, briefs map[int64]*block.Reader, cs []candidate) error {
	var mins []time.Time
	var ids []int64
	for _, c := range cs {
		if cache[c.id] == nil && briefs[c.id] == nil {
			mins, ids = append(mins, c.minTS), append(ids, c.id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT b.min_ts, b.id, substring(b.data FROM 1 FOR @head), length(b.data) FROM all_blocks b
		WHERE (b.min_ts, b.id) IN (SELECT * FROM unnest(@mins::timestamptz[], @ids::bigint[]))`,
		pgx.NamedArgs{"mins": mins, "ids": ids, "head": block.HeadBytes})
	if err != nil {
		return err
	}
	bufs := map[int64][]byte{}
	var part struct {
		mins       []time.Time
		ids        []int64
		offs, lens []int32
	}
	var (
		minTS time.Time
		id    int64
		head  []byte
		size  int
	)
	_, err = pgx.ForEachRow(rows, []any{&minTS, &id, &head, &size}, func() error {
		spans, err := block.BriefSpans(head, size)
		if err != nil {
			return fmt.Errorf("block %d: %w", id, err)
		}
		buf := make([]byte, size)
		copy(buf, head)
		bufs[id] = buf
		for _, sp := range spans {
			part.mins, part.ids = append(part.mins, minTS), append(part.ids, id)
			part.offs, part.lens = append(part.offs, int32(sp.Off)), append(part.lens, int32(sp.Len))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(part.ids) > 0 {
		rows, err = tx.Query(ctx, `SELECT u.id, u.off, substring(b.data FROM u.off + 1 FOR u.len)
			FROM unnest(@mins::timestamptz[], @ids::bigint[], @offs::int[], @lens::int[]) AS u(min_ts, id, off, len)
			JOIN all_blocks b ON b.min_ts = u.min_ts AND b.id = u.id`,
			pgx.NamedArgs{"mins": part.mins, "ids": part.ids, "offs": part.offs, "lens": part.lens})
		if err != nil {
			return err
		}
		var (
			off   int
			bytes []byte
		)
		_, err = pgx.ForEachRow(rows, []any{&id, &off, &bytes}, func() error {
			buf := bufs[id]
			if off < 0 || off+len(bytes) > len(buf) {
				return fmt.Errorf("block %d: %d bytes at %d of %d", id, len(bytes), off, len(buf))
			}
			copy(buf[off:], bytes)
			return nil
		})
		if err != nil {
			return err
		}
	}
	for id, buf := range bufs {
		r, err := s.fresh.NewBriefReader(buf)
		if err != nil {
			return fmt.Errorf("block %d: %w", id, err)
		}
		briefs[id] = r
	}
	return nil
}

// fetch reads the data of blocks.
func fetch(ctx context.Context, tx pgx.Tx, cs []candidate) (map[int64][]byte, error) {
	mins := make([]time.Time, len(cs))
	ids := make([]int64, len(cs))
	for i, c := range cs {
		mins[i], ids[i] = c.minTS, c.id
	}
	rows, err := tx.Query(ctx, `SELECT id, data FROM all_blocks
		WHERE (min_ts, id) IN (SELECT * FROM unnest(@mins::timestamptz[], @ids::bigint[]))`,
		pgx.NamedArgs{"mins": mins, "ids": ids})
	if err != nil {
		return nil, err
	}
	out := make(map[int64][]byte, len(cs))
	var (
		id   int64
		data []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &data}, func() error {
		out[id] = data
		return nil
	})
	return out, err
}

// tenantCondition is the SQL condition on a tenant column that keeps the
// rows of tenants (the default tenant's when none), with its argument
// added to args. One tenant, the common case, is an equality: PostgreSQL
// then walks the (tenant, max_ts) index in order, which it cannot do for
// a list.
func tenantCondition(args pgx.NamedArgs, tenants []string) string {
	tenants = logs.ReadTenants(tenants)
	if len(tenants) == 1 {
		args["tenant"] = tenants[0]
		return "tenant = @tenant"
	}
	args["tenants"] = tenants
	return "tenant = ANY(@tenants::text[])"
}

// hit is a matching row: its key and where to read the rest of it.
type hit struct {
	key    logs.Cursor
	r      *block.Reader
	row    int
	tenant string
}

func compareKeys(a, b logs.Cursor) int {
	if c := a.TS.Compare(b.TS); c != 0 {
		return c
	}
	return strings.Compare(string(a.ID[:]), string(b.ID[:]))
}

// Search returns one page of the logs q selects, newest first unless
// q.Asc, and a total bounded by q.CountLimit.
//
// It reads the summaries of the blocks in the window, then the candidate
// blocks in order, a few per round trip, and stops as soon as no block
// left can hold a row of the page and the count is settled.
func (s *Store) Search(ctx context.Context, q logs.Search) (logs.Page, error) {
	if q.Size <= 0 {
		return logs.Page{}, errors.New("store: search page size must be positive")
	}
	if q.Page < 0 {
		return logs.Page{}, errors.New("store: search page must not be negative")
	}
	countLimit := q.CountLimit
	if countLimit <= 0 {
		countLimit = defaultCountLimit
	}
	f := block.SearchFilter(q)
	// Without a keyword, trace or metadata filter the rollups give the
	// exact total at once, however many rows match.
	exactFromRollups := q.Keyword == "" && q.TraceID == "" && len(q.Meta) == 0 && !q.Start.IsZero() && !q.End.IsZero()
	skip := 0
	if q.After == nil {
		skip = q.Page * q.Size
	}
	need := skip + q.Size + 1 // one more tells whether a next page exists

	// before reports whether key comes before bound in the page's order.
	before := func(key, bound logs.Cursor) bool {
		if q.Asc {
			return compareKeys(key, bound) < 0
		}
		return compareKeys(key, bound) > 0
	}
	var (
		page  logs.Page
		best  []hit // the page so far, in page order, at most need
		count int64 // matches seen, for a total not from the rollups
	)
	err := s.read(ctx, func(tx pgx.Tx) error {
		start := time.Now()
		cache := map[int64]*block.Reader{} // the edges of the count and the page share blocks
		// A count not from the rollups is of the whole result, so it reads
		// the blocks on both sides of a cursor; otherwise the cursor
		// rules out the blocks before it.
		after := q.After
		if !exactFromRollups {
			after = nil
		}
		cands, err := s.candidates(ctx, tx, q.Tenants, f, q.Asc, after)
		if err != nil {
			return fmt.Errorf("search: %w", err)
		}
		if exactFromRollups {
			// Without a cursor the page's blocks are the window's: the
			// count's edges are among them.
			var known []candidate
			if q.After == nil {
				known = cands
			}
			total, err := s.total(ctx, tx, cache, known, counting{tenants: q.Tenants, start: q.Start, end: q.End, levels: q.Levels, sources: q.Sources})
			if err != nil {
				return fmt.Errorf("count: %w", err)
			}
			page.Total = total
		}
		counting := !exactFromRollups
		// Read one block first (most pages come from the newest one),
		// then more per round trip.
		step := 1
		for i := 0; i < len(cands); i += step {
			if i > 0 {
				step = min(step*2, fetchBlocks)
			}
			pageDone := len(best) >= need && !blockMayHold(cands[i], best[need-1].key, q.Asc)
			if pageDone && (!counting || count > int64(countLimit)) {
				break
			}
			chunk := cands[i:min(i+step, len(cands))]
			if err := s.readers(ctx, tx, cache, chunk); err != nil {
				return fmt.Errorf("search: %w", err)
			}
			for _, c := range chunk {
				r := cache[c.id]
				if r == nil {
					continue // merged away since the summaries were read: cannot happen in one snapshot
				}
				rows, err := r.Match(f)
				if err != nil {
					return fmt.Errorf("search: block %d: %w", c.id, err)
				}
				count += int64(len(rows))
				if pageDone || len(rows) == 0 {
					continue
				}
				fresh, err := pageRows(r, rows, need, q.Asc, q.After, before)
				if err != nil {
					return fmt.Errorf("search: block %d: %w", c.id, err)
				}
				for j := range fresh {
					fresh[j].tenant = c.tenant
				}
				best = append(best, fresh...)
				slices.SortStableFunc(best, func(a, b hit) int {
					if before(a.key, b.key) {
						return -1
					}
					if before(b.key, a.key) {
						return 1
					}
					return 0
				})
				best = best[:min(len(best), need)]
			}
			// Keep only the blocks the page still reads from: a count over
			// many blocks must not hold them all decoded at once.
			held := map[*block.Reader]bool{}
			for _, h := range best {
				held[h.r] = true
			}
			for _, c := range chunk {
				if r := cache[c.id]; r != nil && !held[r] {
					delete(cache, c.id)
				}
			}
		}
		if counting {
			page.Total = count
			if count > int64(countLimit) {
				page.Total, page.TotalIsEstimate = int64(countLimit), true
			}
		}
		s.observe("search", start)
		return nil
	})
	if err != nil {
		return logs.Page{}, fmt.Errorf("store: %w", err)
	}
	if skip < len(best) {
		best = best[skip:]
	} else {
		best = nil
	}
	if len(best) > q.Size {
		best = best[:q.Size]
		last := best[q.Size-1].key
		page.Next = &logs.Cursor{TS: last.TS, ID: last.ID}
	}
	page.Events, err = readHits(best)
	if err != nil {
		return logs.Page{}, fmt.Errorf("store: search: %w", err)
	}
	return page, nil
}

// pageRows picks, from a block's matching rows (ascending), the first
// (asc) or last (desc) need rows past the cursor. It reads the keys of
// as few rows as it can: a window at that end, doubled until it holds
// enough rows past the cursor.
func pageRows(r *block.Reader, rows []int, need int, asc bool, after *logs.Cursor, before func(a, b logs.Cursor) bool) ([]hit, error) {
	for w := need; ; w *= 2 {
		w = min(w, len(rows))
		window := rows[len(rows)-w:]
		if asc {
			window = rows[:w]
		}
		keys, err := r.Keys(window)
		if err != nil {
			return nil, err
		}
		var out []hit
		for j := range keys {
			k := j
			if !asc {
				k = len(keys) - 1 - j
			}
			if after != nil && !before(*after, keys[k]) {
				continue
			}
			if len(out) == need {
				break
			}
			out = append(out, hit{key: keys[k], r: r, row: window[k]})
		}
		if len(out) == need || w == len(rows) {
			return out, nil
		}
	}
}

// blockMayHold reports whether block c may hold a row that belongs before
// worst in the page's order.
func blockMayHold(c candidate, worst logs.Cursor, asc bool) bool {
	if asc {
		return !c.minTS.After(worst.TS)
	}
	return !c.maxTS.Before(worst.TS)
}

// readHits decodes the page's rows, a block's rows at a time.
func readHits(hits []hit) ([]logs.Event, error) {
	out := make([]logs.Event, len(hits))
	byReader := map[*block.Reader][]int{} // positions in hits
	for i, h := range hits {
		byReader[h.r] = append(byReader[h.r], i)
	}
	for r, at := range byReader {
		rows := make([]int, len(at))
		for j, i := range at {
			rows[j] = hits[i].row
		}
		events, err := r.Events(rows)
		if err != nil {
			return nil, err
		}
		for j, i := range at {
			out[i] = events[j]
			out[i].Tenant = hits[i].tenant
		}
	}
	return out, nil
}

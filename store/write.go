package store

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/logengine/logengine/store/block"
	"github.com/logengine/logengine/store/logs"
)

// Batch is what one Write stores, in one transaction.
type Batch struct {
	Events []logs.Event
	// Positions, when set, holds each event's position in the log it was
	// read from (Kafka): Positions[i] is Events[i]'s.
	Positions []logs.Position
	// Consumed lists positions read with no event to store (records sent
	// to the DLQ), so the stored offsets move past them too.
	Consumed []logs.Position
}

// freshBlockRows bounds a block written from a batch; the merger makes
// larger ones.
const freshBlockRows = 20000

// WriteBatch stores events that were not read from a log; see Write.
func (s *Store) WriteBatch(ctx context.Context, events []logs.Event) (int64, error) {
	return s.Write(ctx, Batch{Events: events})
}

// Write stores a batch as compressed blocks, with the rollups it adds to
// and the offsets it advances, in one transaction: all of it or none of
// it. It skips, without a per-row lookup, each event whose position is
// below its partition's stored next offset (a redelivery), and keeps one
// event per id among those whose client chose the id. It returns how many
// events it stored. When an event is unstorable the error satisfies
// IsDataError.
func (s *Store) Write(ctx context.Context, b Batch) (stored int64, err error) {
	if len(b.Positions) != 0 && len(b.Positions) != len(b.Events) {
		return 0, fmt.Errorf("store: %d positions for %d events", len(b.Positions), len(b.Events))
	}
	if len(b.Events) == 0 && len(b.Consumed) == 0 {
		return 0, nil
	}
	start := time.Now()
	defer func() { s.m.writeDuration.Observe(time.Since(start).Seconds()) }()

	// Compression runs before the transaction, so locks are held only for
	// the writes; in the rare batch where some events are skipped, the
	// rest is encoded again.
	blocks, err := s.encodeBatch(ctx, b.Events)
	if err != nil {
		return 0, err
	}
	stored, err = s.write(ctx, b, blocks, false)
	if isNoPartition(err) {
		// Retention dropped a partition since this Store last saw it: make
		// it again (maintenance drops it once more if it is old).
		s.forgetDays(s.distinctPeriods(b.Events))
		if blocks, err = s.encodeBatch(ctx, b.Events); err != nil {
			return 0, err
		}
		stored, err = s.write(ctx, b, blocks, false)
	}
	if err != nil {
		return 0, fmt.Errorf("store: write batch of %d events: %w", len(b.Events), err)
	}
	s.m.rowsWritten.Add(float64(stored))
	return stored, nil
}

// errDryRun rolls back the transaction of a Check.
var errDryRun = errors.New("dry run")

// Check writes the batch as Write would and rolls it back: nil means
// Write would take it, an error satisfying IsDataError names data it
// refuses. A consumer isolates refused records with it, so that they
// reach the DLQ before the rest is stored.
func (s *Store) Check(ctx context.Context, b Batch) error {
	b.Consumed = nil
	blocks, err := s.encodeBatch(ctx, b.Events)
	if err != nil {
		return err
	}
	_, err = s.write(ctx, b, blocks, true)
	if errors.Is(err, errDryRun) {
		return nil
	}
	return err
}

func (s *Store) write(ctx context.Context, b Batch, blocks []batchBlock, dryRun bool) (int64, error) {
	var stored int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		keep, next, err := s.admit(ctx, tx, b)
		if err != nil {
			return err
		}
		events := b.Events
		if keep != nil {
			events = make([]logs.Event, 0, len(b.Events))
			for i, k := range keep {
				if k {
					events = append(events, b.Events[i])
				}
			}
			if blocks, err = s.encodeBatch(ctx, events); err != nil {
				return err
			}
		}
		if err := s.insertBlocks(ctx, tx, blocks); err != nil {
			return err
		}
		if err := addRollups(ctx, tx, events); err != nil {
			return err
		}
		stored = int64(len(events))
		if err := saveOffsets(ctx, tx, next); err != nil {
			return err
		}
		if dryRun {
			return errDryRun
		}
		return nil
	})
	return stored, err
}

// batchBlock is one block of a batch, and where it goes.
type batchBlock struct {
	block.Block
	merged bool
	tenant string
}

// encodeBatch makes the blocks of a batch: one or more per partition
// period, as a block lies in one partition. A period's logs that fill at
// least half a merged block are sorted and written as merged blocks into
// their partition at once: logs that arrive in volume are then written
// once, not once fresh and again by the merger, which halves their WAL
// and spares the merger's decode and re-encode. Fewer logs go into fresh
// blocks for the merger, as do those of a period whose partition is
// missing once the batch made Config.PartitionsPerWrite new ones, so
// that a batch spread over many days does not stall on DDL: the merger
// makes those partitions, off the ingest path.
func (s *Store) encodeBatch(ctx context.Context, events []logs.Event) ([]batchBlock, error) {
	if len(events) == 0 {
		return nil, nil
	}
	for i := range events {
		// The producer and the record decoder validate metadata in full;
		// this catches a caller that skipped them, at no cost per byte.
		if m := events[i].Metadata; len(m) > 0 && (m[0] != '{' || m[len(m)-1] != '}') {
			return nil, &DataError{Reason: fmt.Sprintf("event %s: metadata is not a JSON object", events[i].ID)}
		}
	}
	// Most batches are of one tenant and lie in one period: they are
	// encoded as they are, and only a batch across tenants or periods is
	// copied into one group per (tenant, period).
	type groupKey struct {
		tenant string
		period time.Time
	}
	keyOf := func(e *logs.Event) groupKey {
		return groupKey{logs.TenantOrDefault(e.Tenant), s.periodOf(e.Timestamp)}
	}
	first := keyOf(&events[0])
	groups := map[groupKey][]logs.Event{first: events}
	for i := range events {
		if k := keyOf(&events[i]); k != first {
			groups = map[groupKey][]logs.Event{}
			for j := range events {
				k := keyOf(&events[j])
				groups[k] = append(groups[k], events[j])
			}
			break
		}
	}
	var out []batchBlock
	created := 0
	target := s.cfg.Maintenance.MergeRows
	keys := slices.SortedFunc(maps.Keys(groups), func(a, b groupKey) int {
		return cmp.Or(a.period.Compare(b.period), cmp.Compare(a.tenant, b.tenant))
	})
	for _, k := range keys {
		group, p := groups[k], k.period
		known := s.knowsDay(p)
		if !known && created < s.cfg.PartitionsPerWrite {
			if err := s.ensureDays(ctx, s.pool, []time.Time{p}); err != nil {
				return nil, err
			}
			known = true
			created++
		}
		direct := known && len(group) >= target/2
		if direct {
			sorted := sortedByKey(group)
			for _, n := range mergedSizes(sorted, target) {
				blk, err := s.merged.Encode(sorted[:n])
				if err != nil {
					return nil, &DataError{Reason: err.Error()}
				}
				out = append(out, batchBlock{blk, true, k.tenant})
				sorted = sorted[n:]
			}
			s.noteWritten(p)
			continue
		}
		for len(group) > 0 {
			n := min(len(group), freshBlockRows)
			blk, err := s.fresh.Encode(group[:n])
			if err != nil {
				return nil, &DataError{Reason: err.Error()}
			}
			out = append(out, batchBlock{blk, false, k.tenant})
			group = group[n:]
		}
	}
	return out, nil
}

// sortedByKey returns the events in (timestamp, id) order, in a new slice.
// It sorts compact keys (microseconds, the id's leading bytes, position),
// not the events: comparing times and ids of 150-byte events took 20 ms
// for a batch of 20,000.
func sortedByKey(events []logs.Event) []logs.Event {
	type key struct {
		us     int64
		hi, lo uint64
		at     int32
	}
	keys := make([]key, len(events))
	for i := range events {
		e := &events[i]
		keys[i] = key{e.Timestamp.UnixMicro(), binary.BigEndian.Uint64(e.ID[:8]), binary.BigEndian.Uint64(e.ID[8:]), int32(i)}
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.us, b.us), cmp.Compare(a.hi, b.hi), cmp.Compare(a.lo, b.lo), cmp.Compare(a.at, b.at))
	})
	out := make([]logs.Event, len(events))
	for i, k := range keys {
		out[i] = events[k.at]
	}
	return out
}

// mergedBlockBytes bounds the raw bytes of a merged block as
// Config.Maintenance.MergeRows bounds its rows: 5,000 logs of 60 kB would
// make a block of 300 MB, which every merge into it would rewrite.
const mergedBlockBytes = 16 << 20

// rawSize is about how many bytes an event adds to a block before
// compression.
func rawSize(e *logs.Event) int {
	return len(e.Message) + len(e.Metadata) + len(e.Source) + len(e.TraceID) + 32
}

// mergedSizes splits sorted events into merged blocks of target rows (or
// mergedBlockBytes), but for a remainder shorter than half of either,
// which would stay small: the last block takes it instead.
func mergedSizes(events []logs.Event, target int) []int {
	var sizes []int
	for len(events) > 0 {
		n, bytes := 0, 0
		for n < len(events) && n < target && (n == 0 || bytes+rawSize(&events[n]) <= mergedBlockBytes) {
			bytes += rawSize(&events[n])
			n++
		}
		if rest := len(events) - n; rest > 0 && rest < target/2 {
			restBytes := 0
			for i := n; i < len(events); i++ {
				restBytes += rawSize(&events[i])
			}
			if bytes+restBytes <= mergedBlockBytes*3/2 {
				n = len(events)
			}
		}
		sizes = append(sizes, n)
		events = events[n:]
	}
	return sizes
}

// insertBlocks writes blocks with their summaries.
func (s *Store) insertBlocks(ctx context.Context, tx pgx.Tx, blocks []batchBlock) error {
	if len(blocks) == 0 {
		return nil
	}
	var batch pgx.Batch
	for _, blk := range blocks {
		queueBlock(&batch, blk.Block, blk.merged, blk.tenant)
	}
	return tx.SendBatch(ctx, &batch).Close()
}

// queueBlock inserts a block: a merged one into its partition of
// log_blocks, a fresh one into log_blocks_fresh. Its logs are tenant's.
func queueBlock(batch *pgx.Batch, blk block.Block, merged bool, tenant string) {
	sum := blk.Summary
	levels := make([]int32, logs.NumLevels)
	for i, n := range sum.Levels {
		levels[i] = int32(n)
	}
	table := "log_blocks_fresh"
	if merged {
		table = "log_blocks"
	}
	batch.Queue(`INSERT INTO `+table+` (min_ts, max_ts, row_count, levels, sources, merged, msg_bloom, trace_bloom, meta_bloom, data, tenant)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		sum.MinTime, sum.MaxTime, sum.Rows, levels, sum.Sources, merged,
		sum.MessageBloom, sum.TraceBloom, sum.MetaBloom, blk.Data, tenant)
}

type rollupKey struct {
	tenant string
	bucket time.Time
	level  int16
	source string
}

// addRollups adds the events to the per-hour and per-minute counts. Keys
// are upserted in order, so that two writers lock them in one order.
func addRollups(ctx context.Context, tx pgx.Tx, events []logs.Event) error {
	if len(events) == 0 {
		return nil
	}
	for _, r := range []struct {
		table string
		unit  time.Duration
	}{{"log_rollup_hour", time.Hour}} {
		counts := map[rollupKey]int64{}
		for i := range events {
			e := &events[i]
			counts[rollupKey{logs.TenantOrDefault(e.Tenant), e.Timestamp.UTC().Truncate(r.unit), e.Level.Code(), e.Source}]++
		}
		keys := slices.SortedFunc(maps.Keys(counts), func(a, b rollupKey) int {
			return cmp.Or(cmp.Compare(a.tenant, b.tenant), a.bucket.Compare(b.bucket), cmp.Compare(a.level, b.level), cmp.Compare(a.source, b.source))
		})
		tenants := make([]string, len(keys))
		buckets := make([]time.Time, len(keys))
		levels := make([]int16, len(keys))
		sources := make([]string, len(keys))
		ns := make([]int64, len(keys))
		for i, k := range keys {
			tenants[i], buckets[i], levels[i], sources[i], ns[i] = k.tenant, k.bucket, k.level, k.source, counts[k]
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+r.table+` (tenant, bucket, level, source, count)
			SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::smallint[], $4::text[], $5::bigint[])
			ON CONFLICT (tenant, bucket, level, source) DO UPDATE SET count = `+r.table+`.count + EXCLUDED.count`,
			tenants, buckets, levels, sources, ns); err != nil {
			return err
		}
		// The same counts without the source, for what does not need it.
		var lt []string
		var lb []time.Time
		var ll []int16
		var ln []int64
		for i := range keys {
			if n := len(lb); n > 0 && lt[n-1] == tenants[i] && lb[n-1].Equal(buckets[i]) && ll[n-1] == levels[i] {
				ln[n-1] += ns[i]
				continue
			}
			lt, lb, ll, ln = append(lt, tenants[i]), append(lb, buckets[i]), append(ll, levels[i]), append(ln, ns[i])
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+r.table+`_level (tenant, bucket, level, count)
			SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::smallint[], $4::bigint[])
			ON CONFLICT (tenant, bucket, level) DO UPDATE SET count = `+r.table+`_level.count + EXCLUDED.count`,
			lt, lb, ll, ln); err != nil {
			return err
		}
	}
	return addMinutes(ctx, tx, events)
}

// partitionKey names one partition of one topic.
type partitionKey struct {
	topic     string
	partition int32
}

// admit locks the stored offsets of the batch's partitions and decides
// which events to store: keep is nil when all of them, else keep[i] says
// whether Events[i] is stored. next holds the offsets to save.
func (s *Store) admit(ctx context.Context, tx pgx.Tx, b Batch) (keep []bool, next map[partitionKey]int64, err error) {
	next = map[partitionKey]int64{}
	for _, p := range append(slices.Clone(b.Positions), b.Consumed...) {
		k := partitionKey{p.Topic, p.Partition}
		next[k] = max(next[k], p.Offset+1)
	}
	drop := func(i int) {
		if keep == nil {
			keep = make([]bool, len(b.Events))
			for j := range keep {
				keep[j] = true
			}
		}
		keep[i] = false
	}
	if len(next) > 0 {
		stored, err := lockOffsets(ctx, tx, next)
		if err != nil {
			return nil, nil, err
		}
		for i, p := range b.Positions {
			if p.Offset < stored[partitionKey{p.Topic, p.Partition}] {
				drop(i) // stored by an earlier transaction: a redelivery
			}
		}
	}
	// Of the events whose client chose the id, keep the first of each id
	// that is not stored yet.
	// An id is a tenant's: two tenants may choose the same one.
	type tenantID struct {
		tenant string
		id     uuid.UUID
	}
	var tenants []string
	var ids []uuid.UUID
	var tss []time.Time
	var at []int
	seen := map[tenantID]bool{}
	for i := range b.Events {
		e := &b.Events[i]
		if !e.ClientID || (keep != nil && !keep[i]) {
			continue
		}
		k := tenantID{logs.TenantOrDefault(e.Tenant), e.ID}
		if seen[k] {
			drop(i)
			continue
		}
		seen[k] = true
		tenants, ids, tss, at = append(tenants, k.tenant), append(ids, e.ID), append(tss, e.Timestamp), append(at, i)
	}
	if len(ids) > 0 {
		rows, err := tx.Query(ctx, `INSERT INTO client_ids (tenant, id, ts) SELECT * FROM unnest($1::text[], $2::uuid[], $3::timestamptz[])
			ON CONFLICT DO NOTHING RETURNING tenant, id`, tenants, ids, tss)
		if err != nil {
			return nil, nil, err
		}
		isFresh := map[tenantID]bool{}
		var k tenantID
		if _, err := pgx.ForEachRow(rows, []any{&k.tenant, &k.id}, func() error { isFresh[k] = true; return nil }); err != nil {
			return nil, nil, err
		}
		if len(isFresh) < len(ids) {
			for j, id := range ids {
				if !isFresh[tenantID{tenants[j], id}] {
					drop(at[j])
				}
			}
		}
	}
	return keep, next, nil
}

// lockOffsets returns the stored next offset of each partition, locking
// its row until the transaction ends, so two writers of one partition (a
// rebalance in progress) take turns and the second skips what the first
// stored.
func lockOffsets(ctx context.Context, tx pgx.Tx, parts map[partitionKey]int64) (map[partitionKey]int64, error) {
	keys := slices.SortedFunc(maps.Keys(parts), func(a, b partitionKey) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	})
	topics := make([]string, len(keys))
	partitions := make([]int32, len(keys))
	for i, k := range keys {
		topics[i], partitions[i] = k.topic, k.partition
	}
	if _, err := tx.Exec(ctx, `INSERT INTO consumer_offsets (topic, partition, next_offset)
		SELECT t, p, 0 FROM unnest($1::text[], $2::int[]) AS u(t, p) ON CONFLICT DO NOTHING`, topics, partitions); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `SELECT o.topic, o.partition, o.next_offset FROM consumer_offsets o
		JOIN unnest($1::text[], $2::int[]) AS u(t, p) ON o.topic = u.t AND o.partition = u.p
		ORDER BY o.topic, o.partition FOR UPDATE OF o`, topics, partitions)
	if err != nil {
		return nil, err
	}
	stored := map[partitionKey]int64{}
	var (
		k   partitionKey
		off int64
	)
	_, err = pgx.ForEachRow(rows, []any{&k.topic, &k.partition, &off}, func() error {
		stored[k] = off
		return nil
	})
	return stored, err
}

// saveOffsets raises the stored offsets to next (never lowers them).
func saveOffsets(ctx context.Context, tx pgx.Tx, next map[partitionKey]int64) error {
	if len(next) == 0 {
		return nil
	}
	var (
		topics     []string
		partitions []int32
		offsets    []int64
	)
	for k, off := range next {
		topics, partitions, offsets = append(topics, k.topic), append(partitions, k.partition), append(offsets, off)
	}
	_, err := tx.Exec(ctx, `UPDATE consumer_offsets o SET next_offset = GREATEST(o.next_offset, u.n)
		FROM unnest($1::text[], $2::int[], $3::bigint[]) AS u(t, p, n) WHERE o.topic = u.t AND o.partition = u.p`,
		topics, partitions, offsets)
	return err
}

// Offsets returns the next offset to read of each partition of topic
// whose records this store holds: where a consumer resumes.
func (s *Store) Offsets(ctx context.Context, topic string) (map[int32]int64, error) {
	rows, err := s.pool.Query(ctx, "SELECT partition, next_offset FROM consumer_offsets WHERE topic = $1", topic)
	if err != nil {
		return nil, fmt.Errorf("store: read offsets: %w", err)
	}
	out := map[int32]int64{}
	var (
		p   int32
		off int64
	)
	_, err = pgx.ForEachRow(rows, []any{&p, &off}, func() error { out[p] = off; return nil })
	if err != nil {
		return nil, fmt.Errorf("store: read offsets: %w", err)
	}
	return out, nil
}

// distinctPeriods lists the partition periods the events fall in, each
// once. Only those get partitions: an event from 1990 and one from today
// make two, not the thousands in between.
func (s *Store) distinctPeriods(events []logs.Event) []time.Time {
	var days []time.Time
	seen := make(map[time.Time]struct{}, 2)
	for i := range events {
		d := s.periodOf(events[i].Timestamp)
		if _, ok := seen[d]; !ok {
			seen[d] = struct{}{}
			days = append(days, d)
		}
	}
	return days
}

// isNoPartition reports PostgreSQL's "no partition of relation found for
// row" (23514, check_violation).
func isNoPartition(err error) bool {
	return pgCode(err) == pgerrcode.CheckViolation && strings.Contains(err.Error(), "no partition")
}

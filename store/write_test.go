package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/store"
	"github.com/logengine/logengine/store/logs"
	"github.com/logengine/logengine/store/storetest"
)

func searchAll(start, end time.Time, size int) logs.Search {
	return logs.Search{Start: start, End: end, Size: size}
}

func TestWriteBatchRoundTrip(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ts := time.Date(2024, 5, 17, 8, 30, 15, 123456000, time.UTC)
	in := []logs.Event{
		{
			ID:        uuid.New(),
			Timestamp: ts,
			Level:     logs.LevelError,
			Source:    "paiement-service",
			Message:   "Échec du paiement 💳 для заказа №42 — 支付失败",
			Metadata:  json.RawMessage(`{"order":42,"tags":["a","b"],"nested":{"ok":false,"pi":3.14},"name":"Zoë"}`),
			TraceID:   "4bf92f3577b34da6a3ce929d0e0e4736",
		},
		{
			// No metadata, no trace id: both NULL, both read back empty.
			ID:        uuid.New(),
			Timestamp: ts.Add(time.Microsecond),
			Level:     logs.LevelTrace,
			Source:    "api",
			Message:   "plain",
		},
		{
			// A non-UTC timestamp is the same instant.
			ID:        uuid.New(),
			Timestamp: ts.Add(2 * time.Microsecond).In(time.FixedZone("CEST", 2*3600)),
			Level:     logs.LevelFatal,
			Source:    "api",
			Message:   "empty metadata object",
			Metadata:  json.RawMessage(`{}`),
		},
	}
	if n := mustWrite(t, s, in...); n != int64(len(in)) {
		t.Fatalf("inserted %d, want %d", n, len(in))
	}
	page, err := s.Search(context.Background(), logs.Search{Start: ts, End: ts.Add(time.Second), Size: 10, Asc: true})
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	if len(page.Events) != len(in) {
		t.Fatalf("got %d events, want %d", len(page.Events), len(in))
	}
	for i, got := range page.Events {
		want := in[i]
		if got.ID != want.ID {
			t.Errorf("event %d: id %s, want %s", i, got.ID, want.ID)
		}
		if !got.Timestamp.Equal(want.Timestamp) || got.Timestamp.Location() != time.UTC {
			t.Errorf("event %d: timestamp %v, want %v in UTC", i, got.Timestamp, want.Timestamp)
		}
		if got.Level != want.Level || got.Source != want.Source || got.Message != want.Message || got.TraceID != want.TraceID {
			t.Errorf("event %d: got %q %q %q %q, want %q %q %q %q", i,
				got.Level, got.Source, got.Message, got.TraceID, want.Level, want.Source, want.Message, want.TraceID)
		}
		if !jsonEqual(t, got.Metadata, want.Metadata) {
			t.Errorf("event %d: metadata %s, want %s", i, got.Metadata, want.Metadata)
		}
		if !got.ReceivedAt.IsZero() {
			t.Errorf("event %d: ReceivedAt %v, want zero", i, got.ReceivedAt)
		}
	}
	if page.Events[1].Metadata != nil {
		t.Errorf("absent metadata read back as %q, want nil", page.Events[1].Metadata)
	}
}

func jsonEqual(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("bad JSON %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("bad JSON %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// at gives events consecutive positions in one partition of "logs".
func at(partition int32, first int64, n int) []logs.Position {
	out := make([]logs.Position, n)
	for i := range out {
		out[i] = logs.Position{Topic: "logs", Partition: partition, Offset: first + int64(i)}
	}
	return out
}

func mustWriteAt(t *testing.T, s *store.Store, b store.Batch) int64 {
	t.Helper()
	n, err := s.Write(context.Background(), b)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return n
}

// Exactly once without a lookup per row: the offsets stored with the logs
// say what a redelivery already holds.
func TestWriteRedelivery(t *testing.T) {
	t.Parallel()
	s, dbURL := open(t)
	conn := sqlConn(t, dbURL)
	now := time.Now().UTC().Truncate(time.Microsecond)
	batch := make([]logs.Event, 100)
	for i := range batch {
		batch[i] = ev(now.Add(time.Duration(i)*time.Millisecond), logs.LevelInfo, "api", fmt.Sprintf("event %d", i))
	}
	if n := mustWriteAt(t, s, store.Batch{Events: batch, Positions: at(0, 0, 100)}); n != 100 {
		t.Fatalf("first write stored %d, want 100", n)
	}
	if n := mustWriteAt(t, s, store.Batch{Events: batch, Positions: at(0, 0, 100)}); n != 0 {
		t.Errorf("redelivery stored %d, want 0", n)
	}
	// A redelivered batch overlapping new records stores only the new ones.
	extra := ev(now, logs.LevelWarn, "api", "new")
	if n := mustWriteAt(t, s, store.Batch{Events: append(batch[:10:10], extra), Positions: at(0, 90, 11)}); n != 1 {
		t.Errorf("partly redelivered batch stored %d, want 1", n)
	}
	// Another partition has offsets of its own.
	if n := mustWriteAt(t, s, store.Batch{Events: batch[:5], Positions: at(1, 0, 5)}); n != 5 {
		t.Errorf("partition 1 stored %d, want 5", n)
	}
	// Records consumed without a log to store (sent to the DLQ) move the
	// offset too.
	if n := mustWriteAt(t, s, store.Batch{Consumed: at(1, 5, 3)}); n != 0 {
		t.Errorf("a batch of consumed records only stored %d", n)
	}
	if n := storedCount(t, conn); n != 106 {
		t.Errorf("the blocks hold %d logs, want 106", n)
	}
	offsets, err := s.Offsets(context.Background(), "logs")
	if err != nil || offsets[0] != 101 || offsets[1] != 8 || len(offsets) != 2 {
		t.Errorf("Offsets = %v, %v; want 0:101 1:8", offsets, err)
	}
	if n := mustWrite(t, s); n != 0 {
		t.Errorf("empty batch stored %d", n)
	}
	if _, err := s.Write(context.Background(), store.Batch{Events: batch, Positions: at(0, 0, 3)}); err == nil {
		t.Error("Write took 100 events with 3 positions")
	}
}

// An id the client chose is stored once, however often it is sent and
// whatever timestamp each copy got; ids assigned by the producer are not
// looked up at all.
func TestWriteClientIDs(t *testing.T) {
	t.Parallel()
	s, dbURL := open(t)
	conn := sqlConn(t, dbURL)
	now := time.Now().UTC().Truncate(time.Microsecond)
	retry := ev(now, logs.LevelError, "db", "retried")
	retry.ClientID = true
	later := retry
	later.Timestamp = now.Add(3 * time.Second) // a retry without a client timestamp
	if n := mustWrite(t, s, retry, ev(now, logs.LevelInfo, "db", "other"), retry); n != 2 {
		t.Errorf("batch with a client id twice stored %d, want 2", n)
	}
	if n := mustWrite(t, s, later); n != 0 {
		t.Errorf("the retry stored %d, want 0", n)
	}
	snapshot(t, conn)
	if n := queryInt(t, conn, "SELECT count(*) FROM logs WHERE id = $1", retry.ID); n != 1 {
		t.Errorf("client id stored %d times, want 1", n)
	}
	if n := queryInt(t, conn, "SELECT count(*) FROM client_ids"); n != 1 {
		t.Errorf("client_ids holds %d ids, want only the client's 1", n)
	}
}

func TestPartitionsOnDemand(t *testing.T) {
	t.Parallel()
	s, dbURL := open(t)
	conn := sqlConn(t, dbURL)
	partitions := func() int64 {
		return queryInt(t, conn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'log_blocks'::regclass")
	}
	before := partitions() // yesterday, today, tomorrow
	if before != 3 {
		t.Errorf("Open made %d partitions, want 3", before)
	}

	now := time.Now().UTC()
	old := time.Date(1990, 6, 1, 23, 59, 59, 999999000, time.UTC)
	// One event from 1990 and one from today: one new partition, not
	// 13,000.
	mustWrite(t, s, ev(old, logs.LevelInfo, "api", "1990"), ev(now, logs.LevelInfo, "api", "today"))
	if got := partitions(); got != before+1 {
		t.Errorf("after 1990+today: %d partitions, want %d", got, before+1)
	}
	future := now.AddDate(0, 0, 5)
	years := now.AddDate(-7, 0, 0)
	mustWrite(t, s, ev(future, logs.LevelInfo, "api", "future"), ev(years, logs.LevelInfo, "api", "years ago"))
	if got := partitions(); got != before+3 {
		t.Errorf("after future+years ago: %d partitions, want %d", got, before+3)
	}
	mergeAll(t, s)
	for _, ts := range []time.Time{old, future, years} {
		name := "log_blocks_p" + ts.Format("20060102")
		if n := queryInt(t, conn, "SELECT coalesce(sum(row_count), 0)::bigint FROM "+name); n != 1 {
			t.Errorf("%s holds %d rows, want 1", name, n)
		}
	}
	// The partition covers its day exactly: the last microsecond of 1990-06-01
	// is in it, midnight of 06-02 is not.
	mustWrite(t, s, ev(old.Add(time.Microsecond), logs.LevelInfo, "api", "next day"))
	mergeAll(t, s)
	if n := queryInt(t, conn, "SELECT coalesce(sum(row_count), 0)::bigint FROM log_blocks_p19900602"); n != 1 {
		t.Errorf("log_blocks_p19900602 holds %d rows, want 1", n)
	}

	// EnsurePartitions covers a range, both ends included.
	from := time.Date(2001, 2, 27, 12, 0, 0, 0, time.UTC)
	if err := s.EnsurePartitions(context.Background(), from, from.AddDate(0, 0, 3)); err != nil {
		t.Fatalf("EnsurePartitions: %v", err)
	}
	for _, name := range []string{"log_blocks_p20010227", "log_blocks_p20010228", "log_blocks_p20010301", "log_blocks_p20010302"} {
		if n := queryInt(t, conn, "SELECT count(*) FROM pg_inherits WHERE inhrelid = to_regclass($1)", name); n != 1 {
			t.Errorf("partition %s missing", name)
		}
	}
}

// Two stores (two consumers) creating the same partitions at once.
func TestEnsurePartitionsConcurrently(t *testing.T) {
	t.Parallel()
	dbURL := storetest.NewURL(t)
	stores := []*store.Store{openURL(t, dbURL), openURL(t, dbURL), openURL(t, dbURL)}
	from := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
	errs := make(chan error, len(stores)*2)
	done := make(chan struct{})
	for _, s := range stores {
		go func() {
			errs <- s.EnsurePartitions(context.Background(), from, from.AddDate(0, 0, 20))
			_, err := s.WriteBatch(context.Background(), []logs.Event{ev(from.AddDate(0, 1, 0), logs.LevelInfo, "api", "x")})
			errs <- err
			done <- struct{}{}
		}()
	}
	for range stores {
		<-done
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// A partition dropped behind the store's back (retention) is recreated.
func TestWriteAfterPartitionDropped(t *testing.T) {
	t.Parallel()
	s, dbURL := open(t)
	conn := sqlConn(t, dbURL)
	ts := time.Date(2015, 3, 3, 3, 3, 3, 0, time.UTC)
	mustWrite(t, s, ev(ts, logs.LevelInfo, "api", "first"))
	if _, err := conn.Exec(context.Background(), "DROP TABLE log_blocks_p20150303"); err != nil {
		t.Fatal(err)
	}
	if n := mustWrite(t, s, ev(ts, logs.LevelInfo, "api", "second")); n != 1 {
		t.Errorf("inserted %d, want 1", n)
	}
}

func TestWriteBatchDataError(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	good := func() logs.Event { return ev(now, logs.LevelInfo, "api", "fine") }
	cases := []struct {
		name   string
		poison logs.Event
	}{
		// The rollups keep sources as PostgreSQL text.
		{"NUL in source", ev(now, logs.LevelInfo, "a\x00pi", "msg")},
		{"invalid UTF-8 in source", ev(now, logs.LevelInfo, "a\xffpi", "msg")},
		// An answer must be able to embed the metadata as JSON.
		{"invalid metadata JSON", func() logs.Event {
			e := good()
			e.Metadata = json.RawMessage(`{"a":`)
			return e
		}()},
		{"metadata not an object", func() logs.Event {
			e := good()
			e.Metadata = json.RawMessage(`[1,2]`)
			return e
		}()},
	}
	s, dbURL := open(t)
	conn := sqlConn(t, dbURL)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.WriteBatch(context.Background(), []logs.Event{good(), tc.poison, good()})
			if err == nil {
				t.Fatal("WriteBatch accepted poison")
			}
			if !store.IsDataError(err) {
				t.Fatalf("IsDataError(%v) = false", err)
			}
			if n := storedCount(t, conn); n != 0 {
				t.Errorf("%d rows written from the failed batch, want 0", n)
			}
		})
	}
	// The pool still works. Blocks hold any bytes: a message with a NUL
	// or invalid UTF-8, or metadata jsonb could not hold, is kept as sent
	// (the producer repairs them before they get here).
	odd := []logs.Event{good(), ev(now, logs.LevelInfo, "api", "bad \x00 byte"), ev(now, logs.LevelInfo, "api", "bad \xff byte"), good()}
	odd[3].Metadata = json.RawMessage(`{"a":"\u0000"}`)
	if n := mustWrite(t, s, odd...); n != 4 {
		t.Errorf("after data errors stored %d, want 4", n)
	}
	kept := map[string]bool{}
	if err := s.Export(context.Background(), logs.Search{}, func(e logs.Event) error {
		kept[e.Message+string(e.Metadata)] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, e := range odd {
		if !kept[e.Message+string(e.Metadata)] {
			t.Errorf("%q %s not kept as sent", e.Message, e.Metadata)
		}
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}

	// Neither cancellation nor a closed pool is a data error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.WriteBatch(ctx, []logs.Event{good()}); err == nil || store.IsDataError(err) {
		t.Errorf("cancelled write: err %v, IsDataError %v", err, store.IsDataError(err))
	}
	s2, err := store.Open(context.Background(), store.Config{URL: dbURL}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if _, err := s2.WriteBatch(context.Background(), []logs.Event{good()}); err == nil || store.IsDataError(err) {
		t.Errorf("write on closed store: err %v, IsDataError %v", err, store.IsDataError(err))
	}
	if store.IsDataError(nil) {
		t.Error("IsDataError(nil) is true")
	}
}

// A batch with enough logs of one period is written as merged blocks at
// once, sorted and cut as the merger would; a small group of another
// period waits in a fresh block for the merger.
func TestWriteLargeGroupsAsMergedBlocks(t *testing.T) {
	t.Parallel()
	s, dbURL := open(t)
	conn := sqlConn(t, dbURL)
	now := time.Now().UTC().Truncate(time.Microsecond)
	r := rand.New(rand.NewPCG(1, 2))
	var batch []logs.Event
	for range 12_000 {
		batch = append(batch, ev(now.Add(-time.Duration(r.Int64N(int64(time.Hour)))).Truncate(time.Microsecond), logs.LevelInfo, "api", "bulk"))
	}
	yesterday := now.AddDate(0, 0, -1)
	for range 10 {
		batch = append(batch, ev(yesterday, logs.LevelWarn, "db", "few"))
	}
	r.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
	if n := mustWrite(t, s, batch...); n != int64(len(batch)) {
		t.Fatalf("stored %d, want %d", n, len(batch))
	}
	if n := queryInt(t, conn, "SELECT coalesce(sum(row_count), 0)::bigint FROM log_blocks_fresh"); n != 10 {
		t.Errorf("fresh blocks hold %d logs, want the small group's 10", n)
	}
	rows, err := conn.Query(context.Background(), "SELECT min_ts, max_ts, row_count FROM log_blocks WHERE merged ORDER BY min_ts")
	if err != nil {
		t.Fatal(err)
	}
	var prevMax time.Time
	total := 0
	for rows.Next() {
		var lo, hi time.Time
		var n int
		if err := rows.Scan(&lo, &hi, &n); err != nil {
			t.Fatal(err)
		}
		if n < 2500 || n >= 7500 {
			t.Errorf("merged block of %d rows, want between half and one and a half of 5000", n)
		}
		if lo.Before(prevMax) {
			t.Errorf("merged blocks overlap: one starts at %s before the previous ends at %s", lo, prevMax)
		}
		prevMax, total = hi, total+n
	}
	if rows.Err() != nil || total != 12_000 {
		t.Errorf("merged blocks hold %d logs (err %v), want 12000", total, rows.Err())
	}
	if n := queryInt(t, conn, "SELECT count(*) FROM log_blocks WHERE merged AND max_ts < min_ts"); n != 0 {
		t.Errorf("%d blocks with max_ts < min_ts", n)
	}
	// The merger has only the small group to do.
	mergeAll(t, s)
	if n := queryInt(t, conn, "SELECT count(*) FROM log_blocks_fresh"); n != 0 {
		t.Errorf("%d fresh blocks left after merging", n)
	}
	got := storetest.StoredLogs(t, dbURL)
	if len(got) != len(batch) {
		t.Fatalf("%d logs stored, want %d", len(got), len(batch))
	}
	want := map[uuid.UUID]bool{}
	for _, e := range batch {
		want[e.ID] = true
	}
	for _, e := range got {
		if !want[e.ID] {
			t.Fatalf("stored log %s was not sent (or is stored twice)", e.ID)
		}
		delete(want, e.ID)
	}
	// Newest first across merged blocks.
	res, err := s.Search(context.Background(), logs.Search{Start: now.Add(-2 * time.Hour), End: now.Add(time.Second), Size: 100})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(batch, func(a, b logs.Event) int { return b.Timestamp.Compare(a.Timestamp) })
	if len(res.Events) != 100 || !res.Events[0].Timestamp.Equal(batch[0].Timestamp) || !res.Events[99].Timestamp.Equal(batch[99].Timestamp) {
		t.Errorf("newest 100: %d logs, first %v last %v; want %v .. %v", len(res.Events),
			res.Events[0].Timestamp, res.Events[len(res.Events)-1].Timestamp, batch[0].Timestamp, batch[99].Timestamp)
	}
}

// A batch spread over many periods creates only a few partitions on the
// ingest path; the merger creates the rest, and nothing is lost.
func TestWriteBatchOverManyPeriods(t *testing.T) {
	t.Parallel()
	s, dbURL := open(t)
	conn := sqlConn(t, dbURL)
	partitions := func() int64 {
		return queryInt(t, conn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'log_blocks'::regclass")
	}
	before := partitions()
	first := time.Date(2020, 1, 1, 12, 0, 0, 0, time.UTC)
	var batch []logs.Event
	const days = 30
	for d := range days {
		batch = append(batch, ev(first.AddDate(0, 0, d), logs.LevelInfo, "api", fmt.Sprint("day ", d)))
	}
	if n := mustWrite(t, s, batch...); n != days {
		t.Fatalf("stored %d, want %d", n, days)
	}
	if got := partitions(); got > before+int64(store.DefaultConfig().PartitionsPerWrite) {
		t.Errorf("one write made %d partitions, want at most %d", got-before, store.DefaultConfig().PartitionsPerWrite)
	}
	if n := storetest.StoredCount(t, dbURL); n != days {
		t.Errorf("%d logs readable before merging, want %d", n, days)
	}
	st, err := s.Stats(context.Background(), logs.Stats{Start: first.Add(-time.Hour), End: first.AddDate(1, 0, 0)})
	if err != nil || st.Total != days {
		t.Errorf("Stats: total %d (err %v), want %d", st.Total, err, days)
	}
	mergeAll(t, s)
	if got := partitions(); got != before+days {
		t.Errorf("after merging: %d new partitions, want %d", got-before, days)
	}
	for _, d := range []int{0, days / 2, days - 1} {
		name := "log_blocks_p" + first.AddDate(0, 0, d).Format("20060102")
		if n := queryInt(t, conn, "SELECT coalesce(sum(row_count), 0)::bigint FROM "+name); n != 1 {
			t.Errorf("%s holds %d rows, want 1", name, n)
		}
	}
}

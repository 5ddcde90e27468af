package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
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

func TestWriteBatchRedelivery(t *testing.T) {
	t.Parallel()
	s, dbURL := open(t)
	conn := sqlConn(t, dbURL)
	now := time.Now().UTC().Truncate(time.Microsecond)
	batch := make([]logs.Event, 100)
	for i := range batch {
		batch[i] = ev(now.Add(time.Duration(i)*time.Millisecond), logs.LevelInfo, "api", fmt.Sprintf("event %d", i))
	}

	if n := mustWrite(t, s, batch...); n != 100 {
		t.Fatalf("first write inserted %d, want 100", n)
	}
	if n := mustWrite(t, s, batch...); n != 0 {
		t.Errorf("redelivery inserted %d, want 0", n)
	}
	// A redelivered batch overlapping new events inserts only the new ones.
	extra := ev(now, logs.LevelWarn, "api", "new")
	if n := mustWrite(t, s, append(batch[:10:10], extra)...); n != 1 {
		t.Errorf("partly redelivered batch inserted %d, want 1", n)
	}
	if n := queryInt(t, conn, "SELECT count(*) FROM logs"); n != 101 {
		t.Errorf("logs has %d rows, want 101", n)
	}

	// The same id twice within one batch is stored once.
	dup := ev(now.Add(time.Hour), logs.LevelError, "db", "dup")
	if n := mustWrite(t, s, dup, dup, ev(now, logs.LevelInfo, "db", "other"), dup); n != 2 {
		t.Errorf("batch with a repeated id inserted %d, want 2", n)
	}
	if n := queryInt(t, conn, "SELECT count(*) FROM logs WHERE id = $1", dup.ID); n != 1 {
		t.Errorf("repeated id stored %d times, want 1", n)
	}
	if n := mustWrite(t, s); n != 0 {
		t.Errorf("empty batch inserted %d", n)
	}
}

func TestPartitionsOnDemand(t *testing.T) {
	t.Parallel()
	s, dbURL := open(t)
	conn := sqlConn(t, dbURL)
	partitions := func() int64 {
		return queryInt(t, conn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'logs'::regclass")
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
	for _, ts := range []time.Time{old, future, years} {
		name := "logs_p" + ts.Format("20060102")
		if n := queryInt(t, conn, "SELECT count(*) FROM "+name); n != 1 {
			t.Errorf("%s holds %d rows, want 1", name, n)
		}
	}
	// The partition covers its day exactly: the last microsecond of 1990-06-01
	// is in it, midnight of 06-02 is not.
	mustWrite(t, s, ev(old.Add(time.Microsecond), logs.LevelInfo, "api", "next day"))
	if n := queryInt(t, conn, "SELECT count(*) FROM logs_p19900602"); n != 1 {
		t.Errorf("logs_p19900602 holds %d rows, want 1", n)
	}

	// EnsurePartitions covers a range, both ends included.
	from := time.Date(2001, 2, 27, 12, 0, 0, 0, time.UTC)
	if err := s.EnsurePartitions(context.Background(), from, from.AddDate(0, 0, 3)); err != nil {
		t.Fatalf("EnsurePartitions: %v", err)
	}
	for _, name := range []string{"logs_p20010227", "logs_p20010228", "logs_p20010301", "logs_p20010302"} {
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
	if _, err := conn.Exec(context.Background(), "DROP TABLE logs_p20150303"); err != nil {
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
		{"NUL in message", ev(now, logs.LevelInfo, "api", "bad \x00 byte")},
		{"NUL in source", ev(now, logs.LevelInfo, "a\x00pi", "msg")},
		{"invalid UTF-8", ev(now, logs.LevelInfo, "api", "bad \xff byte")},
		{"invalid metadata JSON", func() logs.Event {
			e := good()
			e.Metadata = json.RawMessage(`{"a":`)
			return e
		}()},
		{"NUL in metadata", func() logs.Event {
			e := good()
			e.Metadata = json.RawMessage(`{"a":"\u0000"}`)
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
			if n := queryInt(t, conn, "SELECT count(*) FROM logs"); n != 0 {
				t.Errorf("%d rows written from the failed batch, want 0", n)
			}
		})
	}
	// The pool still works.
	if n := mustWrite(t, s, good(), good()); n != 2 {
		t.Errorf("after data errors inserted %d, want 2", n)
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

package block

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/store/logs"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// ev makes an event with a UUIDv7 id of its timestamp.
func ev(ts time.Time, msg string) logs.Event {
	id, err := uuid.NewV7()
	if err != nil {
		panic(err)
	}
	ms := uint64(ts.UnixMilli())
	for j := range 6 {
		id[j] = byte(ms >> (40 - 8*j))
	}
	return logs.Event{ID: id, Timestamp: ts, Level: logs.LevelInfo, Source: "api", Message: msg}
}

// stored is what a block gives back for events: sorted, timestamps in
// UTC microseconds, no ReceivedAt.
func stored(events []logs.Event) []logs.Event {
	out := slices.Clone(events)
	for i := range out {
		out[i].Timestamp = out[i].Timestamp.UTC().Truncate(time.Microsecond)
		out[i].ReceivedAt = time.Time{}
	}
	slices.SortStableFunc(out, func(a, b logs.Event) int { return compareEvents(&a, &b) })
	return out
}

// sameEvents fails t where got and want differ, field by field, nil and
// empty metadata told apart.
func sameEvents(t *testing.T, got, want []logs.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	bad := 0
	for i := range want {
		g, w := got[i], want[i]
		var diffs []string
		if g.ID != w.ID {
			diffs = append(diffs, fmt.Sprintf("id %s, want %s", g.ID, w.ID))
		}
		if !g.Timestamp.Equal(w.Timestamp) || g.Timestamp.Location() != time.UTC {
			diffs = append(diffs, fmt.Sprintf("timestamp %v, want %v", g.Timestamp, w.Timestamp))
		}
		if g.Level != w.Level || g.Source != w.Source || g.Message != w.Message || g.TraceID != w.TraceID {
			diffs = append(diffs, fmt.Sprintf("level/source/message/trace %v/%q/%.60q/%q, want %v/%q/%.60q/%q",
				g.Level, g.Source, g.Message, g.TraceID, w.Level, w.Source, w.Message, w.TraceID))
		}
		if !bytes.Equal(g.Metadata, w.Metadata) || (g.Metadata == nil) != (w.Metadata == nil) {
			diffs = append(diffs, fmt.Sprintf("metadata %#v, want %#v", g.Metadata, w.Metadata))
		}
		if !g.ReceivedAt.IsZero() {
			diffs = append(diffs, "ReceivedAt set")
		}
		if len(diffs) > 0 {
			t.Errorf("event %d: %s", i, strings.Join(diffs, "; "))
			if bad++; bad > 5 {
				t.FailNow()
			}
		}
	}
}

func roundTrip(t *testing.T, codec *Codec, events []logs.Event) Block {
	t.Helper()
	b, err := codec.Encode(events)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	got, err := codec.Decode(b.Data)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := stored(events)
	sameEvents(t, got, want)

	// A subset through a Reader, in a given order, and its keys.
	r, err := codec.NewReader(b.Data)
	if err != nil {
		t.Fatal(err)
	}
	rows := []int{len(want) - 1, 0}
	if len(want) == 1 {
		rows = []int{0}
	}
	some, err := r.Events(rows)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := r.Keys(rows)
	if err != nil {
		t.Fatal(err)
	}
	for n, i := range rows {
		sameEvents(t, some[n:n+1], want[i:i+1])
		if keys[n].ID != want[i].ID || !keys[n].TS.Equal(want[i].Timestamp) {
			t.Errorf("Keys row %d = %v, want %v %v", i, keys[n], want[i].Timestamp, want[i].ID)
		}
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	codec := newTestCodec(t, CompressionDefault)
	manyKeys := map[string]int{}
	for i := range 1300 {
		manyKeys[fmt.Sprintf("key_%04d", i)] = i
	}
	bigMeta, _ := json.Marshal(manyKeys)
	bigMeta = bigMeta[:bytes.LastIndexByte(bigMeta[:16<<10-1], ',')]
	bigMeta = append(bigMeta, '}')
	if len(bigMeta) < 15<<10 || !json.Valid(bigMeta) {
		t.Fatalf("bad big metadata of %d bytes", len(bigMeta))
	}
	unit := "héllo wörld 123 "
	long := strings.Repeat(unit, (64<<10-3)/len(unit)) + "end"
	long += strings.Repeat("x", 64<<10-len(long)) // a message of 64 KiB

	cases := []struct {
		name   string
		events func() []logs.Event
	}{
		{"one event", func() []logs.Event { return []logs.Event{ev(t0, "hello")} }},
		{"metadata forms", func() []logs.Event {
			metas := []json.RawMessage{
				nil, {}, json.RawMessage(`{}`), json.RawMessage(`null`), json.RawMessage(`[1,2]`),
				json.RawMessage(`"s"`), json.RawMessage(`{ "a" : 1 }`), json.RawMessage(`{"a":1,"a":2}`),
				json.RawMessage(`{"\u0061":"\u00e9","b\"c":"d\\"}`), json.RawMessage(`{"a":{"b":[1, 2]},"c":null}`),
				json.RawMessage(`{"a":`), json.RawMessage(`{"a":1}x`), json.RawMessage("{\"a\":\"\xff\"}"),
				json.RawMessage(`{"n":-0.0e+00,"t":true,"f":false,"big":123456789012345678901234567890}`),
				json.RawMessage("{\"a\":1}\n"), json.RawMessage(`{"":""}`), bigMeta,
			}
			var out []logs.Event
			for i, m := range metas {
				e := ev(t0.Add(time.Duration(i)*time.Millisecond), "m")
				e.Metadata = m
				out = append(out, e)
			}
			return out
		}},
		{"metadata dictionary and plain keys", func() []logs.Event {
			var out []logs.Event
			for i := range 2000 {
				e := ev(t0.Add(time.Duration(i)*time.Millisecond), "m")
				// k256 has exactly 256 distinct values (a dictionary),
				// k257 one more (plain), rare is in a few rows.
				m := fmt.Sprintf(`{"k256":%d,"k257":"v%d","r":%q}`, i%256, i%257, []string{"us", "eu"}[i%2])
				if i%500 == 0 {
					m = m[:len(m)-1] + `,"rare":[1,{"x":"y"}]}`
				}
				e.Metadata = json.RawMessage(m)
				out = append(out, e)
			}
			return out
		}},
		{"trace ids", func() []logs.Event {
			traces := []string{
				"", "4bf92f3577b34da6a3ce929d0e0e4736", "4bf92f3577b34da6a3ce929d0e0e4736",
				"4BF92F3577B34DA6A3CE929D0E0E4736", "4bf92f3577b34da6a3ce929d0e0e473", "", "x", "", "x",
				"x", "trace-☃-日本", strings.Repeat("t", 128), "4bf92f3577b34da6a3ce929d0e0e4736",
				"00000000000000000000000000000000",
			}
			var out []logs.Event
			for i, tr := range traces {
				e := ev(t0.Add(time.Duration(i)*time.Millisecond), "t")
				e.TraceID = tr
				out = append(out, e)
			}
			return out
		}},
		{"no trace ids at all", func() []logs.Event {
			return []logs.Event{ev(t0, "a"), ev(t0.Add(time.Millisecond), "b")}
		}},
		{"messages", func() []logs.Event {
			msgs := []string{
				"", "héllo wörld ☃ 日本語 😀", "0", "007", "x=0 y=10.0.3.4 in 84ms",
				"12345678901234567890", "18446744073709551615", "9999999999999999999", "abc123 123abc",
				"\xfe\xff\xfe1\xff", "\xc3(invalid utf-8", "nul\x00byte", "%_\\ like chars",
				"-42 +7 1e5 0x1f 3.05", long, "1", "99",
			}
			var out []logs.Event
			for i, m := range msgs {
				out = append(out, ev(t0.Add(time.Duration(i)*time.Millisecond), m))
			}
			return out
		}},
		{"ids", func() []logs.Event {
			v4 := uuid.New()
			v7far := ev(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), "").ID
			noVariant := ev(t0, "").ID
			noVariant[8] &^= 0x80 // version 7, not the RFC variant
			var maxID uuid.UUID
			for i := range maxID {
				maxID[i] = 0xff
			}
			var out []logs.Event
			for i, id := range []uuid.UUID{v4, {}, v7far, noVariant, maxID, ev(t0, "").ID} {
				e := ev(t0.Add(time.Duration(i)*time.Millisecond), "i")
				e.ID = id
				out = append(out, e)
			}
			return out
		}},
		{"only non-v7 ids", func() []logs.Event {
			var out []logs.Event
			for i := range 50 {
				e := ev(t0.Add(time.Duration(i)*time.Second), "i")
				e.ID = uuid.New()
				out = append(out, e)
			}
			return out
		}},
		{"timestamps", func() []logs.Event {
			same := t0.Add(time.Hour)
			a, b := ev(same, "same a"), ev(same, "same b")
			paris, _ := time.LoadLocation("Europe/Paris")
			return []logs.Event{
				ev(time.Date(1900, 1, 1, 0, 0, 0, 1000, time.UTC), "1900"),
				ev(time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC), "before epoch"),
				ev(time.Unix(0, 0), "epoch"),
				ev(t0.Add(1234*time.Nanosecond), "sub-microsecond"),
				ev(t0.In(paris).Add(time.Second), "Paris"),
				a, b,
				ev(time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), "9999"),
				ev(time.Date(200000, 1, 1, 0, 0, 0, 0, time.UTC), "year 200000"),
			}
		}},
		{"sources and levels", func() []logs.Event {
			var out []logs.Event
			for i := range 1000 {
				e := ev(t0.Add(time.Duration(i)*time.Millisecond), "s")
				e.Source = fmt.Sprintf("svc-%d", i%300) // more than 256 distinct
				if i%7 == 0 {
					e.Source = ""
				}
				if i%11 == 0 {
					e.Source = "sörvice ☃"
				}
				e.Level = logs.Level(i % logs.NumLevels)
				out = append(out, e)
			}
			return out
		}},
		{"unsorted input", func() []logs.Event {
			var out []logs.Event
			for i := range 100 {
				out = append(out, ev(t0.Add(time.Duration((i*37)%100)*time.Millisecond), fmt.Sprint(i)))
			}
			return out
		}},
		{"realistic", func() []logs.Event { e, _ := Realistic(3000, 2); return e }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			events := c.events()
			input := slices.Clone(events)
			b := roundTrip(t, codec, events)
			if !slices.EqualFunc(events, input, func(a, b logs.Event) bool { return a.ID == b.ID }) {
				t.Error("Encode reordered the caller's slice")
			}
			want := stored(events)
			s := b.Summary
			if s.Rows != len(want) || !s.MinTime.Equal(want[0].Timestamp) || !s.MaxTime.Equal(want[len(want)-1].Timestamp) {
				t.Errorf("summary rows %d %v..%v, want %d %v..%v", s.Rows, s.MinTime, s.MaxTime,
					len(want), want[0].Timestamp, want[len(want)-1].Timestamp)
			}
			var levels [logs.NumLevels]uint32
			var sources []string
			for _, e := range want {
				levels[e.Level]++
				sources = append(sources, e.Source)
			}
			slices.Sort(sources)
			if s.Levels != levels || !slices.Equal(s.Sources, slices.Compact(sources)) {
				t.Errorf("summary levels %v sources %q, want %v %q", s.Levels, s.Sources, levels, sources)
			}
		})
	}
}

func TestEncodeRejects(t *testing.T) {
	codec := newTestCodec(t, CompressionDefault)
	if _, err := codec.Encode(nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("Encode(nil) = %v, want ErrEmpty", err)
	}
	bad := ev(t0, "x")
	bad.Level = logs.NumLevels
	if _, err := codec.Encode([]logs.Event{bad}); err == nil {
		t.Error("an invalid level encoded")
	}
	far := ev(time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC), "x")
	if _, err := codec.Encode([]logs.Event{far}); err == nil {
		t.Error("a timestamp beyond int64 microseconds encoded")
	}
}

// The Codec is shared by every goroutine of a process.
func TestCodecConcurrentUse(t *testing.T) {
	codec := newTestCodec(t, CompressionDefault)
	events, _ := Realistic(2000, 3)
	want := stored(events)
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			part := events[g*500 : (g+1)*500]
			for range 5 {
				b, err := codec.Encode(part)
				if err != nil {
					errs <- err
					return
				}
				got, err := codec.Decode(b.Data)
				if err != nil {
					errs <- err
					return
				}
				for i := range got {
					if got[i].ID != want[g*500+i].ID || got[i].Message != want[g*500+i].Message {
						errs <- fmt.Errorf("goroutine %d row %d differs", g, i)
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

package block

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/store/logs"
)

// fuzzFilter exercises every column and every Match path.
var fuzzFilter = Filter{
	Start: t0.Add(-time.Hour), End: t0.Add(time.Hour),
	Levels: []logs.Level{logs.LevelInfo, logs.LevelError}, Sources: []string{"api", "db"},
	Keyword: "o", TraceID: "t2", Meta: []logs.MetaMatch{{Key: "status", Value: "500"}},
}

// FuzzDecode feeds corrupt blocks to the reader: it must return an error
// or events, never panic, and what it decodes must encode again.
func FuzzDecode(f *testing.F) {
	codec := newTestCodec(f, CompressionDefault)
	realistic, _ := Realistic(60, 7)
	for _, events := range [][]logs.Event{
		MatchEvents(), realistic, randomEvents(rand.New(rand.NewPCG(1, 2)), 30),
		{ev(t0, "one")},
	} {
		b, err := codec.Encode(events)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b.Data)
		f.Add(b.Data[:len(b.Data)/2])
		flipped := bytes.Clone(b.Data)
		flipped[len(flipped)/3] ^= 0x10
		f.Add(flipped)
	}
	f.Add([]byte{})
	f.Add([]byte{Version})
	f.Add([]byte{Version, 1, 1, colLevel, encRaw, 1, 1, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := codec.NewReader(data)
		if err != nil {
			return
		}
		_, _ = r.Match(fuzzFilter)
		_, _ = r.Match(Filter{Start: t0})
		_, _ = r.Keys([]int{0, r.Len() - 1})
		events, err := r.All()
		if err != nil {
			return
		}
		b, err := codec.Encode(events)
		if err != nil {
			return // e.g. a timestamp beyond what Encode accepts
		}
		again, err := codec.Decode(b.Data)
		if err != nil {
			t.Fatalf("decoded events do not round-trip: %v", err)
		}
		sameEvents(t, again, stored(events))
	})
}

// FuzzRoundTrip encodes events of arbitrary content: they must come back
// exactly, and the summary must never rule out their own trace id,
// metadata or message words.
func FuzzRoundTrip(f *testing.F) {
	codec := newTestCodec(f, CompressionDefault)
	f.Add("User LOGGED in", []byte(`{"status":500,"region":"eu"}`), "4bf92f3577b34da6a3ce929d0e0e4736", "api", int64(0), []byte{7})
	f.Add("", []byte(nil), "", "", int64(-1), []byte{})
	f.Add("héllo 007 \xfe\xff 12345678901234567890", []byte(`{ "a" : [1] }`), "T", "☃", int64(1<<40), []byte{1, 2, 3})
	f.Add("x", []byte(`{"a":"\u00e9","a":5e2,"b":true}`), "x", "s", int64(123456789), bytes.Repeat([]byte{0xff}, 16))
	f.Fuzz(func(t *testing.T, msg string, meta []byte, trace, source string, micros int64, idBytes []byte) {
		var id uuid.UUID
		copy(id[:], idBytes)
		ts := time.UnixMicro(micros % (1 << 52)).UTC()
		var metadata json.RawMessage
		if meta != nil {
			metadata = json.RawMessage(meta)
		}
		base := logs.Event{ID: id, Timestamp: ts, Level: logs.Level(len(msg) % logs.NumLevels),
			Source: source, Message: msg, Metadata: metadata, TraceID: trace}
		second := base
		second.Timestamp = ts.Add(time.Millisecond)
		third := second
		third.TraceID = ""
		third.Metadata = nil
		events := []logs.Event{base, second, third}
		b, err := codec.Encode(events)
		if err != nil {
			t.Fatal(err)
		}
		got, err := codec.Decode(b.Data)
		if err != nil {
			t.Fatal(err)
		}
		sameEvents(t, got, stored(events))

		for _, f := range []Filter{{Keyword: msg}, {TraceID: trace}, {Sources: []string{source}}} {
			r, err := codec.NewReader(b.Data)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := r.Match(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) > 0 && !b.Summary.MayMatch(f) {
				t.Errorf("the summary rules out %+v, which matches %v", f, rows)
			}
		}
		if json.Valid(meta) {
			ms, _, ok := scanObject(nil, meta)
			for _, m := range ms {
				k, kok := keyText(m.key)
				v, vok := unquote(m.val)
				if !ok || !kok || !vok {
					continue
				}
				f := Filter{Meta: []logs.MetaMatch{{Key: k, Value: v}}}
				if !b.Summary.MayMatch(f) {
					t.Errorf("the summary rules out %+v, a member of the row's metadata", f)
				}
			}
		}
	})
}

package block

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/store/logs"
)

// MatchCase is a filter and the rows (indexes into MatchEvents) it
// selects. The table is shared with the test that runs the same filters
// through store.Search's SQL.
type MatchCase struct {
	Name   string
	Filter Filter
	Want   []int
}

const upperTrace = "4BF92F3577B34DA6A3CE929D0E0E4736"

// MatchEvents are the rows of the semantics table, in block order.
func MatchEvents() []logs.Event {
	sec := time.Second
	mk := func(d time.Duration, l logs.Level, src, msg, trace, meta string) logs.Event {
		e := ev(t0.Add(d), msg)
		e.Level, e.Source, e.TraceID = l, src, trace
		if meta != "" {
			e.Metadata = json.RawMessage(meta)
		}
		return e
	}
	return []logs.Event{
		mk(0, logs.LevelInfo, "api", "User LOGGED in", strings.ToLower(upperTrace), `{"status":500,"region":"eu"}`),
		mk(1*sec, logs.LevelError, "db", "Connection refused by host", "t2", `{"status":"500"}`),
		mk(2*sec, logs.LevelWarn, "api", "100% done", "", `{"status":5e2,"ok":true}`),
		mk(3*sec, logs.LevelDebug, "worker", "job 1000 finished", "", `{"status":"5e2","ok":"true"}`),
		mk(4*sec, logs.LevelError, "api", `path c:\temp\x`, "", `{"a":"x","a":"y"}`),
		mk(5*sec, logs.LevelFatal, "worker", "under_score here", "", `{"n":{"status":500},"arr":["v"],"nul":null}`),
		mk(5*sec+time.Microsecond, logs.LevelInfo, "api", "ÉCOLE Ünïcode", "", `{ "sp" : " 500 " }`),
		mk(6*sec, logs.LevelInfo, "api", "second 1000", "t2", `{"\u0073tatus":500.0,"é":"\u00e9"}`),
		mk(7*sec, logs.LevelError, "db", "nothing", "", ""),
		mk(8*sec, logs.LevelInfo, "db", "x", upperTrace, `{}`),
	}
}

func metaF(kv ...string) Filter {
	var f Filter
	for i := 0; i < len(kv); i += 2 {
		f.Meta = append(f.Meta, logs.MetaMatch{Key: kv[i], Value: kv[i+1]})
	}
	return f
}

// MatchCases is the semantics table: what store.Search's SQL selects.
func MatchCases() []MatchCase {
	sec := time.Second
	return []MatchCase{
		{"no filter", Filter{}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"window inclusive", Filter{Start: t0.Add(sec), End: t0.Add(3 * sec)}, []int{1, 2, 3}},
		{"start rounds up to the microsecond", Filter{Start: t0.Add(5*sec + time.Nanosecond)}, []int{6, 7, 8, 9}},
		{"end rounds down to the microsecond", Filter{End: t0.Add(5*sec + 999*time.Nanosecond)}, []int{0, 1, 2, 3, 4, 5}},
		{"empty window", Filter{Start: t0.Add(3 * sec), End: t0.Add(2 * sec)}, nil},
		{"one level", Filter{Levels: []logs.Level{logs.LevelError}}, []int{1, 4, 8}},
		{"two levels", Filter{Levels: []logs.Level{logs.LevelError, logs.LevelFatal}}, []int{1, 4, 5, 8}},
		{"one source", Filter{Sources: []string{"api"}}, []int{0, 2, 4, 6, 7}},
		{"unknown source", Filter{Sources: []string{"nope"}}, nil},
		{"keyword any case", Filter{Keyword: "logged IN"}, []int{0}},
		{"percent is literal", Filter{Keyword: "100%"}, []int{2}},
		{"lone percent", Filter{Keyword: "%"}, []int{2}},
		{"underscore is literal", Filter{Keyword: "_"}, []int{5}},
		{"backslash", Filter{Keyword: `c:\temp`}, []int{4}},
		{"non-ASCII case", Filter{Keyword: "école üNÏ"}, []int{6}},
		{"digits", Filter{Keyword: "1000"}, []int{3, 7}},
		{"short keyword", Filter{Keyword: "o"}, []int{0, 1, 2, 3, 5, 6, 7, 8}},
		{"absent keyword", Filter{Keyword: "no such words"}, nil},
		{"trace exact", Filter{TraceID: strings.ToLower(upperTrace)}, []int{0}},
		{"trace is case-sensitive", Filter{TraceID: upperTrace}, []int{9}},
		{"trace other", Filter{TraceID: "t2"}, []int{1, 7}},
		{"meta number or string", metaF("status", "500"), []int{0, 1, 2, 7}},
		{"meta exponent matches numbers and its own string", metaF("status", "5e2"), []int{0, 2, 3, 7}},
		{"meta decimal", metaF("status", "500.0"), []int{0, 2, 7}},
		{"meta boolean or string", metaF("ok", "true"), []int{2, 3}},
		{"meta boolean is exact", metaF("ok", "TRUE"), nil},
		{"meta duplicate key keeps the last", metaF("a", "x"), nil},
		{"meta duplicate key last value", metaF("a", "y"), []int{4}},
		{"meta not inside arrays", metaF("arr", "v"), nil},
		{"meta null never", metaF("nul", "null"), nil},
		{"meta whitespace in stored object", metaF("sp", " 500 "), []int{6}},
		{"meta padded string is no number", metaF("sp", "500"), nil},
		{"meta escaped value", metaF("é", "é"), []int{7}},
		{"meta two pairs", metaF("region", "eu", "status", "500"), []int{0}},
		{"meta absent key", metaF("nope", "1"), nil},
		{"everything", Filter{Start: t0, End: t0.Add(10 * sec), Levels: []logs.Level{logs.LevelError},
			Sources: []string{"db"}, Keyword: "REFUSED", TraceID: "t2", Meta: []logs.MetaMatch{{Key: "status", Value: "500"}}}, []int{1}},
	}
}

func TestMatch(t *testing.T) {
	codec := newTestCodec(t, CompressionDefault)
	events := MatchEvents()
	if !slices.EqualFunc(stored(events), events, func(a, b logs.Event) bool { return a.ID == b.ID }) {
		t.Fatal("MatchEvents is not in block order")
	}
	b, err := codec.Encode(events)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range MatchCases() {
		t.Run(c.Name, func(t *testing.T) {
			r, err := codec.NewReader(b.Data) // a fresh Reader: nothing preloaded
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Match(c.Filter)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.Want) || (len(got) > 0 && !slices.Equal(got, c.Want)) {
				t.Errorf("Match = %v, want %v", got, c.Want)
			}
			if len(c.Want) > 0 && !b.Summary.MayMatch(c.Filter) {
				t.Error("the summary rules the block out")
			}
		})
	}
}

// The summary skips blocks: each of its tests alone can rule one out.
func TestSummaryPrunes(t *testing.T) {
	codec := newTestCodec(t, CompressionDefault)
	b, err := codec.Encode(MatchEvents())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		f    Filter
	}{
		{"before", Filter{End: t0.Add(-time.Microsecond)}},
		{"after", Filter{Start: t0.Add(8*time.Second + time.Microsecond)}},
		{"level", Filter{Levels: []logs.Level{logs.LevelTrace}}},
		{"source", Filter{Sources: []string{"nope"}}},
		{"keyword", Filter{Keyword: "zygomorphic"}},
		{"trace", Filter{TraceID: "no-such-trace"}},
		{"meta", metaF("status", "404")},
	} {
		if b.Summary.MayMatch(c.f) {
			t.Errorf("%s: MayMatch(%+v) = true, want the block skipped", c.name, c.f)
		}
	}
}

// A realistic block: each rare token is in exactly one row, found by
// Match and not pruned; a block without it is pruned.
func TestMatchRareToken(t *testing.T) {
	codec := newTestCodec(t, CompressionDefault)
	events, rare := Realistic(20000, 5)
	if len(rare) != 2 {
		t.Fatalf("%d rare tokens, want 2", len(rare))
	}
	b, err := codec.Encode(events)
	if err != nil {
		t.Fatal(err)
	}
	other, err := codec.Encode(events[:RareEvery/2-1]) // before the first rare row
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range rare {
		f := Filter{Keyword: strings.ToUpper(tok)}
		r, err := codec.NewReader(b.Data)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := r.Match(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || !strings.Contains(events[rows[0]].Message, tok) {
			t.Errorf("%s: rows %v", tok, rows)
		}
		if !b.Summary.MayMatch(f) {
			t.Errorf("%s: the block holding it is skipped", tok)
		}
		if other.Summary.MayMatch(f) {
			t.Errorf("%s: a block without it is not skipped", tok)
		}
	}
}

package block

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/store/logs"
)

// getBit is PostgreSQL's get_bit(bytea, n).
func getBit(b []byte, n uint64) bool { return b[n/8]>>(n%8)&1 == 1 }

// The layout is what SQL tests with get_bit: bit v mod m of each value.
func TestBloomLayout(t *testing.T) {
	h := itemHash([]byte("abc"))
	bloom := newBloom([]uint64{h})
	m := uint64(len(bloom)) * 8
	want := map[uint64]bool{}
	for _, v := range appendBloomValues(nil, h) {
		if v >= 1<<63 {
			t.Fatalf("value %d does not fit a bigint", v)
		}
		want[v%m] = true
	}
	for n := range m {
		if getBit(bloom, n) != want[n] {
			t.Errorf("bit %d = %v, want %v", n, getBit(bloom, n), want[n])
		}
	}

	two := []byte{0x00, 0x02} // bit 9 only: byte 1, second least significant bit
	for _, c := range []struct {
		v    uint64
		want bool
	}{{9, true}, {25, true}, {8, false}, {1, false}, {10, false}} {
		if got := MayContain(two, []uint64{c.v}); got != c.want {
			t.Errorf("MayContain(bit 9 set, %d) = %v, want %v", c.v, got, c.want)
		}
	}
	if !MayContain(two, nil) || !MayContain(nil, []uint64{1}) {
		t.Error("no hashes, or no filter, must not rule anything out")
	}
}

func TestBloomSizes(t *testing.T) {
	for _, c := range []struct{ items, min, max int }{
		{0, bloomMinBytes, bloomMinBytes},
		{1, bloomMinBytes, bloomMinBytes},
		{10_000, 11_900, 12_100}, // 9.6 bits per item
		{100_000_000, bloomMaxBytes, bloomMaxBytes},
	} {
		if got := bloomBytes(c.items); got < c.min || got > c.max {
			t.Errorf("bloomBytes(%d) = %d, want [%d, %d]", c.items, got, c.min, c.max)
		}
	}
	if KeywordHashes("ab") != nil || KeywordHashes("") != nil || TraceHashes("") != nil {
		t.Error("an item that cannot prune must have no hashes")
	}
	if n := len(KeywordHashes("ABCABCA")); n != 3*BloomK { // abc, bca, cab
		t.Errorf("KeywordHashes(ABCABCA) has %d values, want %d", n, 3*BloomK)
	}
}

// randomEvents makes events with awkward content: mixed case, non-ASCII,
// escapes, numbers of every form, duplicated keys.
func randomEvents(rng *rand.Rand, n int) []logs.Event {
	pieces := []string{"Error", "TIMEOUT", "é", "Ünïcödé", "ǅ", "ß", "日本", "😀", " ", "%", "_", "\\",
		"42", "007", "x1", "İ", "Σ", "ok", "A", "z", "\u212a", "ẞ", "É"}
	vals := []string{`"v"`, `"V"`, `""`, `"500"`, `"5e2"`, `" 7 "`, `"true"`, `"\u00e9"`, `"é"`, `500`, `500.0`,
		`5e2`, `-0`, `0`, `1.25`, `true`, `false`, `null`, `[1]`, `{"a":1}`, `123456789012345678901`}
	keys := []string{"a", "b", "status", "é", `\u0061`, "k k"}
	out := make([]logs.Event, n)
	for i := range out {
		var msg strings.Builder
		for range rng.IntN(12) {
			msg.WriteString(pieces[rng.IntN(len(pieces))])
		}
		e := ev(t0.Add(time.Duration(i)*time.Millisecond), msg.String())
		e.Level = logs.Level(rng.IntN(logs.NumLevels))
		e.Source = fmt.Sprint("s", rng.IntN(5))
		if rng.IntN(4) > 0 {
			b := make([]byte, 16)
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			e.TraceID = hex.EncodeToString(b)
			if rng.IntN(3) == 0 {
				e.TraceID = "T-" + e.TraceID[:rng.IntN(20)]
			}
		}
		if rng.IntN(5) > 0 {
			var m strings.Builder
			m.WriteByte('{')
			for j := range rng.IntN(4) {
				if j > 0 {
					m.WriteByte(',')
				}
				fmt.Fprintf(&m, `"%s":%s`, keys[rng.IntN(len(keys))], vals[rng.IntN(len(vals))])
			}
			m.WriteByte('}')
			s := m.String()
			if rng.IntN(4) == 0 {
				s = strings.ReplaceAll(s, ":", " : ") // kept whole
			}
			e.Metadata = json.RawMessage(s)
		}
		out[i] = e
	}
	return out
}

// queriesFor lists filters each of which matches e, by construction.
func queriesFor(rng *rand.Rand, e logs.Event) []Filter {
	var fs []Filter
	// Keywords: rune-aligned substrings, case changed.
	runes := []rune(e.Message)
	for range 3 {
		if len(runes) == 0 {
			break
		}
		i := rng.IntN(len(runes))
		j := i + 1 + rng.IntN(len(runes)-i)
		kw := string(runes[i:j])
		if rng.IntN(2) == 0 {
			kw = strings.ToUpper(kw)
			if !strings.Contains(strings.ToLower(e.Message), strings.ToLower(kw)) {
				kw = string(runes[i:j]) // upper-casing is not always reversible
			}
		}
		fs = append(fs, Filter{Keyword: kw})
	}
	if e.TraceID != "" {
		fs = append(fs, Filter{TraceID: e.TraceID})
	}
	// Metadata: the last value of each key, written as a query would.
	var members []member
	if json.Valid(e.Metadata) {
		members, _, _ = scanObject(nil, e.Metadata)
	}
	last := map[string]string{}
	for _, m := range members {
		k, _ := keyText(m.key)
		last[k] = string(m.val)
	}
	for k, v := range last {
		switch {
		case strings.HasPrefix(v, `"`):
			s, _ := unquote([]byte(v))
			fs = append(fs, Filter{Meta: []logs.MetaMatch{{Key: k, Value: s}}})
		case v == "true" || v == "false":
			fs = append(fs, Filter{Meta: []logs.MetaMatch{{Key: k, Value: v}}}, Filter{Meta: []logs.MetaMatch{{Key: k, Value: " " + v}}})
		case v[0] == '-' || isDigit(v[0]):
			if _, err := strconv.ParseFloat(v, 64); err == nil {
				// Equal numbers, written otherwise.
				fs = append(fs, Filter{Meta: []logs.MetaMatch{{Key: k, Value: v}}})
				if !strings.ContainsAny(v, "eE") {
					fs = append(fs, Filter{Meta: []logs.MetaMatch{{Key: k, Value: v + "e0"}}})
				}
				if !strings.ContainsAny(v, ".eE") {
					fs = append(fs, Filter{Meta: []logs.MetaMatch{{Key: k, Value: v + ".000"}}})
				}
			}
		}
	}
	return fs
}

// A block's summary never rules out a row its Match finds: every item
// inserted is found. Property test over random content.
func TestBloomNoFalseNegatives(t *testing.T) {
	codec := newTestCodec(t, CompressionDefault)
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 99))
		events := randomEvents(rng, 200)
		b, err := codec.Encode(events)
		if err != nil {
			t.Fatal(err)
		}
		r, err := codec.NewReader(b.Data)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range stored(events) {
			for _, f := range queriesFor(rng, e) {
				rows, err := r.Match(f)
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, row := range rows {
					found = found || row == i
				}
				if !found {
					t.Errorf("seed %d: filter %+v does not match its own row %d (%q, %s)", seed, f, i, e.Message, e.Metadata)
				}
				if len(rows) > 0 && !b.Summary.MayMatch(f) {
					t.Errorf("seed %d: the summary rules out filter %+v, which matches rows %v", seed, f, rows)
				}
			}
		}
	}
}

// Random filters, including ones that match nothing: whenever Match finds
// a row, MayMatch must agree.
func TestSummaryNeverPrunesAMatch(t *testing.T) {
	codec := newTestCodec(t, CompressionDefault)
	rng := rand.New(rand.NewPCG(5, 6))
	events := randomEvents(rng, 500)
	b, err := codec.Encode(events)
	if err != nil {
		t.Fatal(err)
	}
	r, err := codec.NewReader(b.Data)
	if err != nil {
		t.Fatal(err)
	}
	other := randomEvents(rand.New(rand.NewPCG(7, 8)), 300)
	matched := 0
	for _, e := range append(stored(events), other...) {
		for _, f := range queriesFor(rng, e) {
			rows, err := r.Match(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) > 0 {
				matched++
				if !b.Summary.MayMatch(f) {
					t.Errorf("the summary rules out %+v, which matches %d rows", f, len(rows))
				}
			}
		}
	}
	if matched < 500 {
		t.Errorf("only %d filters matched: the test proves little", matched)
	}
}

// The filters are sized for about 1 % false positives.
func TestBloomFalsePositiveRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	randHex := func() string {
		b := make([]byte, 16)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return hex.EncodeToString(b)
	}
	for _, n := range []int{100, 5000, 50000} {
		var hs []uint64
		for range n {
			hs = append(hs, itemHash([]byte(randHex())))
		}
		bloom := newBloom(hs)
		fp, tries := 0, 200000
		for range tries {
			if MayContain(bloom, TraceHashes(randHex())) {
				fp++
			}
		}
		rate := float64(fp) / float64(tries)
		t.Logf("%d items in %d bytes: %.2f %% false positives", n, len(bloom), 100*rate)
		if rate > 0.015 || (n >= 5000 && rate < 0.005) {
			t.Errorf("%d items: false positive rate %.3f, want about 0.01", n, rate)
		}
	}

	// A keyword of one absent trigram against a realistic block.
	codec := newTestCodec(t, CompressionDefault)
	events, _ := Realistic(20000, 4)
	b, err := codec.Encode(events)
	if err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	for _, e := range events {
		m := strings.ToLower(e.Message)
		for i := 0; i+3 <= len(m); i++ {
			present[m[i:i+3]] = true
		}
	}
	fp, tries := 0, 0
	for tries < 20000 {
		tri := string([]byte{byte(' ' + rng.IntN(95)), byte(' ' + rng.IntN(95)), byte(' ' + rng.IntN(95))})
		tri = strings.ToLower(tri)
		if present[tri] {
			continue
		}
		tries++
		if MayContain(b.Summary.MessageBloom, KeywordHashes(tri)) {
			fp++
		}
	}
	rate := float64(fp) / float64(tries)
	t.Logf("absent trigrams: %.2f %% false positives (message filter of %d bytes)", 100*rate, len(b.Summary.MessageBloom))
	if rate > 0.015 {
		t.Errorf("absent trigrams: false positive rate %.3f, want about 0.01", rate)
	}
}

// RandomEvents, FiltersFor and Stored give the tests of package block_test
// (which compare with the SQL) the generators above.
func RandomEvents(seed uint64, n int) []logs.Event {
	return randomEvents(rand.New(rand.NewPCG(seed, 99)), n)
}

func FiltersFor(seed uint64, e logs.Event) []Filter {
	return queriesFor(rand.New(rand.NewPCG(seed, 1)), e)
}

func Stored(events []logs.Event) []logs.Event { return stored(events) }

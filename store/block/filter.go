package block

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/logengine/logengine/store/logs"
)

// Filter selects rows, with the meaning store.Search gives the same
// fields in SQL. Every condition set must hold; a zero field filters
// nothing.
//
//   - Start and End bound the timestamp, both inclusive. A Start finer
//     than a microsecond rounds up, an End rounds down, as the SQL's do.
//   - Levels and Sources: the row's level (source) is one of them.
//   - Keyword: the message contains it, case-insensitively and literally
//     (no wildcard: "%" and "_" are themselves). Both sides are lower-cased
//     with strings.ToLower (Unicode's simple case mapping, rune by rune).
//     The SQL uses ILIKE, which lower-cases through the database
//     collation's lower(): the two agree on ASCII and, under a C.UTF-8 or
//     en_US.UTF-8 database, on the non-ASCII text the tests try ("É",
//     "İ", "Σ", "ẞ", the Kelvin sign). They can differ where the collation
//     has its own rules (a Turkish one lower-cases "I" to "ı") or knows
//     another Unicode version. Blocks follow strings.ToLower, which the
//     message filter also hashes, so the skip index and the row check
//     never disagree with each other.
//   - TraceID: equal, byte for byte.
//   - Meta: each one matches as in store.addMeta (see MetaHashes and the
//     notes in meta.go): the top-level member Key holds Value as a JSON
//     string, or, when Value reads as a JSON number or boolean, that
//     number (compared as an exact decimal) or boolean.
type Filter struct {
	Start, End time.Time
	Levels     []logs.Level
	Sources    []string
	Keyword    string
	TraceID    string
	Meta       []logs.MetaMatch
}

// SearchFilter is the filter part of a search (paging and ordering are
// the caller's).
func SearchFilter(q logs.Search) Filter {
	return Filter{
		Start: q.Start, End: q.End,
		Levels: q.Levels, Sources: q.Sources,
		Keyword: q.Keyword, TraceID: q.TraceID, Meta: q.Meta,
	}
}

// window is the filter's time range in Unix microseconds, inclusive;
// empty when nothing representable is inside.
func (f *Filter) window() (start, end int64, empty bool) {
	start, end = math.MinInt64, math.MaxInt64
	if !f.Start.IsZero() {
		switch s := f.Start.Unix(); {
		case s > maxUnixSec:
			return 0, 0, true
		case s >= -maxUnixSec:
			start = f.Start.UnixMicro()
			if f.Start.Nanosecond()%1000 != 0 {
				start++
			}
		}
	}
	if !f.End.IsZero() {
		switch s := f.End.Unix(); {
		case s < -maxUnixSec:
			return 0, 0, true
		case s <= maxUnixSec:
			end = f.End.UnixMicro()
		}
	}
	return start, end, start > end
}

// MayMatch reports whether the block may hold a row f matches: false
// means it holds none, so it need not be read. The same tests can run in
// SQL on the stored summary (see MayContain).
func (s *Summary) MayMatch(f Filter) bool {
	if !f.Start.IsZero() || !f.End.IsZero() {
		start, end, empty := f.window()
		if empty || s.MaxTime.UnixMicro() < start || s.MinTime.UnixMicro() > end {
			return false
		}
	}
	if len(f.Levels) > 0 {
		found := false
		for _, l := range f.Levels {
			found = found || l.Valid() && s.Levels[l] > 0
		}
		if !found {
			return false
		}
	}
	if len(f.Sources) > 0 {
		found := false
		for _, src := range f.Sources {
			found = found || sortedContains(s.Sources, src)
		}
		if !found {
			return false
		}
	}
	if !MayContain(s.MessageBloom, KeywordHashes(f.Keyword)) ||
		!MayContain(s.TraceBloom, TraceHashes(f.TraceID)) {
		return false
	}
	for _, m := range f.Meta {
		if !MayContain(s.MetaBloom, MetaHashes(m.Key, m.Value)) {
			return false
		}
	}
	return true
}

// Match returns the rows f matches, ascending (the block's (Timestamp, ID)
// order). It reads the cheap columns first and the messages last, and
// only for the rows still in the running.
func (r *Reader) Match(f Filter) ([]int, error) {
	lo, hi, err := r.timeRange(&f)
	if err != nil {
		return nil, err
	}
	rows := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		rows = append(rows, i)
	}
	keep := func(ok func(int) bool) {
		out := rows[:0]
		for _, i := range rows {
			if ok(i) {
				out = append(out, i)
			}
		}
		rows = out
	}

	if len(f.Levels) > 0 && len(rows) > 0 {
		if err := r.loadLevels(); err != nil {
			return nil, err
		}
		var want [256]bool
		for _, l := range f.Levels {
			want[l] = true
		}
		keep(func(i int) bool { return want[r.levels[i]] })
	}
	if len(f.Sources) > 0 && len(rows) > 0 {
		if err := r.loadSources(); err != nil {
			return nil, err
		}
		want := make([]bool, len(r.srcDict))
		for _, s := range f.Sources {
			for i, d := range r.srcDict {
				if d == s {
					want[i] = true
				}
			}
		}
		keep(func(i int) bool { return want[r.srcIdx[i]] })
	}
	if f.TraceID != "" && len(rows) > 0 {
		if err := r.loadTraces(); err != nil {
			return nil, err
		}
		t := r.traces
		var wantHex []byte
		if isLowerHex32(f.TraceID) {
			wantHex = appendHex16(nil, f.TraceID)
		}
		want := make([]bool, len(t.entries))
		for e, b := range t.entries {
			if t.isHex[e] {
				want[e] = wantHex != nil && bytes.Equal(b, wantHex)
			} else {
				want[e] = string(b) == f.TraceID
			}
		}
		keep(func(i int) bool { return t.ref[i] >= 0 && want[t.ref[i]] })
	}
	for _, mm := range f.Meta {
		if len(rows) == 0 {
			break
		}
		if err := r.loadMeta(); err != nil {
			return nil, err
		}
		q := newMetaQuery(mm)
		keyIs := make([]bool, len(r.meta.keys))
		for k, raw := range r.meta.keys {
			keyIs[k] = q.keyIs(raw)
		}
		var members []member
		keep(func(i int) bool {
			m := r.meta
			switch s := m.kind[i]; {
			case s == -2:
				return false
			case s == -1:
				b := m.whole[m.first[i]]
				if !json.Valid(b) {
					return false
				}
				var ok bool
				members, _, ok = scanObject(members[:0], b)
				return ok && q.matchMembers(members)
			default:
				shape := m.shapes[s]
				for j := len(shape) - 1; j >= 0; j-- {
					if keyIs[shape[j]] {
						return q.valueMatches(m.value(m.refs[int(m.first[i])+j]))
					}
				}
				return false
			}
		})
	}
	if f.Keyword != "" && len(rows) > 0 {
		if err := r.loadMessages(); err != nil {
			return nil, err
		}
		km := newKeywordMatcher(f.Keyword)
		keep(func(i int) bool { return km.match(r.message(i)) })
	}
	return rows, nil
}

// keywordMatcher tests strings.Contains(strings.ToLower(msg), lower) without
// allocating for ASCII messages, whose lower case is byte-wise.
type keywordMatcher struct {
	lower []byte
	ascii bool // lower is ASCII: it cannot occur in a non-ASCII form
	buf   []byte
}

func newKeywordMatcher(keyword string) *keywordMatcher {
	l := strings.ToLower(keyword)
	k := &keywordMatcher{lower: []byte(l), ascii: true}
	for i := 0; i < len(l); i++ {
		if l[i] >= utf8.RuneSelf {
			k.ascii = false
		}
	}
	return k
}

func (k *keywordMatcher) match(msg []byte) bool {
	buf := k.buf[:0]
	for _, c := range msg {
		if c >= utf8.RuneSelf {
			k.buf = buf
			return bytes.Contains([]byte(strings.ToLower(string(msg))), k.lower)
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	k.buf = buf
	return k.ascii && bytes.Contains(buf, k.lower)
}

// sortedContains reports whether the sorted list s holds v.
func sortedContains(s []string, v string) bool {
	_, ok := slices.BinarySearch(s, v)
	return ok
}

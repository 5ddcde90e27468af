package query

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/store/logs"
)

// TestAutomaticIntervalRespectsTheBucketCap: a histogram without an
// interval over the longest window RFC 3339 can express still has at most
// the automatic number of buckets (and so at most --max-buckets).
func TestAutomaticIntervalRespectsTheBucketCap(t *testing.T) {
	lim := DefaultLimits()
	windows := [][2]string{
		{"0000-01-01T00:00:00Z", "9999-12-31T00:00:00Z"},
		{"1000-01-01T00:00:00Z", "1969-12-31T23:59:59Z"},
		{"1969-12-31T23:59:59Z", "1970-01-01T00:00:01Z"},
		{"2024-01-01T00:00:00Z", "2026-01-01T00:00:00Z"},
		{"2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"},
	}
	for _, w := range windows {
		q, err := parseHistogram(w[0], w[1], "", "", "", paramNow, lim)
		if err != nil {
			t.Fatalf("%v: %v", w, err)
		}
		n := bucketCount(q.Start, q.End, q.Interval)
		if n > autoBuckets || n > int64(lim.MaxBuckets) || n < 1 {
			t.Errorf("%v: automatic interval %s makes %d buckets, want 1..%d", w, q.Interval, n, autoBuckets)
		}
		if q.Interval < time.Second || q.Interval%time.Second != 0 {
			t.Errorf("%v: interval %s is not a whole number of seconds", w, q.Interval)
		}
	}
	// The smallest allowed cap holds as well.
	lim.MaxBuckets = minMaxBuckets
	q, err := parseHistogram("0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "", "", "", paramNow, lim)
	if err != nil {
		t.Fatal(err)
	}
	if n := bucketCount(q.Start, q.End, q.Interval); n > int64(minMaxBuckets) {
		t.Errorf("with --max-buckets=%d the longest window makes %d buckets", minMaxBuckets, n)
	}
}

// TestExplicitIntervalCountsBucketsOverMillennia: the bucket count of a
// window longer than time.Duration can hold is not underestimated.
func TestExplicitIntervalCountsBucketsOverMillennia(t *testing.T) {
	_, err := parseHistogram("0000-01-01T00:00:00Z", "9999-12-31T00:00:00Z", "", "", "30d", paramNow, DefaultLimits())
	wantParamErr(t, err, "interval")
	if _, err := parseHistogram("0000-01-01T00:00:00Z", "9999-12-31T00:00:00Z", "", "", "36500d", paramNow, DefaultLimits()); err != nil {
		t.Errorf("100-year buckets over 10,000 years: %v", err)
	}
	if _, err := parseHistogram("", "", "", "", "9999999999999d", paramNow, DefaultLimits()); err == nil {
		t.Errorf("an interval of more days than a duration holds was accepted")
	}
}

// TestTextParametersRefuseNULAndInvalidUTF8: what PostgreSQL cannot take
// as text is a 400 naming the parameter, never a query that fails there.
func TestTextParametersRefuseNULAndInvalidUTF8(t *testing.T) {
	for _, bad := range []string{"a\x00b", "a\xffb", "\xc3"} {
		cases := map[string]rawSearch{
			"source":      {Source: bad},
			"keyword":     {Keyword: bad},
			"traceId":     {TraceID: bad},
			"meta.userId": {Meta: map[string]string{"userId": bad}},
			"meta":        {Meta: map[string]string{bad: "1"}},
		}
		for param, raw := range cases {
			_, err := parseSearch(raw, paramNow, DefaultLimits())
			wantParamErr(t, err, param)
		}
		_, err := parseStats("", "", "", bad, "", paramNow, DefaultLimits())
		wantParamErr(t, err, "source")
		_, err = parseHistogram("", "", "", bad, "", paramNow, DefaultLimits())
		wantParamErr(t, err, "source")
	}
}

// TestSourceListsHaveDistinctKeys: one source holding a byte that once
// separated list items, and the two sources it seems to join, are
// different searches with different cache keys.
func TestSourceListsHaveDistinctKeys(t *testing.T) {
	base := logs.Search{Size: 20}
	one, two := base, base
	one.Sources = []string{"a\x01b"}
	two.Sources = []string{"a", "b"}
	if slices.Equal(searchKey(one), searchKey(two)) {
		t.Errorf("sources [a\\x01b] and [a b] share the search key %q", searchKey(one))
	}
	if slices.Equal(statsKey(logs.Stats{Sources: one.Sources}), statsKey(logs.Stats{Sources: two.Sources})) {
		t.Errorf("sources [a\\x01b] and [a b] share the stats key")
	}
	if slices.Equal(histogramKey(logs.Histogram{Sources: one.Sources}), histogramKey(logs.Histogram{Sources: two.Sources})) {
		t.Errorf("sources [a\\x01b] and [a b] share the histogram key")
	}
	// Every pair of lists differs, whatever their items hold.
	lists := [][]string{{}, {""}, {"", ""}, {"ab"}, {"a", "b"}, {"1:a"}, {"a1:b"}, {"a", "1:b"}, {strings.Repeat("x", 10)}}
	seen := map[string]int{}
	for i, l := range lists {
		k := listKey(l)
		if j, dup := seen[k]; dup {
			t.Errorf("lists %q and %q share the key %q", lists[j], l, k)
		}
		seen[k] = i
	}
}

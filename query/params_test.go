package query

import (
	"encoding/base64"
	"errors"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/store/logs"
)

// paramNow is the time of every request in these tests; it is not on a
// whole second, so rounding shows.
var paramNow = time.Date(2024, 1, 15, 10, 30, 0, 500_000_000, time.UTC)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// wantParamErr fails unless err is a *ParamError naming param, with a
// message that names it too.
func wantParamErr(t *testing.T, err error, param string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one naming parameter %s", param)
	}
	var pe *ParamError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *ParamError", err, err)
	}
	if pe.Param != param {
		t.Errorf("error names parameter %q, want %q (%v)", pe.Param, param, err)
	}
	if pe.Problem == "" {
		t.Errorf("error naming %s has no problem text", param)
	}
	if !strings.HasPrefix(err.Error(), "parameter "+param+": ") {
		t.Errorf("error text %q does not start with %q", err.Error(), "parameter "+param+": ")
	}
}

func TestRoundedNow(t *testing.T) {
	tests := []struct {
		name string
		now  time.Time
		want time.Time
	}{
		{"mid-second rounds up", paramNow, time.Date(2024, 1, 15, 10, 30, 1, 0, time.UTC)},
		{"just after a second", time.Date(2024, 1, 15, 10, 30, 0, 1, time.UTC), time.Date(2024, 1, 15, 10, 30, 1, 0, time.UTC)},
		{"just before a second", time.Date(2024, 1, 15, 10, 30, 0, 999_999_999, time.UTC), time.Date(2024, 1, 15, 10, 30, 1, 0, time.UTC)},
		{"whole second still covers now", time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC), time.Date(2024, 1, 15, 10, 30, 1, 0, time.UTC)},
		{"other zone becomes UTC", paramNow.In(time.FixedZone("UTC-5", -5*3600)), time.Date(2024, 1, 15, 10, 30, 1, 0, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := roundedNow(tc.now)
			if !got.Equal(tc.want) || got.Location() != time.UTC {
				t.Errorf("roundedNow(%v) = %v, want %v UTC", tc.now, got, tc.want)
			}
			if got.Before(tc.now) {
				t.Errorf("roundedNow(%v) = %v is before now: the default window would miss the newest events", tc.now, got)
			}
		})
	}
}

func TestParseSearchDefaults(t *testing.T) {
	q, err := parseSearch(rawSearch{}, paramNow, DefaultLimits())
	if err != nil {
		t.Fatalf("parseSearch: %v", err)
	}
	end := roundedNow(paramNow)
	want := logs.Search{
		Start:      end.Add(-time.Hour),
		End:        end,
		Size:       20,
		Page:       0,
		Asc:        false,
		CountLimit: 10000,
	}
	if !reflect.DeepEqual(q, want) {
		t.Errorf("parseSearch(empty) = %+v, want %+v", q, want)
	}
	// A second of polling gives the same window, hence the same cache key.
	q2, err := parseSearch(rawSearch{}, paramNow.Add(400*time.Millisecond), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if !q2.Start.Equal(q.Start) || !q2.End.Equal(q.End) {
		t.Errorf("window moved within one second: %v..%v then %v..%v", q.Start, q.End, q2.Start, q2.End)
	}
}

func TestParseSearchPageAndSize(t *testing.T) {
	tests := []struct {
		page, size         string
		wantPage, wantSize int
	}{
		{"", "", 0, 20},
		{"0", "0", 0, 1},
		{"-1", "-5", 0, 1},
		{"3", "1", 3, 1},
		{" 2 ", " 50 ", 2, 50},
		{"", "1000", 0, 1000},
		{"", "1001", 0, 1000},
		{"", "5000", 0, 1000},
	}
	for _, tc := range tests {
		t.Run("page="+tc.page+",size="+tc.size, func(t *testing.T) {
			q, err := parseSearch(rawSearch{Page: tc.page, Size: tc.size}, paramNow, DefaultLimits())
			if err != nil {
				t.Fatalf("parseSearch: %v", err)
			}
			if q.Page != tc.wantPage || q.Size != tc.wantSize {
				t.Errorf("page %d size %d, want %d and %d", q.Page, q.Size, tc.wantPage, tc.wantSize)
			}
		})
	}
	// The clamp follows the configured limit.
	lim := DefaultLimits()
	lim.MaxPageSize = 50
	q, err := parseSearch(rawSearch{Size: "5000"}, paramNow, lim)
	if err != nil || q.Size != 50 {
		t.Errorf("size 5000 under MaxPageSize 50 = %d, %v; want 50", q.Size, err)
	}
}

// The store pages with OFFSET page*size in an int64; a page it cannot
// multiply must be refused as a bad parameter, not reach PostgreSQL as a
// wrapped, possibly negative OFFSET (an error there counts against the
// database breaker).
func TestParseSearchPageOffsetFitsInt64(t *testing.T) {
	for _, tc := range []struct{ page, size string }{
		{"4611686018427387904", "3"},   // 2^62 * 3 wraps negative
		{"9223372036854775807", "20"},  // MaxInt64 * 20 wraps to -20
		{"922337203685477581", "1000"}, // overflows
		{"461168601842738790", "21"},   // just past MaxInt64
	} {
		t.Run(tc.page+"x"+tc.size, func(t *testing.T) {
			q, err := parseSearch(rawSearch{Page: tc.page, Size: tc.size}, paramNow, DefaultLimits())
			if err != nil {
				wantParamErr(t, err, "page")
				return
			}
			offset := new(big.Int).Mul(big.NewInt(int64(q.Page)), big.NewInt(int64(q.Size)))
			if !offset.IsInt64() {
				t.Errorf("page %d size %d accepted: OFFSET %s overflows int64", q.Page, q.Size, offset)
			}
		})
	}
}

func TestParseSearchParamErrors(t *testing.T) {
	tooMany := strings.TrimSuffix(strings.Repeat("INFO,", 101), ",")
	tooManySources := make([]string, 101)
	for i := range tooManySources {
		tooManySources[i] = "svc-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
	}
	tests := []struct {
		name  string
		raw   rawSearch
		param string
	}{
		{"page not a number", rawSearch{Page: "abc"}, "page"},
		{"page a fraction", rawSearch{Page: "1.5"}, "page"},
		{"size not a number", rawSearch{Size: "ten"}, "size"},
		{"size with a unit", rawSearch{Size: "20px"}, "size"},
		{"startTime after endTime", rawSearch{StartTime: "2024-01-15T11:00:00Z", EndTime: "2024-01-15T10:00:00Z"}, "startTime"},
		{"startTime after the default end", rawSearch{StartTime: "2024-01-15T12:00:00Z"}, "startTime"},
		{"startTime not RFC 3339", rawSearch{StartTime: "yesterday"}, "startTime"},
		{"startTime without zone", rawSearch{StartTime: "2024-01-15T10:00:00"}, "startTime"},
		{"endTime a bare date", rawSearch{EndTime: "2024-01-15"}, "endTime"},
		{"endTime unix seconds", rawSearch{EndTime: "1705314600"}, "endTime"},
		{"unknown level", rawSearch{LogLevel: "LOUD"}, "logLevel"},
		{"unknown level in a list", rawSearch{LogLevel: "INFO,LOUD"}, "logLevel"},
		{"too many levels", rawSearch{LogLevel: tooMany}, "logLevel"},
		{"too many sources", rawSearch{Source: strings.Join(tooManySources, ",")}, "source"},
		{"keyword too long", rawSearch{Keyword: strings.Repeat("k", 1025)}, "keyword"},
		{"keyword with NUL", rawSearch{Keyword: "a\x00b"}, "keyword"},
		{"sort invalid", rawSearch{Sort: "up"}, "sort"},
		{"sort by a field", rawSearch{Sort: "timestamp"}, "sort"},
		{"garbage cursor", rawSearch{Cursor: "!!!not-a-cursor"}, "cursor"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSearch(tc.raw, paramNow, DefaultLimits())
			wantParamErr(t, err, tc.param)
		})
	}
}

func TestParseSearchWindow(t *testing.T) {
	end := roundedNow(paramNow)
	tests := []struct {
		name       string
		start, end string
		wantStart  time.Time
		wantEnd    time.Time
	}{
		{"both given, converted to UTC", "2024-01-15T11:00:00+02:00", "2024-01-15T10:00:00.123456789Z",
			time.Date(2024, 1, 15, 9, 0, 0, 0, time.UTC), time.Date(2024, 1, 15, 10, 0, 0, 123456789, time.UTC)},
		{"only end: an hour before it", "", "2024-01-14T08:00:00Z",
			time.Date(2024, 1, 14, 7, 0, 0, 0, time.UTC), time.Date(2024, 1, 14, 8, 0, 0, 0, time.UTC)},
		{"only start: until now", "2024-01-01T00:00:00Z", "",
			time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), end},
		{"start equal to end", "2024-01-15T10:00:00Z", "2024-01-15T10:00:00Z",
			time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC), time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)},
		{"surrounding spaces", " 2024-01-15T09:00:00Z ", " 2024-01-15T10:00:00Z",
			time.Date(2024, 1, 15, 9, 0, 0, 0, time.UTC), time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := parseSearch(rawSearch{StartTime: tc.start, EndTime: tc.end}, paramNow, DefaultLimits())
			if err != nil {
				t.Fatalf("parseSearch: %v", err)
			}
			if !q.Start.Equal(tc.wantStart) || !q.End.Equal(tc.wantEnd) {
				t.Errorf("window %v..%v, want %v..%v", q.Start, q.End, tc.wantStart, tc.wantEnd)
			}
			if q.Start.Location() != time.UTC || q.End.Location() != time.UTC {
				t.Errorf("window %v..%v not in UTC", q.Start, q.End)
			}
		})
	}
}

func TestWindowDefaultLength(t *testing.T) {
	for _, def := range []time.Duration{time.Hour, 24 * time.Hour, time.Minute} {
		start, end, err := window("", "", paramNow, def)
		if err != nil {
			t.Fatalf("window: %v", err)
		}
		if !end.Equal(roundedNow(paramNow)) || end.Sub(start) != def {
			t.Errorf("default window of %v = %v..%v", def, start, end)
		}
	}
}

func TestParseSearchLevels(t *testing.T) {
	tests := []struct {
		in   string
		want []logs.Level
	}{
		{"", nil},
		{" , ,", nil},
		{"error", []logs.Level{logs.LevelError}},
		{"error,ERROR,Error", []logs.Level{logs.LevelError}},
		{"warning,WARN, warn ", []logs.Level{logs.LevelWarn}},
		{"info,warn", []logs.Level{logs.LevelInfo, logs.LevelWarn}},
		{"trace,debug,info,warn,error,fatal,FATAL", logs.AllLevels()[:]},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			q, err := parseSearch(rawSearch{LogLevel: tc.in}, paramNow, DefaultLimits())
			if err != nil {
				t.Fatalf("parseSearch: %v", err)
			}
			got := slices.Clone(q.Levels)
			want := slices.Clone(tc.want)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) || len(q.Levels) != len(tc.want) {
				t.Errorf("levels of %q = %v, want the set %v without duplicates", tc.in, q.Levels, tc.want)
			}
		})
	}
	// The same set in any order and case gives the same filter, so the
	// same cache key.
	a, errA := parseSearch(rawSearch{LogLevel: "WARN,error,Info"}, paramNow, DefaultLimits())
	b, errB := parseSearch(rawSearch{LogLevel: "info,ERROR,warning,warn"}, paramNow, DefaultLimits())
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if !slices.Equal(a.Levels, b.Levels) {
		t.Errorf("levels %v and %v differ for the same set", a.Levels, b.Levels)
	}
}

func TestParseSearchSources(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ", nil},
		{"api", []string{"api"}},
		{"b, a,b,,c", []string{"a", "b", "c"}},
		{"web,api,web", []string{"api", "web"}},
		{"Api,api", []string{"Api", "api"}}, // sources are case-sensitive
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			q, err := parseSearch(rawSearch{Source: tc.in}, paramNow, DefaultLimits())
			if err != nil {
				t.Fatalf("parseSearch: %v", err)
			}
			if len(q.Sources) != len(tc.want) || (len(tc.want) > 0 && !slices.Equal(q.Sources, tc.want)) {
				t.Errorf("sources of %q = %q, want %q", tc.in, q.Sources, tc.want)
			}
		})
	}
}

func TestParseSearchSort(t *testing.T) {
	tests := []struct {
		in      string
		wantAsc bool
	}{
		{"", false},
		{"desc", false},
		{"DESC", false},
		{"asc", true},
		{" Asc ", true},
	}
	for _, tc := range tests {
		q, err := parseSearch(rawSearch{Sort: tc.in}, paramNow, DefaultLimits())
		if err != nil {
			t.Errorf("sort %q: %v", tc.in, err)
			continue
		}
		if q.Asc != tc.wantAsc {
			t.Errorf("sort %q: asc = %v, want %v", tc.in, q.Asc, tc.wantAsc)
		}
	}
}

func TestParseSearchKeywordAndTrace(t *testing.T) {
	q, err := parseSearch(rawSearch{Keyword: " 50% off_sale ", TraceID: " abc123 "}, paramNow, DefaultLimits())
	if err != nil {
		t.Fatalf("parseSearch: %v", err)
	}
	if q.Keyword != " 50% off_sale " {
		t.Errorf("keyword %q, want it verbatim", q.Keyword)
	}
	if q.TraceID != "abc123" {
		t.Errorf("traceId %q, want it trimmed", q.TraceID)
	}
	if _, err := parseSearch(rawSearch{Keyword: strings.Repeat("k", 1024)}, paramNow, DefaultLimits()); err != nil {
		t.Errorf("keyword of exactly MaxKeyword bytes: %v", err)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	ids := []uuid.UUID{
		uuid.MustParse("3f0c8b1e-4a2d-4c6e-9b7a-1d2e3f405162"),
		uuid.MustParse("018d0a4e-7b2c-7def-8123-456789abcdef"),
		uuid.MustParse("ffffffff-ffff-ffff-ffff-ffffffffffff"),
	}
	times := []time.Time{
		time.Date(2024, 1, 15, 10, 30, 0, 123456000, time.UTC),
		time.Date(2024, 1, 15, 10, 30, 0, 0, time.FixedZone("UTC+9", 9*3600)),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
	}
	for _, id := range ids {
		for _, ts := range times {
			c := logs.Cursor{TS: ts, ID: id}
			s := encodeCursor(c)
			if strings.ContainsAny(s, "+/=") {
				t.Errorf("cursor %q is not URL-safe", s)
			}
			got, err := decodeCursor(s)
			if err != nil {
				t.Fatalf("decodeCursor(encodeCursor(%v)): %v", c, err)
			}
			if !got.TS.Equal(ts) || got.ID != id || got.TS.Location() != time.UTC {
				t.Errorf("cursor round trip %v -> %q -> %v", c, s, got)
			}
		}
	}
}

func TestCursorKeepsMicroseconds(t *testing.T) {
	// Stored timestamps have microseconds; a cursor keeps exactly those.
	ts := time.Date(2024, 1, 15, 10, 30, 0, 123456789, time.UTC)
	got, err := decodeCursor(encodeCursor(logs.Cursor{TS: ts, ID: uuid.New()}))
	if err != nil {
		t.Fatal(err)
	}
	if want := ts.Truncate(time.Microsecond); !got.TS.Equal(want) {
		t.Errorf("cursor time %v, want %v", got.TS, want)
	}
}

func TestDecodeCursorRejectsGarbage(t *testing.T) {
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	const id = "3f0c8b1e-4a2d-4c6e-9b7a-1d2e3f405162"
	tests := map[string]string{
		"not base64":        "!!!",
		"no separator":      b64("1705314600000000"),
		"time not a number": b64("abc." + id),
		"empty time":        b64("." + id),
		"id not a UUID":     b64("1705314600000000.not-a-uuid"),
		"empty id":          b64("1705314600000000."),
		"padded std base64": base64.StdEncoding.EncodeToString([]byte("1705314600000000." + id + "xx")),
		"time overflows":    b64("99999999999999999999." + id),
		"whitespace":        "   ",
	}
	for name, s := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := decodeCursor(s)
			wantParamErr(t, err, "cursor")
			if got != (logs.Cursor{}) {
				t.Errorf("decodeCursor(%q) returned %v alongside an error", s, got)
			}
		})
	}
}

func TestParseSearchCursor(t *testing.T) {
	c := logs.Cursor{TS: time.Date(2024, 1, 15, 10, 0, 0, 42000, time.UTC), ID: uuid.MustParse("018d0a4e-7b2c-7def-8123-456789abcdef")}
	q, err := parseSearch(rawSearch{Cursor: encodeCursor(c), Page: "3", Size: "50", Sort: "asc"}, paramNow, DefaultLimits())
	if err != nil {
		t.Fatalf("parseSearch: %v", err)
	}
	if q.After == nil || !q.After.TS.Equal(c.TS) || q.After.ID != c.ID {
		t.Fatalf("After = %v, want %v", q.After, c)
	}
	if q.Page != 0 {
		t.Errorf("page %d with a cursor, want 0", q.Page)
	}
	if q.Size != 50 || !q.Asc {
		t.Errorf("size %d asc %v, want the request's 50 and asc", q.Size, q.Asc)
	}
	// No cursor, no keyset.
	q, err = parseSearch(rawSearch{Page: "3"}, paramNow, DefaultLimits())
	if err != nil || q.After != nil || q.Page != 3 {
		t.Errorf("without a cursor: After %v page %d err %v", q.After, q.Page, err)
	}
}

func TestParseStatsDefaults(t *testing.T) {
	q, err := parseStats("", "", "", "", "", paramNow, DefaultLimits())
	if err != nil {
		t.Fatalf("parseStats: %v", err)
	}
	end := roundedNow(paramNow)
	want := logs.Stats{Start: end.Add(-24 * time.Hour), End: end, Top: 10}
	if !reflect.DeepEqual(q, want) {
		t.Errorf("parseStats(empty) = %+v, want %+v", q, want)
	}
}

func TestParseStatsFilters(t *testing.T) {
	q, err := parseStats("2024-01-14T00:00:00Z", "2024-01-15T00:00:00+01:00", "error,warning", "web, api,web", "25", paramNow, DefaultLimits())
	if err != nil {
		t.Fatalf("parseStats: %v", err)
	}
	if !q.Start.Equal(mustTime(t, "2024-01-14T00:00:00Z")) || !q.End.Equal(mustTime(t, "2024-01-14T23:00:00Z")) {
		t.Errorf("window %v..%v", q.Start, q.End)
	}
	levels := slices.Clone(q.Levels)
	slices.Sort(levels)
	if want := []logs.Level{logs.LevelWarn, logs.LevelError}; !slices.Equal(levels, want) {
		t.Errorf("levels %v, want %v", q.Levels, want)
	}
	if !slices.Equal(q.Sources, []string{"api", "web"}) {
		t.Errorf("sources %q, want [api web]", q.Sources)
	}
	if q.Top != 25 {
		t.Errorf("top %d, want 25", q.Top)
	}
}

func TestParseStatsTop(t *testing.T) {
	for _, tc := range []struct {
		top  string
		want int
	}{{"1", 1}, {"1000", 1000}, {" 7 ", 7}} {
		q, err := parseStats("", "", "", "", tc.top, paramNow, DefaultLimits())
		if err != nil || q.Top != tc.want {
			t.Errorf("top %q = %d, %v; want %d", tc.top, q.Top, err, tc.want)
		}
	}
	for _, top := range []string{"0", "-1", "1001", "99999999999", "abc", "1.5"} {
		t.Run(top, func(t *testing.T) {
			_, err := parseStats("", "", "", "", top, paramNow, DefaultLimits())
			wantParamErr(t, err, "top")
		})
	}
}

func TestParseStatsParamErrors(t *testing.T) {
	tests := []struct {
		name                        string
		start, end, levels, sources string
		param                       string
	}{
		{"startTime after endTime", "2024-01-15T11:00:00Z", "2024-01-15T10:00:00Z", "", "", "startTime"},
		{"bad startTime", "last week", "", "", "", "startTime"},
		{"bad endTime", "", "now", "", "", "endTime"},
		{"unknown level", "", "", "INFO,LOUD", "", "logLevel"},
		{"too many sources", "", "", "", strings.Repeat("s,", 50) + strings.Repeat("t,", 50) + "u,v", "source"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseStats(tc.start, tc.end, tc.levels, tc.sources, "", paramNow, DefaultLimits())
			wantParamErr(t, err, tc.param)
		})
	}
}

func TestParamErrorText(t *testing.T) {
	err := paramErr("size", "must be a whole number, not %q", "ten")
	if got, want := err.Error(), `parameter size: must be a whole number, not "ten"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

package query

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/logengine/logengine/store/logs"
)

// The fuzz targets below run their seed corpus in every plain go test,
// and explore further with go test -fuzz.

func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(logs.Cursor{TS: paramNow, ID: uuid.MustParse("018d0a4e-7b2c-7def-8123-456789abcdef")}))
	f.Add("")
	f.Add("!!!")
	f.Add("MTcwNTMxNDYwMDAwMDAwMC4")
	f.Add("LTEuMDE4ZDBhNGUtN2IyYy03ZGVmLTgxMjMtNDU2Nzg5YWJjZGVm")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeCursor(s)
		if err != nil {
			wantParamErr(t, err, "cursor")
			return
		}
		// What decodes re-encodes to the same position.
		again, err := decodeCursor(encodeCursor(c))
		if err != nil || !again.TS.Equal(c.TS) || again.ID != c.ID {
			t.Fatalf("cursor %q decodes to %v, which does not survive a round trip: %v %v", s, c, again, err)
		}
	})
}

// checkSearch holds for every search the parser accepts.
func checkSearch(t *testing.T, q logs.Search, lim Limits) {
	t.Helper()
	if q.Size < 1 || q.Size > lim.MaxPageSize || q.Page < 0 || q.Page > lim.MaxOffset/q.Size {
		t.Fatalf("accepted page %d size %d outside the limits", q.Page, q.Size)
	}
	if q.Start.After(q.End) {
		t.Fatalf("accepted a window that ends before it starts: %v > %v", q.Start, q.End)
	}
	texts := append([]string{q.Keyword, q.TraceID}, q.Sources...)
	for _, m := range q.Meta {
		texts = append(texts, m.Key, m.Value)
	}
	for _, s := range texts {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			t.Fatalf("accepted text %q that PostgreSQL cannot compare", s)
		}
	}
}

// FuzzParseSearchQuery parses the GET form: a raw query string.
func FuzzParseSearchQuery(f *testing.F) {
	for _, s := range []string{
		"", "size=1000&page=3", "startTime=2024-01-01T00:00:00Z&endTime=2024-01-02T00:00:00Z&logLevel=error,warn",
		"source=a,b&source=c&keyword=50%25+off&traceId=abc", "meta.userId=42&meta.=x", "cursor=xyz&sort=asc",
		"source=a%00b", "keyword=%ff", "page=-1&size=-1", "page=99999999999999999999", "sort=sideways",
	} {
		f.Add(s)
	}
	lim := DefaultLimits()
	f.Fuzz(func(t *testing.T, rawQuery string) {
		p, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		q, err := parseSearch(searchParams(p), paramNow, lim)
		if err != nil {
			return
		}
		checkSearch(t, q, lim)
	})
}

// FuzzParseSearchBody parses the POST form: a JSON body.
func FuzzParseSearchBody(f *testing.F) {
	for _, s := range []string{
		`{"startTime":"2024-01-01T00:00:00Z","endTime":"2024-01-02T00:00:00Z"}`,
		`{"startTime":"2024-01-01T00:00:00Z","endTime":"2024-01-02T00:00:00Z","logLevel":["ERROR","WARN"],"size":50,"page":"2"}`,
		`{"startTime":"2024-01-01T00:00:00Z","endTime":"2024-01-02T00:00:00Z","source":"a\u0000b","meta":{"k":"v"}}`,
		`{"startTime":1,"endTime":[],"meta":{"":""}}`, `[]`, `{`, `null`,
	} {
		f.Add([]byte(s))
	}
	lim := DefaultLimits()
	f.Fuzz(func(t *testing.T, body []byte) {
		raw, err := decodeQueryBody(body)
		if err != nil {
			return
		}
		q, err := parseSearch(raw, paramNow, lim)
		if err != nil {
			return
		}
		checkSearch(t, q, lim)
	})
}

func FuzzParseHistogram(f *testing.F) {
	f.Add("0000-01-01T00:00:00Z", "9999-12-31T00:00:00Z", "", "")
	f.Add("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", "1m", "svc")
	f.Add("", "", "7d", "")
	f.Add("1969-12-31T23:59:59Z", "1970-01-01T00:00:01+01:00", "1s", "a,b")
	f.Add("", "", "9999999999999d", "")
	f.Add("", "", "-1h", "")
	lim := DefaultLimits()
	f.Fuzz(func(t *testing.T, start, end, interval, sources string) {
		q, err := parseHistogram(start, end, "", sources, interval, paramNow, lim)
		if err != nil {
			return
		}
		if q.Interval < 1e9 || q.Interval%1e9 != 0 {
			t.Fatalf("accepted interval %v", q.Interval)
		}
		if n := bucketCount(q.Start, q.End, q.Interval); n < 1 || n > int64(lim.MaxBuckets) {
			t.Fatalf("%s over [%v, %v] makes %d buckets, limit %d", q.Interval, q.Start, q.End, n, lim.MaxBuckets)
		}
	})
}

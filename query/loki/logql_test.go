package loki

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseSupported(t *testing.T) {
	for _, q := range []string{
		`{source="api"}`,
		`{}`,
		`{source="api", level=~"error|warn", region!="us", host!~"db-.*"}`,
		`{source="api"} |= "timeout" != "retry" |~ "user=\\d+" !~ "(?i)debug"`,
		"{source=`api`} |= `a\\b`",
		`{source="api"} | json | status >= 500 | path=~"/api/.*"`,
		`{source="api"} | logfmt | duration > 1.5 | user != "bob"`,
		`{source="api"} | json | __error__=""`,
		`{source="api"} | json | drop __error__, __error_details__`,
		`count_over_time({source="api"}[5m])`,
		`count_over_time({source="api"} |= "x" [1m])`,
		`rate({level="error"}[30s])`,
		`bytes_over_time({source="api"}[1h])`,
		`sum by (level) (count_over_time({source="api"}[1m]))`,
		`sum(count_over_time({source="api"}[1m])) by (level)`,
		`sum by (level, detected_level) (count_over_time({source="api"} | drop __error__[1m]))`,
		`sum without (host) (rate({source="api"}[5m]))`,
		`topk(5, sum by (source) (rate({level="error"}[5m])))`,
		`vector(1)+vector(1)`,
		`sum(rate({source="api"}[1m])) * 60`,
		`1 + 2 * 3`,
		`{source="api"} # a comment`,
		`{source="api"} | logfmt | count > 5 | offset="x" | min=~"a.*" | on != "y"`,
	} {
		if _, err := Parse(q); err != nil {
			t.Errorf("Parse(%s): %v", q, err)
		}
	}
}

func TestParseShapes(t *testing.T) {
	e, err := Parse(`sum by (level) (count_over_time({source="api", level!="debug"} |= "x" | json [2m]))`)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := e.(*VectorAgg)
	if !ok || a.Op != "sum" || !reflect.DeepEqual(a.Labels, []string{"level"}) || a.Without {
		t.Fatalf("got %#v", e)
	}
	r, ok := a.Inner.(*RangeAgg)
	if !ok || r.Func != "count_over_time" || r.Range != 2*time.Minute {
		t.Fatalf("inner %#v", a.Inner)
	}
	if len(r.Log.Selector) != 2 || r.Log.Selector[1].Op != OpNeq || len(r.Log.Pipeline) != 2 || r.Log.Pipeline[1].Parser != "json" {
		t.Fatalf("log %#v", r.Log)
	}
	b, err := Parse(`vector(1)+vector(1)*2`)
	if err != nil {
		t.Fatal(err)
	}
	if bin, ok := b.(*Binary); !ok || bin.Op != "+" {
		t.Fatalf("precedence: %#v", b)
	} else if _, ok := bin.Right.(*Binary); !ok {
		t.Fatalf("* binds tighter than +: %#v", bin.Right)
	}
}

// TestParseUnsupported: everything outside the subset is refused with a
// message naming the part, never parsed into something else.
func TestParseUnsupported(t *testing.T) {
	for q, want := range map[string]string{
		`{source="api"} | line_format "{{.msg}}"`:                     "line_format",
		`{source="api"} | label_format x="y"`:                         "label_format",
		`{source="api"} | regexp "(?P<x>.*)"`:                         "regexp",
		`{source="api"} | pattern "<ip> <_>"`:                         "pattern",
		`{source="api"} | unpack`:                                     "unpack",
		`{source="api"} | json a="b.c"`:                               "parameters of the json parser",
		`{source="api"} | logfmt --strict`:                            "parameters of the logfmt parser",
		`{source="api"} | decolorize`:                                 "decolorize",
		`{source="api"} | keep a`:                                     "keep",
		`{source="api"} |= "a" or "b"`:                                "or",
		`{source="api"} | a="1", b="2"`:                               "combined label filters",
		`{source="api"} | a="1" and b="2"`:                            "combined label filters",
		`{source="api"} | latency > 5s`:                               "duration comparisons",
		`{source="api"} |= ip("10.0.0.1")`:                            "ip()",
		`avg_over_time({source="api"} | json | unwrap d [5m])`:        "avg_over_time",
		`sum_over_time({source="api"}[5m])`:                           "sum_over_time",
		`quantile_over_time(0.9, {source="api"}[5m])`:                 "quantile_over_time",
		`count_over_time({source="api"}[5m] offset 1h)`:               "offset",
		`avg(rate({source="api"}[5m]))`:                               "avg",
		`max by (level) (rate({source="api"}[5m]))`:                   "max",
		`bottomk(3, rate({source="api"}[5m]))`:                        "bottomk",
		`sort(rate({source="api"}[5m]))`:                              "sort",
		`sum(rate({source="api"}[5m])) > 1`:                           "comparison operators",
		`rate({source="api"}[5m]) / on(level) rate({source="b"}[5m])`: "on()",
		`label_replace(rate({a="b"}[1m]), "x", "$1", "a", "(.*)")`:    "label_replace",
		`count_over_time({source="api"}[5m]) by (level)`:              "wrap it in sum by",
		`sum(rate({source="api"}[5m])) % 2`:                           `operator '%'`,
		`{source="api"`:                                               `expected "," or "}"`,
		`{source=~"(unclosed"}`:                                       "invalid regular expression",
		`{source="api"} |~ "(unclosed"`:                               "invalid regular expression",
		`{source="api"}[5m]`:                                          "parse error",
		`rate({source="api"})`:                                        "a range such as [5m]",
		`sum(count_over_time({source="api"}[5m]) ) by (a) by (b)`:     "parse error",
		`topk(0, rate({source="api"}[5m]))`:                           "at least 1",
		`sum({source="api"})`:                                         "not a log query",
		`{source="api"} + 1`:                                          "log query cannot be an operand",
		``:                                                            "expected a stream selector",
		`{"source"="api"}`:                                            "a label name",
		`{source="a\q"}`:                                              "invalid string",
	} {
		_, err := Parse(q)
		var u *UnsupportedError
		if !errors.As(err, &u) {
			t.Errorf("Parse(%s) = %v, want an UnsupportedError", q, err)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%s) = %q, want it to name %q", q, err, want)
		}
	}
}

func TestPipeline(t *testing.T) {
	stream := Labels{{"level", "info"}, {"source", "api"}}
	cases := []struct {
		query, line string
		keep        bool
		want        map[string]string
	}{
		{`{a="b"} |= "time" != "retry"`, "timeout after 3s", true, map[string]string{"level": "info", "source": "api"}},
		{`{a="b"} |= "Time"`, "timeout", false, nil}, // |= is case-sensitive
		{`{a="b"} |~ "user=\\d+"`, "login user=42", true, nil},
		{`{a="b"} !~ "user=\\d+"`, "login user=42", false, nil},
		{`{a="b"} | json`, `{"status":503,"req":{"path":"/x","ok":true},"source":"gw","tags":["a"]}`, true,
			map[string]string{"level": "info", "source": "api", "status": "503", "req_path": "/x", "req_ok": "true", "source_extracted": "gw"}},
		{`{a="b"} | json | status >= 500`, `{"status":503}`, true, nil},
		{`{a="b"} | json | status >= 500`, `{"status":404}`, false, nil},
		{`{a="b"} | json`, `not json`, true, map[string]string{"level": "info", "source": "api", "__error__": "JSONParserErr"}},
		{`{a="b"} | json | __error__=""`, `not json`, false, nil},
		{`{a="b"} | json | drop __error__`, `not json`, true, map[string]string{"level": "info", "source": "api"}},
		{`{a="b"} | logfmt`, `msg="hello world" dur=1.5 ok`, true,
			map[string]string{"level": "info", "source": "api", "msg": "hello world", "dur": "1.5", "ok": ""}},
		{`{a="b"} | logfmt | dur > 1`, `dur=1.5`, true, nil},
		{`{a="b"} | logfmt | dur < 1`, `dur=1.5`, false, nil},
		{`{a="b"} | logfmt | dur == 1.5`, `dur=1.5`, true, nil},
		{`{a="b"} | logfmt | user=~"b.*"`, `user=bob`, true, nil},
		{`{a="b"} | logfmt | user!="bob"`, `user=bob`, false, nil},
		{`{a="b"} | level="info"`, `x`, true, nil},
	}
	for _, c := range cases {
		l, err := ParseLog(c.query)
		if err != nil {
			t.Fatalf("%s: %v", c.query, err)
		}
		got, ok := process(l.Pipeline, c.line, stream)
		if ok != c.keep {
			t.Errorf("%s on %q: kept %v, want %v", c.query, c.line, ok, c.keep)
			continue
		}
		if c.want != nil && !reflect.DeepEqual(got.Map(), c.want) {
			t.Errorf("%s on %q: labels %v, want %v", c.query, c.line, got.Map(), c.want)
		}
	}
	if !reflect.DeepEqual(stream, Labels{{"level", "info"}, {"source", "api"}}) {
		t.Errorf("the pipeline changed the stream's labels: %v", stream)
	}
}

func TestParseDuration(t *testing.T) {
	for s, want := range map[string]time.Duration{"5m": 5 * time.Minute, "1h30m": 90 * time.Minute, "2d": 48 * time.Hour, "1w": 7 * 24 * time.Hour, "250ms": 250 * time.Millisecond} {
		if got, err := parseDuration(s); err != nil || got != want {
			t.Errorf("parseDuration(%s) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "5", "m", "5x", "1.5m"} {
		if _, err := parseDuration(s); err == nil {
			t.Errorf("parseDuration(%q) accepted", s)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`{a="b"} |= "x" | json | y > 2`, `sum by (level) (count_over_time({a=~"b"}[5m]))`, `vector(1)+vector(1)`, `topk(3, rate({a="b"}[1m]))`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err == nil && e == nil {
			t.Fatal("no error and no expression")
		}
		var u *UnsupportedError
		if err != nil && !errors.As(err, &u) {
			t.Fatalf("a parse error that is not an UnsupportedError: %v", err)
		}
	})
}

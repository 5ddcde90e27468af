package loki

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/logengine/logengine/store/logs"
)

func TestParseTimeAndStep(t *testing.T) {
	want := time.Date(2026, 11, 30, 12, 0, 0, 500_000_000, time.UTC)
	for _, s := range []string{"1796040000500000000", "1796040000.5", "2026-11-30T12:00:00.5Z", "2026-11-30T13:00:00.5+01:00"} {
		got, err := parseTime("start", s, time.Time{})
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%s) = %v, %v; want %v", s, got, err, want)
		}
	}
	if got, err := parseTime("start", "1796040000", time.Time{}); err != nil || !got.Equal(want.Truncate(time.Second)) {
		t.Errorf("ten digits are seconds: %v %v", got, err)
	}
	for _, s := range []string{"yesterday", "12:00", "1.2.3"} {
		if _, err := parseTime("start", s, time.Time{}); err == nil {
			t.Errorf("parseTime(%q) accepted", s)
		}
	}
	for s, d := range map[string]time.Duration{"15000ms": 15 * time.Second, "1m": time.Minute, "15": 15 * time.Second, "0.5": 500 * time.Millisecond, "1m30s": 90 * time.Second} {
		if got, err := parseStep(s); err != nil || got != d {
			t.Errorf("parseStep(%s) = %v, %v; want %v", s, got, err, d)
		}
	}
	for _, s := range []string{"", "-1", "fast"} {
		if _, err := parseStep(s); err == nil {
			t.Errorf("parseStep(%q) accepted", s)
		}
	}
	start := time.Unix(0, 0)
	if got := defaultStep(start, start.Add(time.Hour)); got != 14*time.Second {
		t.Errorf("defaultStep(1h) = %v, want 14s (Loki's range/250, whole seconds)", got)
	}
	if got := defaultStep(start, start.Add(time.Minute)); got != time.Second {
		t.Errorf("defaultStep(1m) = %v, want 1s", got)
	}
}

func TestStreamLabels(t *testing.T) {
	e := eventWith(`{"region":"eu","status":503,"ok":true,"nested":{"a":1},"list":[1],"user.id":"x","level":"shadow","__x":"y","n":null}`)
	got := StreamLabels(&e).Map()
	want := map[string]string{"level": "error", "source": "api", "region": "eu", "status": "503", "ok": "true"}
	if len(got) != len(want) {
		t.Fatalf("labels %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("label %s = %q, want %q", k, got[k], v)
		}
	}
}

func eventWith(meta string) logs.Event {
	return logs.Event{Level: logs.LevelError, Source: "api", Message: "m", Metadata: json.RawMessage(meta)}
}

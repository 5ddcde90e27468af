package loadtest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/store/logs"
)

func TestGeneratedLogsAreValidAndRealistic(t *testing.T) {
	const n = 10000
	now := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	gen := newGenerator(7, "00112233aabbccdd", 0)
	levels := map[logs.Level]int{}
	srcs := map[string]int{}
	ids := map[string]bool{}
	traces := map[string]int{}
	for i := range n {
		withID := i%2 == 0
		raw, ref := gen.appendEvent(nil, now, i%100 == 0, withID)
		ev, err := event.Parse(raw, event.Defaults{Now: now}, event.DefaultLimits())
		if err != nil {
			t.Fatalf("generated log %s is invalid: %v", raw, err)
		}
		if ev.ClientID != withID || (withID && ev.ID != ref.id) || ev.TraceID != ref.trace || !ev.Timestamp.Equal(now) {
			t.Fatalf("parsed %+v, ref %+v", ev, ref)
		}
		if !strings.HasPrefix(ev.Message, "[run 00112233aabbccdd] ") {
			t.Fatalf("message %q lacks the run prefix", ev.Message)
		}
		var md map[string]any
		if err := json.Unmarshal(ev.Metadata, &md); err != nil || md["run"] != "00112233aabbccdd" ||
			md["userId"] == nil || md["region"] == nil || md["durationMs"] == nil {
			t.Fatalf("metadata %s", ev.Metadata)
		}
		if ids[ev.ID.String()] {
			t.Fatalf("id %s twice", ev.ID)
		}
		ids[ev.ID.String()] = true
		levels[ev.Level]++
		srcs[ev.Source]++
		traces[ev.TraceID]++
		if i%100 == 0 && traces[ev.TraceID] != 1 {
			t.Fatalf("a probe's trace id %s is shared", ev.TraceID)
		}
	}
	for level, want := range map[logs.Level]float64{logs.LevelInfo: .70, logs.LevelWarn: .15, logs.LevelError: .08, logs.LevelDebug: .06, logs.LevelFatal: .01} {
		if got := float64(levels[level]) / n; got < want*0.8 || got > want*1.2 {
			t.Errorf("%s is %.3f of the logs, want about %.2f", level, got, want)
		}
	}
	if len(srcs) < 40 || len(srcs) > 50 {
		t.Errorf("%d sources, want about 50", len(srcs))
	}
	if srcs["auth-service"] <= srcs["svc-44"] {
		t.Errorf("sources are not skewed: auth-service %d, svc-44 %d", srcs["auth-service"], srcs["svc-44"])
	}
	if len(traces) >= n || len(traces) < n/5 {
		t.Errorf("%d trace ids for %d logs, want a few logs per trace", len(traces), n)
	}
}

func TestGeneratedLogsAreReproducible(t *testing.T) {
	now := time.Now()
	batch := func(seed int64, run string) []byte {
		gen := newGenerator(seed, run, 3)
		var buf []byte
		for range 50 {
			buf, _ = gen.appendEvent(buf, now, false, true)
		}
		return buf
	}
	if !bytes.Equal(batch(1, "00000000000000aa"), batch(1, "00000000000000aa")) {
		t.Error("one seed and run gave two different batches")
	}
	if bytes.Equal(batch(1, "00000000000000aa"), batch(2, "00000000000000aa")) {
		t.Error("two seeds gave the same batch")
	}
	if newRunID(1, now) == newRunID(1, now.Add(time.Nanosecond)) || len(newRunID(1, now)) != 16 {
		t.Error("run ids do not differ between runs")
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"plain", `quote " and \ backslash`, "tab\tnewline\n\x01", "héllo ✓"} {
		var back string
		if err := json.Unmarshal(appendJSONString(nil, s), &back); err != nil || back != s {
			t.Errorf("%q → %s → %q, %v", s, appendJSONString(nil, s), back, err)
		}
	}
}

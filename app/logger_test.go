package app_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/app"
	"github.com/logengine/logengine/configs"
)

// logDurations logs durations every way a caller can attach them: a
// plain attribute, a key already in milliseconds, a group, a logger's
// With, and slog.Any.
func logDurations(format string) string {
	var buf bytes.Buffer
	logger := app.NewLogger(configs.Log{Level: "info", Format: format}, &buf)
	logger.With("setup", time.Minute).Info("done",
		"duration", 1500*time.Microsecond,
		"wait_ms", 2*time.Second,
		slog.Group("flush", "took", 250*time.Millisecond),
		slog.Any("backoff", 100*time.Nanosecond),
		"count", 3)
	return buf.String()
}

func TestLoggerWritesDurationsInMilliseconds(t *testing.T) {
	t.Parallel()
	t.Run("json", func(t *testing.T) {
		t.Parallel()
		line := logDurations("json")
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		flush, _ := got["flush"].(map[string]any)
		for key, want := range map[string]any{
			"setup_ms": 60000.0, "duration_ms": 1.5, "wait_ms": 2000.0, "backoff_ms": 0.0, "count": 3.0,
		} {
			if got[key] != want {
				t.Errorf("%s = %v, want %v in %s", key, got[key], want, line)
			}
		}
		if flush["took_ms"] != 250.0 {
			t.Errorf("flush.took_ms = %v, want 250 in %s", flush["took_ms"], line)
		}
		for _, key := range []string{"setup", "duration", "wait_ms_ms", "backoff"} {
			if _, ok := got[key]; ok {
				t.Errorf("key %s is still there in %s", key, line)
			}
		}
	})
	t.Run("text", func(t *testing.T) {
		t.Parallel()
		line := logDurations("text")
		fields := strings.Fields(line)
		for _, want := range []string{"setup_ms=60000", "duration_ms=1.5", "wait_ms=2000", "flush.took_ms=250", "backoff_ms=0", "count=3"} {
			found := false
			for _, f := range fields {
				found = found || f == want
			}
			if !found {
				t.Errorf("no %s in %s", want, line)
			}
		}
	})
}

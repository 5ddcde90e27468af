package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/app"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/store"
	"github.com/logengine/logengine/store/logs"
	"github.com/logengine/logengine/store/storetest"
)

// export writes the selected logs as JSON lines, oldest first, in the
// search API's fields.
func TestExport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := configs.Default()
	cfg.Postgres.URL = storetest.NewURL(t)
	cfg.Audit.Log = configs.AuditOff // TestAuditExport checks the record
	s, err := store.Open(ctx, cfg.Postgres, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	var events []logs.Event
	for i := range 30 {
		e := logs.Event{ID: uuid.New(), Timestamp: base.Add(time.Duration(29-i) * time.Minute), Level: logs.LevelInfo,
			Source: "api", Message: "served request"}
		if i%10 == 0 {
			e.Level, e.Source, e.Message = logs.LevelError, "db", "Timeout <talking> to the primary"
			e.Metadata = json.RawMessage(`{"shard":3}`)
		}
		events = append(events, e)
	}
	if _, err := s.WriteBatch(ctx, events); err != nil {
		t.Fatal(err)
	}
	s.Close()

	var out bytes.Buffer
	opts := app.ExportOptions{Start: base.Format(time.RFC3339), End: base.Add(time.Hour).Format(time.RFC3339),
		Levels: []string{"error"}, Keyword: "timeout", Meta: []string{"shard=3"}}
	if err := app.Export(ctx, cfg, opts, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("exported %d lines, want 3:\n%s", len(lines), out.String())
	}
	var prev time.Time
	for _, l := range lines {
		var got struct {
			ID, Timestamp, LogLevel, Source, Message string
			Metadata                                 json.RawMessage
		}
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		ts, _ := time.Parse(time.RFC3339Nano, got.Timestamp)
		if got.LogLevel != "ERROR" || got.Source != "db" || string(got.Metadata) != `{"shard":3}` || ts.Before(prev) {
			t.Errorf("line %q", l)
		}
		prev = ts
	}
	if !strings.Contains(lines[0], "<talking>") {
		t.Errorf("HTML-escaped: %s", lines[0])
	}
	if err := app.Export(ctx, cfg, app.ExportOptions{Levels: []string{"loud"}}, &out); err == nil || !strings.Contains(err.Error(), "--level") {
		t.Errorf("a bad level: %v", err)
	}
}

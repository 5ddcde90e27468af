package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Newline-delimited native events: each line is checked as one event of
// POST /api/v1/logs; a bad line goes to the DLQ and is named by index.
func TestJSONLines(t *testing.T) {
	p := startPipeline(t, nil)
	source := "ndjson-" + uuid.NewString()[:8]
	ts := time.Now().Add(-time.Minute).UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
	body := `{"level":"info","source":"` + source + `","message":"one","timestamp":"` + ts + `","metadata":{"k":"v"},"traceId":"t-1"}` + "\r\n" +
		"\n" +
		`{"level":"LOUD","source":"` + source + `","message":"bad level"}` + "\n" +
		`{"level":"ERROR","source":"` + source + `","message":"two"}`
	r := do(t, http.MethodPost, p.producer+"/api/v1/logs/jsonl", "application/x-ndjson", []byte(body))
	if r.status != http.StatusAccepted || r.body["accepted"] != 2.0 || r.body["rejected"] != 1.0 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if e := r.body["errors"].([]any)[0].(map[string]any); e["index"] != 1.0 || !strings.Contains(e["error"].(string), "level") {
		t.Errorf("errors = %v", r.body["errors"])
	}
	got := p.stored(t, 2, source, 2)
	checkFields(t, "line 0", got[0], map[string]any{"message": "one", "logLevel": "INFO", "traceId": "t-1", "timestamp": ts})
	checkFields(t, "line 0 metadata", got[0]["metadata"].(map[string]any), map[string]any{"k": "v"})
	checkFields(t, "line 2", got[1], map[string]any{"message": "two", "logLevel": "ERROR"})
	if l := readDLQ(t, p.app.KafkaBrokers(), p.cfg.Kafka.DLQTopic, 1); !strings.Contains(string(l[0].Value), "bad level") {
		t.Errorf("dead letter %s", l[0].Value)
	}
	if n := p.protocolEvents("jsonl", "accepted"); n != 2 {
		t.Errorf("jsonl accepted = %v", n)
	}
	if r := do(t, http.MethodPost, p.producer+"/api/v1/logs/jsonl", "application/xml", []byte("<a/>")); r.status != http.StatusUnsupportedMediaType {
		t.Errorf("xml: %d %s", r.status, r.raw)
	}
}

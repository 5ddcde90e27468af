package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/app"
	"github.com/logengine/logengine/store/storetest"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// storedTraceID reads the trace_id column of the only stored log.
func storedTraceID(t *testing.T, dbURL string) string {
	t.Helper()
	stored := storetest.StoredLogs(t, dbURL)
	if len(stored) != 1 {
		t.Fatalf("%d logs stored, want 1", len(stored))
	}
	return stored[0].TraceID
}

// TestOneLogIsOneTrace: one ingest request gives one connected trace, from
// the HTTP span through Kafka produce and consume to the database write,
// and the stored log's traceId is that trace's id.
func TestOneLogIsOneTrace(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	p := startPipeline(t, nil, app.WithSpanExporter(spans))
	r := postJSON(t, p.producer+"/api/v1/logs", map[string]any{"level": "INFO", "source": "traced", "message": "follow me"})
	if r.status != http.StatusAccepted {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	p.waitProcessed(1)

	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans.GetSpans() {
		if _, seen := byName[s.Name]; !seen {
			byName[s.Name] = s
		}
	}
	httpSpan, ok := byName["POST /api/v1/logs"]
	if !ok {
		t.Fatalf("no HTTP span among %d spans", len(spans.GetSpans()))
	}
	traceID := httpSpan.SpanContext.TraceID()
	chain := []struct{ name, parent string }{
		{"kafka.produce " + p.cfg.Kafka.Topic, "POST /api/v1/logs"},
		{"kafka.consume " + p.cfg.Kafka.Topic, "kafka.produce " + p.cfg.Kafka.Topic},
		{"db.write logs", "kafka.consume " + p.cfg.Kafka.Topic},
	}
	for _, link := range chain {
		s, ok := byName[link.name]
		if !ok {
			t.Errorf("no %q span", link.name)
			continue
		}
		if s.SpanContext.TraceID() != traceID {
			t.Errorf("%q is in trace %s, want %s", link.name, s.SpanContext.TraceID(), traceID)
		}
		if s.Parent.SpanID() != byName[link.parent].SpanContext.SpanID() {
			t.Errorf("%q's parent is not %q", link.name, link.parent)
		}
	}
	if got := storedTraceID(t, p.cfg.Postgres.URL); got != traceID.String() {
		t.Errorf("stored traceId %q, want the trace's id %s", got, traceID)
	}
}

// TestTraceparentAndCorrelationID: a client's traceparent continues its
// trace; a client's X-Correlation-ID is echoed, appears in the producer's
// and the consumer's log lines, and becomes the stored log's traceId.
func TestTraceparentAndCorrelationID(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	p := startPipeline(t, nil, app.WithSpanExporter(spans))

	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	r := postJSON(t, p.producer+"/api/v1/logs", map[string]any{"level": "INFO", "source": "traced", "message": "continued"},
		"traceparent", parent)
	if r.status != http.StatusAccepted {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	p.waitProcessed(1)
	want, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	for _, s := range spans.GetSpans() {
		if s.Name == "POST /api/v1/logs" && s.SpanContext.TraceID() != want {
			t.Errorf("the HTTP span did not continue the client's trace: %s", s.SpanContext.TraceID())
		}
	}
	if got := storedTraceID(t, p.cfg.Postgres.URL); got != want.String() {
		t.Errorf("stored traceId %q, want %s", got, want)
	}

	r = postJSON(t, p.producer+"/api/v1/logs", map[string]any{"level": "INFO", "source": "corr", "message": "correlated"},
		"X-Correlation-ID", "corr-xyz-123")
	if r.header.Get("X-Correlation-ID") != "corr-xyz-123" {
		t.Errorf("X-Correlation-ID echoed as %q", r.header.Get("X-Correlation-ID"))
	}
	p.waitProcessed(2)
	found := map[string]bool{}
	for _, line := range strings.Split(p.logs.String(), "\n") {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) != nil {
			continue
		}
		role, _ := entry["role"].(string)
		if entry["correlation_id"] == "corr-xyz-123" {
			found[role] = true
		}
		if ids, ok := entry["correlation_ids"].([]any); ok {
			for _, id := range ids {
				if id == "corr-xyz-123" {
					found[role] = true
				}
			}
		}
	}
	if !found["producer"] || !found["consumer"] {
		t.Errorf("correlation id in the log lines of: %v; want producer and consumer", found)
	}
	rr := get(t, p.gateway+"/api/v1/logs?traceId=corr-xyz-123&startTime="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	if rr.body["totalElements"] != 1.0 {
		t.Errorf("stored log by its correlation id: %s", rr.raw)
	}
}

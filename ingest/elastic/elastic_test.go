package elastic_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/ingest/elastic"
	"github.com/logengine/logengine/ingest/ingesttest"
)

// When Kafka does not take the documents the shipper gets 429 with
// Retry-After, which Elasticsearch clients retry.
func TestUnavailableIs429(t *testing.T) {
	h := ingesttest.KafkaDownHandler()
	e := echo.New()
	elastic.NewHandler(elastic.DefaultConfig(), h).Register(e)
	req := httptest.NewRequest(http.MethodPost, "/elastic/app/_bulk", strings.NewReader("{\"index\":{}}\n{\"message\":\"m\"}\n"))
	req.Header.Set("Content-Type", "application/x-ndjson")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" ||
		!strings.Contains(rec.Body.String(), "es_rejected_execution_exception") || rec.Header().Get("X-Elastic-Product") != "Elasticsearch" {
		t.Errorf("%d %v %s", rec.Code, rec.Header(), rec.Body)
	}
}

func TestDraftMapsFields(t *testing.T) {
	cfg := elastic.DefaultConfig()
	cfg.MessageFields = []string{"body"}
	cfg.SourceFields = []string{"kubernetes.container.name"}
	h := elastic.NewHandler(cfg, nil)
	d, err := h.Draft([]byte(`{"body":{"a":1},"kubernetes":{"container":{"name":"api"},"pod":"p"},"log.level":"WARN","@timestamp":"2026-01-02 03:04:05","trace_id":42}`), "idx")
	if err != nil {
		t.Fatal(err)
	}
	if d.Message != `{"a":1}` || d.Source != "api" || d.Level != "WARN" || d.TraceID != "42" ||
		!d.Timestamp.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("draft %+v", d)
	}
	var meta map[string]any
	if err := json.Unmarshal(d.Metadata.AppendJSON(nil), &meta); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"kubernetes": map[string]any{"pod": "p"}, "_index": "idx"}
	if b1, b2 := mustJSON(meta), mustJSON(want); b1 != b2 {
		t.Errorf("metadata %s, want %s", b1, b2)
	}
	if d, _ := h.Draft([]byte(`{"body":"x","@timestamp":"yesterday"}`), ""); d.Source != "elasticsearch" || !d.Timestamp.IsZero() {
		t.Errorf("no source, unreadable time: %+v", d)
	} else if v, _ := d.Metadata.Get("@timestamp"); string(v) != `"yesterday"` {
		t.Errorf("an unreadable time is kept as metadata, got %s", v)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func FuzzDraft(f *testing.F) {
	f.Add([]byte(`{"message":"m","log":{"level":"info"},"@timestamp":1700000000000}`))
	h := elastic.NewHandler(elastic.DefaultConfig(), nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := h.Draft(b, "i"); err == nil {
			_ = d.AppendJSON(nil)
		}
	})
}

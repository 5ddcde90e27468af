package loki_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/ingest/ingesttest"
	"github.com/logengine/logengine/ingest/loki"
)

// When Kafka does not take the entries the shipper gets 503 with
// Retry-After, which Promtail and Alloy retry.
func TestUnavailableIs503(t *testing.T) {
	h := ingesttest.KafkaDownHandler()
	e := echo.New()
	loki.NewHandler(loki.DefaultConfig(), h).Register(e)
	req := httptest.NewRequest(http.MethodPost, loki.Path, strings.NewReader(`{"streams":[{"stream":{"app":"a"},"values":[["1","x"]]}]}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("%d %v %s", rec.Code, rec.Header(), rec.Body)
	}
}

func TestDraftsMapping(t *testing.T) {
	cfg := loki.DefaultConfig()
	cfg.SourceLabels = []string{"svc"}
	h := loki.NewHandler(cfg, nil)
	d := h.Drafts([]loki.Stream{{Labels: []loki.Label{{"app", "x"}, {"lvl", "err"}}, Entries: []loki.Entry{{Line: "l"}}}})[0]
	if d.Source != cfg.DefaultSource || d.Level != "ERROR" || d.Message != "l" {
		t.Errorf("%+v", d)
	}
}

package ingest_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/ingest"
	"github.com/logengine/logengine/store/logs"
	"github.com/prometheus/client_golang/prometheus"
)

// countingPublisher takes every event, as Kafka would.
type countingPublisher struct{ events atomic.Int64 }

func (p *countingPublisher) Publish(_ context.Context, events []logs.Event, _ []ingest.DeadLetter, _ string) error {
	p.events.Add(int64(len(events)))
	return nil
}

// With a broker that keeps records in memory, ingest answers 503 while
// more than --max-unstored-records are accepted but not stored.
func TestIngestPushesBackWhileTheStoreIsBehind(t *testing.T) {
	var unstored atomic.Int64
	cfg := ingest.DefaultHandlerConfig()
	cfg.MaxUnstored = 1000
	cfg.Unstored = unstored.Load
	pub := &countingPublisher{}
	h := ingest.NewHandler(cfg, pub, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	e := echo.New()
	h.Register(e)
	post := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/logs",
			strings.NewReader(`{"level":"INFO","source":"api","message":"hello"}`))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	if rec := post(); rec.Code != http.StatusAccepted {
		t.Fatalf("within the bound: %d %s", rec.Code, rec.Body)
	}
	unstored.Store(1001)
	rec := post()
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "not stored yet") {
		t.Errorf("past the bound: %d %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if n := pub.events.Load(); n != 1 {
		t.Errorf("%d events published, want only the first", n)
	}
	unstored.Store(10)
	if rec := post(); rec.Code != http.StatusAccepted {
		t.Errorf("caught up: %d %s", rec.Code, rec.Body)
	}
}

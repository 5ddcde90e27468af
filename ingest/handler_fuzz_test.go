package ingest_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/ingest"
	"github.com/prometheus/client_golang/prometheus"
)

// FuzzIngestBodies posts any body to both ingest endpoints: the answer is
// one of the documented statuses, a 202 accounts for every element (ids of
// the accepted ones, an error per refused one) and what was published is
// exactly what the answer accepted, with nothing lost: every refused
// element of a batch is a dead letter.
func FuzzIngestBodies(f *testing.F) {
	for _, s := range []string{
		`{"level":"INFO","source":"api","message":"hello"}`,
		`[{"level":"INFO","source":"api","message":"a"},{"level":"LOUD"},1,{"id":"3f0c8b1e-4a2d-4c6e-9b7a-1d2e3f405162","level":"INFO","source":"a","message":"b"},{"id":"3f0c8b1e-4a2d-4c6e-9b7a-1d2e3f405162","level":"INFO","source":"a","message":"c"}]`,
		`[]`, `[`, `{"metadata":{"n":1e1000000},"level":"INFO","source":"a","message":"m"}`,
		`{"timestamp":"2016-12-31T23:59:60Z","level":"INFO","source":"a","message":"m"}`, ``, `null`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, batch bool) {
		pub := &recordingPublisher{}
		cfg := ingest.DefaultHandlerConfig()
		cfg.MaxBatchEvents = 8
		h := ingest.NewHandler(cfg, pub, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		e := echo.New()
		h.Register(e)
		path := "/api/v1/logs"
		if batch {
			path += "/batch"
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, path, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		var answer struct {
			Accepted, Rejected int
			IDs                []string
			Errors             []struct{ Index int }
		}
		switch rec.Code {
		case http.StatusAccepted:
			if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
				t.Fatalf("202 body %s: %v", rec.Body, err)
			}
			if answer.Accepted != len(answer.IDs) || answer.Accepted != len(pub.events) || answer.Rejected != len(answer.Errors) {
				t.Fatalf("answer %s, %d published", rec.Body, len(pub.events))
			}
			if answer.Rejected != len(pub.letters) {
				t.Fatalf("%d refused, %d dead letters", answer.Rejected, len(pub.letters))
			}
			seen := map[string]bool{}
			for _, id := range answer.IDs {
				if seen[id] {
					t.Fatalf("id %s accepted twice in one answer: %s", id, rec.Body)
				}
				seen[id] = true
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if len(pub.events) != 0 {
				t.Fatalf("answer %d, yet %d events published", rec.Code, len(pub.events))
			}
		default:
			t.Fatalf("answer %d %s", rec.Code, rec.Body)
		}
	})
}

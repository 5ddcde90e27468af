package ingest_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/ingest"
	"github.com/logengine/logengine/ingest/ingesttest"
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

// recordingPublisher keeps what it was given.
type recordingPublisher struct {
	events  []logs.Event
	letters []ingest.DeadLetter
}

func (p *recordingPublisher) Publish(_ context.Context, events []logs.Event, letters []ingest.DeadLetter, _ string) error {
	p.events = append(p.events, events...)
	p.letters = append(p.letters, letters...)
	return nil
}

// A batch that repeats a client id: the store keeps one event per id, so
// the answer counts one accepted and refuses the later ones by index.
func TestBatchRefusesRepeatedClientIDs(t *testing.T) {
	pub := &recordingPublisher{}
	h := ingest.NewHandler(ingest.DefaultHandlerConfig(), pub, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	e := echo.New()
	h.Register(e)
	const id = "3f0c8b1e-4a2d-4c6e-9b7a-1d2e3f405162"
	body := `[{"id":"` + id + `","level":"INFO","source":"a","message":"first"},` +
		`{"level":"LOUD","source":"a","message":"invalid"},` +
		`{"level":"INFO","source":"a","message":"no id"},` +
		`{"id":"` + id + `","level":"WARN","source":"b","message":"again"},` +
		`{"id":"` + strings.ToUpper(id) + `","level":"WARN","source":"b","message":"again, upper case"}]`
	req := httptest.NewRequest(http.MethodPost, "/api/v1/logs/batch", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	var got struct {
		Accepted, Rejected int
		Errors             []struct {
			Index int
			Error string
		}
		IDs []string
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusAccepted {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if got.Accepted != 2 || got.Rejected != 3 || len(got.IDs) != 2 || len(got.Errors) != 3 {
		t.Fatalf("answer %s; want 2 accepted (the first of the id and the one without), 3 refused", rec.Body)
	}
	for i, want := range []int{1, 3, 4} {
		if got.Errors[i].Index != want {
			t.Errorf("error %d is about element %d, want %d: %s", i, got.Errors[i].Index, want, rec.Body)
		}
	}
	if !strings.Contains(got.Errors[1].Error, "repeats the id of element 0") {
		t.Errorf("the repeated id's error: %q", got.Errors[1].Error)
	}
	if len(pub.events) != 2 || pub.events[0].Message != "first" || pub.events[1].Message != "no id" {
		t.Errorf("published %+v, want the first and the one without id", pub.events)
	}
	if len(pub.letters) != 3 {
		t.Errorf("%d dead letters, want 3 (nothing sent is lost)", len(pub.letters))
	}
}

// A request Kafka does not take gets one answer, the 503, and nothing
// after it: the body is the error alone, never followed by an acceptance.
func TestUnavailableAnswerIsTheWholeBody(t *testing.T) {
	t.Parallel()
	e := echo.New()
	ingesttest.KafkaDownHandler().Register(e)
	for path, body := range map[string]string{
		"/api/v1/logs":       `{"level":"INFO","source":"api","message":"hello"}`,
		"/api/v1/logs/batch": `[{"level":"INFO","source":"api","message":"hello"},{"level":"LOUD","source":"api","message":"invalid"}]`,
	} {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		dec := json.NewDecoder(rec.Body)
		dec.DisallowUnknownFields()
		var answer struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&answer); err != nil || rec.Code != http.StatusServiceUnavailable || answer.Error == "" {
			t.Errorf("%s: %d, %v, error %q; want 503 with an error", path, rec.Code, err, answer.Error)
		}
		if dec.More() {
			rest, _ := io.ReadAll(dec.Buffered())
			t.Errorf("%s: the 503 is followed by %s", path, rest)
		}
	}
}

package app_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/configs"
)

// TestBadInput sends what careless or hostile clients send: every answer is
// the documented status with an error that names the problem, and the
// pipeline keeps serving.
func TestBadInput(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, func(c *configs.Config) {
		c.Ingest.Limits.MaxMessageBytes = 1024
		c.Ingest.MaxBodyBytes = 64 << 10
		c.Ingest.MaxBatchEvents = 5
	})
	valid := `{"message":"ok","level":"INFO","source":"svc"}`
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	big := strings.Repeat("x", 2048)
	huge := `{"message":"` + strings.Repeat("y", 70<<10) + `","level":"INFO","source":"svc"}`

	cases := []struct {
		name        string
		method, url string
		contentType string
		body        string
		status      int
		mention     string // the error must contain this
	}{
		// POST /api/v1/logs
		{"malformed JSON", "POST", "/api/v1/logs", "application/json", `{"message":`, 400, "malformed JSON"},
		{"not an object", "POST", "/api/v1/logs", "application/json", `[1,2]`, 400, "JSON object"},
		{"empty body", "POST", "/api/v1/logs", "application/json", ``, 400, "empty"},
		{"message wrong type", "POST", "/api/v1/logs", "application/json", `{"message":42,"level":"INFO","source":"svc"}`, 400, "message"},
		{"missing fields", "POST", "/api/v1/logs", "application/json", `{}`, 400, "message"},
		{"missing level", "POST", "/api/v1/logs", "application/json", `{"message":"m","source":"svc"}`, 400, "level"},
		{"unknown level", "POST", "/api/v1/logs", "application/json", `{"message":"m","level":"LOUD","source":"svc"}`, 400, "LOUD"},
		{"blank source", "POST", "/api/v1/logs", "application/json", `{"message":"m","level":"INFO","source":"  "}`, 400, "source"},
		{"oversize message", "POST", "/api/v1/logs", "application/json", `{"message":"` + big + `","level":"INFO","source":"svc"}`, 400, "message"},
		{"future timestamp", "POST", "/api/v1/logs", "application/json", `{"message":"m","level":"INFO","source":"svc","timestamp":"` + future + `"}`, 400, "timestamp"},
		{"bad timestamp", "POST", "/api/v1/logs", "application/json", `{"message":"m","level":"INFO","source":"svc","timestamp":"yesterday"}`, 400, "timestamp"},
		{"metadata not an object", "POST", "/api/v1/logs", "application/json", `{"message":"m","level":"INFO","source":"svc","metadata":[1]}`, 400, "metadata"},
		{"bad id", "POST", "/api/v1/logs", "application/json", `{"message":"m","level":"INFO","source":"svc","id":"nope"}`, 400, "id"},
		{"oversize body", "POST", "/api/v1/logs", "application/json", huge, 413, "limit"},
		{"wrong content type", "POST", "/api/v1/logs", "text/plain", valid, 415, "Content-Type"},
		{"form content type", "POST", "/api/v1/logs", "application/x-www-form-urlencoded", valid, 415, "Content-Type"},
		// POST /api/v1/logs/batch
		{"batch not an array", "POST", "/api/v1/logs/batch", "application/json", valid, 400, "JSON array"},
		{"batch malformed", "POST", "/api/v1/logs/batch", "application/json", `[{"message":`, 400, "malformed"},
		{"batch all invalid", "POST", "/api/v1/logs/batch", "application/json", `[{"level":"INFO"},{"message":"m"}]`, 400, "every event"},
		{"batch too many", "POST", "/api/v1/logs/batch", "application/json", "[" + strings.Repeat(valid+",", 5) + valid + "]", 413, "limit of 5"},
		{"batch oversize body", "POST", "/api/v1/logs/batch", "application/json", "[" + huge + "]", 413, "limit"},
		{"batch wrong content type", "POST", "/api/v1/logs/batch", "text/csv", "[" + valid + "]", 415, "Content-Type"},
		// GET /api/v1/logs
		{"bad startTime", "GET", "/api/v1/logs?startTime=yesterday", "", "", 400, "startTime"},
		{"bad endTime", "GET", "/api/v1/logs?endTime=2024-13-45", "", "", 400, "endTime"},
		{"start after end", "GET", "/api/v1/logs?startTime=2024-01-02T00:00:00Z&endTime=2024-01-01T00:00:00Z", "", "", 400, "startTime"},
		{"non-numeric page", "GET", "/api/v1/logs?page=abc", "", "", 400, "page"},
		{"non-numeric size", "GET", "/api/v1/logs?size=ten", "", "", 400, "size"},
		{"unknown logLevel", "GET", "/api/v1/logs?logLevel=LOUD", "", "", 400, "logLevel"},
		{"bad sort", "GET", "/api/v1/logs?sort=sideways", "", "", 400, "sort"},
		{"bad cursor", "GET", "/api/v1/logs?cursor=" + url.QueryEscape("not-a-cursor!"), "", "", 400, "cursor"},
		// POST /api/v1/logs/query
		{"query malformed", "POST", "/api/v1/logs/query", "application/json", `{"startTime":`, 400, "malformed"},
		{"query without startTime", "POST", "/api/v1/logs/query", "application/json", `{"endTime":"2024-01-01T00:00:00Z"}`, 400, "startTime"},
		{"query without endTime", "POST", "/api/v1/logs/query", "application/json", `{"startTime":"2024-01-01T00:00:00Z"}`, 400, "endTime"},
		{"query wrong type", "POST", "/api/v1/logs/query", "application/json", `{"startTime":"2024-01-01T00:00:00Z","endTime":"2024-01-02T00:00:00Z","page":{}}`, 400, "malformed"},
		// GET /api/v1/logs/stats
		{"stats bad top", "GET", "/api/v1/logs/stats?top=many", "", "", 400, "top"},
		{"stats zero top", "GET", "/api/v1/logs/stats?top=0", "", "", 400, "top"},
		{"stats bad window", "GET", "/api/v1/logs/stats?startTime=2024-01-02T00:00:00Z&endTime=2024-01-01T00:00:00Z", "", "", 400, "startTime"},
		{"stats unknown level", "GET", "/api/v1/logs/stats?logLevel=NOPE", "", "", 400, "logLevel"},
		// GET /api/v1/logs/histogram
		{"histogram bad interval", "GET", "/api/v1/logs/histogram?interval=often", "", "", 400, "interval"},
		{"histogram sub-second interval", "GET", "/api/v1/logs/histogram?interval=10ms", "", "", 400, "interval"},
		{"histogram too many buckets", "GET", "/api/v1/logs/histogram?interval=1s&startTime=2024-01-01T00:00:00Z&endTime=2024-01-02T00:00:00Z", "", "", 400, "buckets"},
		// Refused as too expensive
		{"keyword over a long window", "GET", "/api/v1/logs?keyword=error&startTime=2024-01-01T00:00:00Z&endTime=2024-01-03T00:00:00Z", "", "", 422, "source, traceId or meta"},
		{"deep offset page", "GET", "/api/v1/logs?page=200000&size=10", "", "", 422, "nextCursor"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := p.producer
			if strings.HasPrefix(c.url, "/api/v1/logs?") || strings.HasPrefix(c.url, "/api/v1/logs/query") ||
				strings.HasPrefix(c.url, "/api/v1/logs/stats") || strings.HasPrefix(c.url, "/api/v1/logs/histogram") {
				base = p.gateway
			}
			r := do(t, c.method, base+c.url, c.contentType, []byte(c.body))
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.raw)
			}
			msg, _ := r.body["error"].(string)
			if !strings.Contains(string(r.raw), c.mention) || msg == "" {
				t.Errorf("error %s does not mention %q", r.raw, c.mention)
			}
		})
	}

	t.Run("clamped, not refused", func(t *testing.T) {
		for q, want := range map[string]float64{"size=0": 1, "size=5000": 1000, "size=-3": 1} {
			r := get(t, p.gateway+"/api/v1/logs?"+q)
			if r.status != 200 || r.body["size"] != want {
				t.Errorf("%s: %d size=%v, want %v", q, r.status, r.body["size"], want)
			}
		}
		if r := get(t, p.gateway+"/api/v1/logs?page=-1"); r.status != 200 || r.body["number"] != 0.0 {
			t.Errorf("page=-1: %d %s", r.status, r.raw)
		}
	})

	t.Run("a narrowed keyword search over a long window is allowed", func(t *testing.T) {
		r := get(t, p.gateway+"/api/v1/logs?keyword=error&source=svc&startTime=2024-01-01T00:00:00Z&endTime=2024-01-03T00:00:00Z")
		if r.status != 200 {
			t.Errorf("%d %s", r.status, r.raw)
		}
	})

	t.Run("empty batch is accepted", func(t *testing.T) {
		r := do(t, "POST", p.producer+"/api/v1/logs/batch", "application/json", []byte("[]"))
		if r.status != 202 || r.body["accepted"] != 0.0 {
			t.Errorf("[]: %d %s", r.status, r.raw)
		}
	})

	t.Run("still serving", func(t *testing.T) {
		r := do(t, http.MethodPost, p.producer+"/api/v1/logs", "application/json", bytes.NewBufferString(valid).Bytes())
		if r.status != 202 {
			t.Errorf("valid event after bad input: %d %s", r.status, r.raw)
		}
	})
}

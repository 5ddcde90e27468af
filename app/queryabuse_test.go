package app_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/resilience/resiliencetest"
)

// TestQueryAbuse sends the gateway what an attacker found it mishandled:
// every answer is the documented status, bounded, and names the problem
// without PostgreSQL's own error text.
func TestQueryAbuse(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, nil)
	at := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Minute)
	for _, src := range []string{"a", "b"} {
		r := postJSON(t, p.producer+"/api/v1/logs", map[string]any{
			"id": uuid.NewString(), "timestamp": at.Format(time.RFC3339), "level": "INFO", "source": src, "message": "m"})
		if r.status != http.StatusAccepted {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	}
	p.waitProcessed(2)

	t.Run("automatic histogram interval over ten millennia", func(t *testing.T) {
		r := get(t, p.gateway+"/api/v1/logs/histogram?startTime=0000-01-01T00:00:00Z&endTime=9999-12-31T00:00:00Z")
		if r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		buckets, _ := r.body["buckets"].([]any)
		if len(buckets) == 0 || len(buckets) > 1000 || len(r.raw) > 1<<20 {
			t.Errorf("%d buckets in %d bytes, interval %v; want at most 1000", len(buckets), len(r.raw), r.body["interval"])
		}
	})

	t.Run("NUL and invalid UTF-8 name the parameter", func(t *testing.T) {
		window := "&" + windowQuery(at.Add(-time.Hour), at.Add(time.Hour))
		cases := map[string]string{
			"/api/v1/logs?source=a%00b":                      "source",
			"/api/v1/logs?source=a%ffb":                      "source",
			"/api/v1/logs?traceId=t%00":                      "traceId",
			"/api/v1/logs?traceId=%c3":                       "traceId",
			"/api/v1/logs?source=a&keyword=k%00":             "keyword",
			"/api/v1/logs?source=a&keyword=%ff":              "keyword",
			"/api/v1/logs?meta.user=%00":                     "meta.user",
			"/api/v1/logs?meta.user=%fe":                     "meta.user",
			"/api/v1/logs/stats?source=a%00b":                "source",
			"/api/v1/logs/histogram?interval=1h&source=a%ff": "source",
		}
		for path, param := range cases {
			r := get(t, p.gateway+path+window)
			if r.status != http.StatusBadRequest || !strings.Contains(string(r.raw), "parameter "+param) {
				t.Errorf("%s: %d %s, want 400 naming %s", path, r.status, r.raw, param)
			}
			for _, sql := range []string{"SQLSTATE", "invalid byte sequence", "ERROR:", "narrow"} {
				if strings.Contains(string(r.raw), sql) {
					t.Errorf("%s: the answer %s shows %q", path, r.raw, sql)
				}
			}
		}
		body := `{"startTime":"` + at.Add(-time.Hour).Format(time.RFC3339) + `","endTime":"` + at.Format(time.RFC3339) + `","source":"a\u0000b"}`
		if r := do(t, http.MethodPost, p.gateway+"/api/v1/logs/query", "application/json", []byte(body)); r.status != http.StatusBadRequest ||
			!strings.Contains(string(r.raw), "parameter source") {
			t.Errorf("POST with a NUL in source: %d %s", r.status, r.raw)
		}
	})

	t.Run("a query body over 1 MiB is 413", func(t *testing.T) {
		body := `{"startTime":"2024-01-01T00:00:00Z","endTime":"2024-01-02T00:00:00Z","keyword":"` + strings.Repeat("k", 3<<19) + `"}`
		r := do(t, http.MethodPost, p.gateway+"/api/v1/logs/query", "application/json", []byte(body))
		if r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("%d %s, want 413", r.status, r.raw)
		}
		// Streamed without a length, too.
		req, err := http.NewRequest(http.MethodPost, p.gateway+"/api/v1/logs/query", struct{ *bytes.Reader }{bytes.NewReader([]byte(body))})
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked: %d, want 413", resp.StatusCode)
		}
	})

	t.Run("a source holding the old list separator is its own search", func(t *testing.T) {
		window := "&" + windowQuery(at.Add(-time.Hour), at.Add(time.Hour))
		two := get(t, p.gateway+"/api/v1/logs?source=a,b"+window)
		if two.status != http.StatusOK || two.body["totalElements"] != 2.0 {
			t.Fatalf("source=a,b: %d %s", two.status, two.raw)
		}
		one := get(t, p.gateway+"/api/v1/logs?source="+url.QueryEscape("a\x01b")+window)
		if one.status != http.StatusOK || one.body["totalElements"] != 0.0 || one.header.Get("X-Cache") != "MISS" {
			t.Errorf("source=a%%01b after source=a,b: %d X-Cache %s %s, want a MISS with no logs",
				one.status, one.header.Get("X-Cache"), one.raw)
		}
	})
}

// TestStaleAnswersAfterManyNewSearches: twenty parallel searches nobody
// asked before leave the Redis breaker closed (misses are not failures),
// so with PostgreSQL unreachable the gateway serves each one's last good
// answer marked STALE, as promised.
func TestStaleAnswersAfterManyNewSearches(t *testing.T) {
	t.Parallel()
	var proxy *resiliencetest.Proxy
	p := startPipeline(t, func(c *configs.Config) {
		u, _ := url.Parse(c.Postgres.URL)
		proxy = resiliencetest.NewProxy(t, u.Host)
		u.Host = proxy.Addr()
		c.Postgres.URL = u.String()
		c.Consumer.WriteTimeout = 2 * time.Second
		c.Gateway.CacheTTL = time.Millisecond // only the last good copies outlive a moment
		c.Gateway.MaxWait = 30 * time.Second  // all twenty run, whatever the machine's speed
	})
	now := time.Now().UTC()
	for i := range 20 {
		r := postJSON(t, p.producer+"/api/v1/logs", map[string]any{"level": "INFO", "source": fmt.Sprintf("new-%d", i), "message": "m"})
		if r.status != http.StatusAccepted {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	}
	p.waitProcessed(20)
	query := func(i int) string {
		return p.gateway + "/api/v1/logs?source=new-" + strconv.Itoa(i) + "&" + windowQuery(now.Add(-time.Hour), now.Add(time.Hour))
	}
	good := make([]string, 20)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := get(t, query(i))
			if r.status != http.StatusOK || r.header.Get("X-Cache") != "MISS" || r.body["totalElements"] != 1.0 {
				t.Errorf("search %d: %d X-Cache %q %s", i, r.status, r.header.Get("X-Cache"), r.raw)
			}
			good[i] = string(r.raw)
		}()
	}
	wg.Wait()
	if m := string(get(t, p.gateway+"/metrics").raw); !containsLine(m, `breaker_state{name="redis"} 0`) {
		t.Fatalf("the Redis breaker is not closed after 20 misses on a healthy Redis")
	}
	time.Sleep(20 * time.Millisecond) // let the 1 ms entries expire
	proxy.Cut()
	for i := range 20 {
		r := get(t, query(i))
		if r.status != http.StatusOK || r.header.Get("X-Cache") != "STALE" || string(r.raw) != good[i] {
			t.Errorf("search %d with PostgreSQL unreachable: %d X-Cache %q %s, want its last good answer as STALE",
				i, r.status, r.header.Get("X-Cache"), r.raw)
		}
	}
	proxy.Restore()
}

package app_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/resilience/resiliencetest"
)

func windowQuery(start, end time.Time) string {
	return "startTime=" + url.QueryEscape(start.Format(time.RFC3339)) + "&endTime=" + url.QueryEscape(end.Format(time.RFC3339))
}

// TestBackfillInvalidatesAClosedWindow: an answer for a window entirely in
// the past is cached for long, yet a log backfilled into that window shows
// in the very next query, because the writer bumped the window's epoch.
func TestBackfillInvalidatesAClosedWindow(t *testing.T) {
	t.Parallel()
	// What is tested is invalidation: a cache write that passes the
	// default 100 ms on a loaded machine would be a miss that says
	// nothing about it.
	p := startPipeline(t, func(c *configs.Config) { c.Redis.Timeout = 2 * time.Second })
	past := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Minute)
	send := func(msg string, at time.Time) {
		r := postJSON(t, p.producer+"/api/v1/logs", map[string]any{
			"id": uuid.NewString(), "timestamp": at.Format(time.RFC3339Nano), "level": "INFO", "source": "backfill", "message": msg})
		if r.status != http.StatusAccepted {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	}
	send("first", past.Add(time.Minute))
	p.waitProcessed(1) // stored and its cache epochs bumped, not only stored
	for _, path := range []string{"/api/v1/logs?", "/api/v1/logs/stats?", "/api/v1/logs/histogram?interval=1h&"} {
		q := p.gateway + path + windowQuery(past, past.Add(time.Hour))
		if r := get(t, q); r.header.Get("X-Cache") != "MISS" {
			t.Fatalf("%s first: X-Cache %q", path, r.header.Get("X-Cache"))
		}
		if r := get(t, q); r.header.Get("X-Cache") != "HIT" {
			t.Fatalf("%s second: X-Cache %q", path, r.header.Get("X-Cache"))
		}
	}
	send("backfilled", past.Add(30*time.Minute))
	p.waitProcessed(2)
	r := get(t, p.gateway+"/api/v1/logs?"+windowQuery(past, past.Add(time.Hour)))
	if r.header.Get("X-Cache") != "MISS" || r.body["totalElements"] != 2.0 {
		t.Errorf("search after backfill: X-Cache %q, %s", r.header.Get("X-Cache"), r.raw)
	}
	r = get(t, p.gateway+"/api/v1/logs/stats?"+windowQuery(past, past.Add(time.Hour)))
	if r.body["totalCount"] != 2.0 {
		t.Errorf("stats after backfill: %s", r.raw)
	}
	r = get(t, p.gateway+"/api/v1/logs/histogram?interval=1h&"+windowQuery(past, past.Add(time.Hour)))
	var total float64
	for _, b := range r.body["buckets"].([]any) {
		total += b.(map[string]any)["total"].(float64)
	}
	if total != 2 {
		t.Errorf("histogram after backfill: %s", r.raw)
	}
	// The closed window's answer is served from this process's memory on
	// repeats (the local tier), still exact.
	get(t, p.gateway+"/api/v1/logs?"+windowQuery(past, past.Add(time.Hour)))
	get(t, p.gateway+"/api/v1/logs?"+windowQuery(past, past.Add(time.Hour)))
	metrics := string(get(t, p.gateway+"/metrics").raw)
	if !containsLine(metrics, `cache_hits_total{tier="local"}`) {
		t.Errorf("no hit counted in the local tier")
	}
	if metricValue(metrics, "cache_local_entries") < 1 || metricValue(metrics, "cache_local_bytes") < 1 {
		t.Errorf("the local tier reports no entries or bytes")
	}
}

// TestHotWindowIsStaleAtMostItsTTL: a window touching now may be served
// from the cache, but never longer than --cache-ttl after a write.
func TestHotWindowIsStaleAtMostItsTTL(t *testing.T) {
	t.Parallel()
	ttl := time.Second
	p := startPipeline(t, func(c *configs.Config) { c.Gateway.CacheTTL = ttl })
	start := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Second)
	end := time.Now().UTC().Add(10 * time.Minute).Truncate(time.Second)
	q := p.gateway + "/api/v1/logs?" + windowQuery(start, end)
	if r := get(t, q); r.body["totalElements"] != 0.0 {
		t.Fatalf("%s", r.raw)
	}
	postJSON(t, p.producer+"/api/v1/logs", map[string]any{"level": "INFO", "source": "hot", "message": "now"})
	p.waitRows(1)
	stored := time.Now()
	// Served from the cache or not, once the TTL has passed since the
	// write the answer must include it.
	time.Sleep(ttl + 50*time.Millisecond)
	r := get(t, q)
	if r.body["totalElements"] != 1.0 {
		t.Errorf("%v after the write, the hot window still misses it: X-Cache %q %s", time.Since(stored), r.header.Get("X-Cache"), r.raw)
	}
}

// TestQueriesSucceedWhileRedisStalls: Redis accepting connections but never
// answering costs a query a short timeout at most, then the breaker skips it.
func TestQueriesSucceedWhileRedisStalls(t *testing.T) {
	t.Parallel()
	var proxy *resiliencetest.Proxy
	p := startPipeline(t, func(c *configs.Config) {
		proxy = resiliencetest.NewProxy(t, c.Redis.Addr)
		c.Redis.Addr = proxy.Addr()
	})
	get(t, p.gateway+"/api/v1/logs")
	proxy.Stall()
	for i := 0; i < 20; i++ {
		r := get(t, p.gateway+"/api/v1/logs?size="+string(rune('1'+i%9)))
		if r.status != http.StatusOK {
			t.Fatalf("query %d while Redis stalls: %d %s", i, r.status, r.raw)
		}
	}
	body := string(get(t, p.gateway+"/metrics").raw)
	if !containsLine(body, `breaker_state{name="redis"} 2`) {
		t.Errorf("the Redis breaker did not open while Redis stalled")
	}
	proxy.Restore()
}

// Cache-Control: no-cache skips the cache read (the answer is the store's,
// X-Cache MISS) and refreshes the entry, so the next plain request hits.
func TestNoCacheHeaderReadsTheStore(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, func(c *configs.Config) { c.Gateway.CacheTTL = time.Hour })
	postJSON(t, p.producer+"/api/v1/logs", map[string]any{"level": "INFO", "source": "fresh", "message": "one"})
	p.waitRows(1)
	start := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Second)
	end := time.Now().UTC().Add(10 * time.Minute).Truncate(time.Second)
	q := p.gateway + "/api/v1/logs?" + windowQuery(start, end)
	if r := get(t, q); r.header.Get("X-Cache") != "MISS" || r.body["totalElements"] != 1.0 {
		t.Fatalf("first: X-Cache %q %s", r.header.Get("X-Cache"), r.raw)
	}
	postJSON(t, p.producer+"/api/v1/logs", map[string]any{"level": "INFO", "source": "fresh", "message": "two"})
	p.waitRows(2)
	if r := get(t, q); r.header.Get("X-Cache") != "HIT" || r.body["totalElements"] != 1.0 {
		t.Fatalf("cached: X-Cache %q %s", r.header.Get("X-Cache"), r.raw)
	}
	for _, cc := range []string{"no-cache", "max-age=0", "private, no-store"} {
		r := do(t, "GET", q, "", nil, "Cache-Control", cc)
		if r.header.Get("X-Cache") != "MISS" || r.body["totalElements"] != 2.0 {
			t.Errorf("Cache-Control: %s: X-Cache %q %s", cc, r.header.Get("X-Cache"), r.raw)
		}
	}
	// The fresh answer replaced the cached one.
	if r := get(t, q); r.header.Get("X-Cache") != "HIT" || r.body["totalElements"] != 2.0 {
		t.Errorf("after no-cache: X-Cache %q %s", r.header.Get("X-Cache"), r.raw)
	}
}

// Answers are not HTML-escaped: a message reads as it was written.
func TestAnswersKeepMarkupReadable(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, nil)
	postJSON(t, p.producer+"/api/v1/logs", map[string]any{"level": "INFO", "source": "<api>", "message": "a <b>bold</b> & plain"})
	p.waitRows(1)
	start := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Second)
	end := time.Now().UTC().Add(10 * time.Minute).Truncate(time.Second)
	for _, path := range []string{"/api/v1/logs?", "/api/v1/logs/stats?"} {
		r := get(t, p.gateway+path+windowQuery(start, end))
		if !strings.Contains(string(r.raw), "<api>") || strings.Contains(string(r.raw), `\u003c`) {
			t.Errorf("%s escapes markup: %s", path, r.raw)
		}
	}
}

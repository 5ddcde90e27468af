package app_test

import (
	"context"
	"encoding/json"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/ingest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// fixture is a known set of logs in a past window: what a search must find.
type fixture struct {
	base   time.Time
	oneID  string
	oneTS  string
	events []map[string]any
}

func newFixture() fixture {
	base := time.Now().UTC().Add(-30 * time.Minute).Truncate(time.Second)
	at := func(s int) string { return base.Add(time.Duration(s) * time.Second).Format(time.RFC3339) }
	return fixture{
		base:  base,
		oneID: "0190d5a3-8f2e-7c3b-9a4d-1e2f3a4b5c6d",
		oneTS: base.Add(time.Second + 123456*time.Microsecond).Format(time.RFC3339Nano),
		events: []map[string]any{
			{"timestamp": at(2), "level": "INFO", "source": "payment-service", "message": "Payment processed 100% done"},
			{"timestamp": at(3), "level": "warn", "source": "payment-service", "message": "Disk usage at 95%"},
			{"timestamp": at(4), "level": "ERROR", "source": "db-service", "message": "Connection TIMEOUT on db_primary"},
			{"timestamp": at(5), "level": "debug", "source": "auth-service", "message": "token refreshed for user 1000"},
			{"timestamp": at(6), "level": "Info", "source": "api-gateway", "message": "GET /health 200"},
			{"timestamp": at(7), "level": "FATAL", "source": "db-service", "message": "Out of memory"},
			{"timestamp": at(8), "level": "WARNING", "source": "api-gateway", "message": "slow request"},
		},
	}
}

func (f fixture) window() string {
	return "startTime=" + url.QueryEscape(f.base.Format(time.RFC3339)) +
		"&endTime=" + url.QueryEscape(f.base.Add(10*time.Second).Format(time.RFC3339))
}

// ingestFixture sends one event and a batch (with one invalid event) and
// waits until the eight valid ones are stored.
func ingestFixture(t *testing.T, p *pipeline) fixture {
	t.Helper()
	f := newFixture()
	one := map[string]any{
		"id": f.oneID, "timestamp": f.oneTS, "level": "error", "source": "auth-service",
		"message":  "User login failed for ünïcödé 用户",
		"metadata": map[string]any{"user": "alice", "attempt": 3, "geo": map[string]any{"country": "FR"}},
		"traceId":  "trace-abc",
	}
	r := postJSON(t, p.producer+"/api/v1/logs", one, "X-Correlation-ID", "corr-123")
	if r.status != 202 {
		t.Fatalf("POST /api/v1/logs: %d %s", r.status, r.raw)
	}
	if got := r.header.Get("X-Correlation-ID"); got != "corr-123" {
		t.Errorf("X-Correlation-ID echoed as %q", got)
	}
	if ids := r.body["ids"].([]any); len(ids) != 1 || ids[0] != f.oneID {
		t.Errorf("ids = %v, want [%s]", ids, f.oneID)
	}
	batch := append([]map[string]any{}, f.events...)
	batch = append(batch, map[string]any{"level": "INFO", "message": "no source here"})
	r = postJSON(t, p.producer+"/api/v1/logs/batch", batch)
	if r.status != 202 {
		t.Fatalf("POST /api/v1/logs/batch: %d %s", r.status, r.raw)
	}
	if r.body["accepted"] != float64(7) || r.body["rejected"] != float64(1) {
		t.Fatalf("batch answer: %s", r.raw)
	}
	errs := r.body["errors"].([]any)
	if e := errs[0].(map[string]any); e["index"] != float64(7) {
		t.Errorf("batch error %v, want index 7", e)
	}
	p.waitRows(8)
	return f
}

func TestPipelineEndToEnd(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, nil)
	f := ingestFixture(t, p)

	t.Run("every field intact", func(t *testing.T) {
		r := get(t, p.gateway+"/api/v1/logs?"+f.window()+"&traceId=trace-abc")
		content := r.body["content"].([]any)
		if len(content) != 1 {
			t.Fatalf("traceId search: %s", r.raw)
		}
		got := content[0].(map[string]any)
		want := map[string]any{
			"id": f.oneID, "timestamp": f.oneTS, "logLevel": "ERROR", "source": "auth-service",
			"message":  "User login failed for ünïcödé 用户",
			"metadata": map[string]any{"user": "alice", "attempt": float64(3), "geo": map[string]any{"country": "FR"}},
			"traceId":  "trace-abc",
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("stored log\n got %v\nwant %v", got, want)
		}
	})

	t.Run("filters", func(t *testing.T) {
		cases := []struct {
			name, query string
			messages    []string // newest first
		}{
			{"no filter", "", []string{"slow request", "Out of memory", "GET /health 200", "token refreshed for user 1000",
				"Connection TIMEOUT on db_primary", "Disk usage at 95%", "Payment processed 100% done", "User login failed for ünïcödé 用户"}},
			{"level", "logLevel=ERROR", []string{"Connection TIMEOUT on db_primary", "User login failed for ünïcödé 用户"}},
			{"level list, any case", "logLevel=error,Fatal", []string{"Out of memory", "Connection TIMEOUT on db_primary", "User login failed for ünïcödé 用户"}},
			{"WARNING is WARN", "logLevel=WARN", []string{"slow request", "Disk usage at 95%"}},
			{"source", "source=db-service", []string{"Out of memory", "Connection TIMEOUT on db_primary"}},
			{"source list", "source=db-service,api-gateway", []string{"slow request", "Out of memory", "GET /health 200", "Connection TIMEOUT on db_primary"}},
			{"keyword is case-insensitive", "keyword=timeout", []string{"Connection TIMEOUT on db_primary"}},
			{"percent is literal", "keyword=" + url.QueryEscape("%"), []string{"Disk usage at 95%", "Payment processed 100% done"}},
			{"underscore is literal", "keyword=_", []string{"Connection TIMEOUT on db_primary"}},
			{"underscore is no wildcard", "keyword=1_00", nil},
			{"level and source", "logLevel=DEBUG&source=auth-service", []string{"token refreshed for user 1000"}},
			{"window is inclusive", "", []string{"Connection TIMEOUT on db_primary", "Disk usage at 95%", "Payment processed 100% done"}},
			{"ascending", "sort=asc&size=2", []string{"User login failed for ünïcödé 用户", "Payment processed 100% done"}},
			{"metadata string", "meta.user=alice", []string{"User login failed for ünïcödé 用户"}},
			{"metadata number", "meta.attempt=3", []string{"User login failed for ünïcödé 用户"}},
			{"metadata mismatch", "meta.user=bob", nil},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				q := f.window() + "&" + c.query
				if c.name == "window is inclusive" {
					q = "startTime=" + url.QueryEscape(f.base.Add(2*time.Second).Format(time.RFC3339)) +
						"&endTime=" + url.QueryEscape(f.base.Add(4*time.Second).Format(time.RFC3339))
				}
				r := get(t, p.gateway+"/api/v1/logs?"+q)
				if r.status != 200 {
					t.Fatalf("%d %s", r.status, r.raw)
				}
				var got []string
				for _, c := range r.body["content"].([]any) {
					got = append(got, c.(map[string]any)["message"].(string))
				}
				if !reflect.DeepEqual(got, c.messages) {
					t.Errorf("messages\n got %q\nwant %q", got, c.messages)
				}
			})
		}
	})

	t.Run("page and size", func(t *testing.T) {
		r := get(t, p.gateway+"/api/v1/logs?"+f.window()+"&size=3&page=0")
		b := r.body
		if len(b["content"].([]any)) != 3 || b["totalElements"] != float64(8) || b["totalPages"] != float64(3) ||
			b["first"] != true || b["last"] != false || b["numberOfElements"] != float64(3) || b["size"] != float64(3) {
			t.Errorf("page 0: %s", r.raw)
		}
		r = get(t, p.gateway+"/api/v1/logs?"+f.window()+"&size=3&page=2")
		b = r.body
		if len(b["content"].([]any)) != 2 || b["last"] != true || b["number"] != float64(2) || b["first"] != false {
			t.Errorf("page 2: %s", r.raw)
		}
	})

	t.Run("cursor walk", func(t *testing.T) {
		seen := map[string]bool{}
		var order []string
		next := ""
		for page := 0; page < 10; page++ {
			q := f.window() + "&size=3"
			if next != "" {
				q += "&cursor=" + url.QueryEscape(next)
			}
			r := get(t, p.gateway+"/api/v1/logs?"+q)
			for _, c := range r.body["content"].([]any) {
				id := c.(map[string]any)["id"].(string)
				if seen[id] {
					t.Fatalf("id %s returned twice", id)
				}
				seen[id] = true
				order = append(order, c.(map[string]any)["timestamp"].(string))
			}
			n, _ := r.body["nextCursor"].(string)
			if n == "" {
				break
			}
			next = n
		}
		if len(seen) != 8 {
			t.Errorf("cursor walk saw %d logs, want 8", len(seen))
		}
		for i := 1; i < len(order); i++ {
			a, _ := time.Parse(time.RFC3339Nano, order[i-1])
			b, _ := time.Parse(time.RFC3339Nano, order[i])
			if b.After(a) {
				t.Errorf("cursor walk not newest first at %d: %s then %s", i, order[i-1], order[i])
			}
		}
	})

	t.Run("POST query", func(t *testing.T) {
		r := postJSON(t, p.gateway+"/api/v1/logs/query", map[string]any{
			"startTime": f.base.Format(time.RFC3339), "endTime": f.base.Add(10 * time.Second).Format(time.RFC3339),
			"logLevel": "ERROR", "source": "db-service", "size": 5,
		})
		if r.status != 200 || r.body["totalElements"] != float64(1) {
			t.Errorf("POST /api/v1/logs/query: %d %s", r.status, r.raw)
		}
	})

	t.Run("stats are exact", func(t *testing.T) {
		r := get(t, p.gateway+"/api/v1/logs/stats?"+f.window())
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		wantLevels := map[string]any{"ERROR": 2.0, "WARN": 2.0, "INFO": 2.0, "DEBUG": 1.0, "FATAL": 1.0}
		if !reflect.DeepEqual(r.body["logLevelDistribution"], wantLevels) || r.body["totalCount"] != 8.0 {
			t.Errorf("stats: %s", r.raw)
		}
		// Ties rank by name; the JSON object keeps the rank order.
		r = get(t, p.gateway+"/api/v1/logs/stats?"+f.window()+"&top=3")
		var ordered struct {
			TopSources json.RawMessage `json:"topSources"`
		}
		_ = json.Unmarshal(r.raw, &ordered)
		if want := `{"api-gateway":2,"auth-service":2,"db-service":2}`; string(ordered.TopSources) != want {
			t.Errorf("topSources = %s, want %s", ordered.TopSources, want)
		}
		r = get(t, p.gateway+"/api/v1/logs/stats?"+f.window()+"&logLevel=ERROR")
		if r.body["totalCount"] != 2.0 {
			t.Errorf("stats filtered by level: %s", r.raw)
		}
	})

	t.Run("histogram", func(t *testing.T) {
		r := get(t, p.gateway+"/api/v1/logs/histogram?"+f.window()+"&interval=5s")
		if r.status != 200 || r.body["interval"] != "5s" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		buckets := r.body["buckets"].([]any)
		// [base, base+10s] touches 3 buckets of 5 s, or 2 when base is aligned.
		if len(buckets) < 2 || len(buckets) > 3 {
			t.Fatalf("%d buckets: %s", len(buckets), r.raw)
		}
		sum := map[string]float64{}
		var total float64
		for _, b := range buckets {
			bucket := b.(map[string]any)
			var inBucket float64
			for level, n := range bucket["counts"].(map[string]any) {
				sum[level] += n.(float64)
				inBucket += n.(float64)
			}
			if inBucket != bucket["total"] {
				t.Errorf("bucket total differs from its counts: %v", bucket)
			}
			total += inBucket
		}
		want := map[string]float64{"ERROR": 2, "WARN": 2, "INFO": 2, "DEBUG": 1, "FATAL": 1}
		if total != 8 || !reflect.DeepEqual(sum, want) {
			t.Errorf("histogram sums %v (total %v), want %v: %s", sum, total, want, r.raw)
		}
		r = get(t, p.gateway+"/api/v1/logs/histogram?"+f.window())
		if r.status != 200 || r.body["interval"] == "" {
			t.Errorf("automatic interval: %d %s", r.status, r.raw)
		}
	})

	t.Run("second identical query is a cache hit", func(t *testing.T) {
		q := p.gateway + "/api/v1/logs?" + f.window() + "&source=api-gateway"
		first := get(t, q)
		second := get(t, q)
		if first.header.Get("X-Cache") != "MISS" || second.header.Get("X-Cache") != "HIT" {
			t.Errorf("X-Cache: %q then %q, want MISS then HIT", first.header.Get("X-Cache"), second.header.Get("X-Cache"))
		}
		if string(first.raw) != string(second.raw) {
			t.Errorf("cached answer differs:\n%s\n%s", first.raw, second.raw)
		}
	})

	t.Run("invalid batch event is in the DLQ with its reason", func(t *testing.T) {
		letters := readDLQ(t, p.app.KafkaBrokers(), p.cfg.Kafka.DLQTopic, 1)
		r := letters[0]
		reason, errText := "", ""
		for _, h := range r.Headers {
			switch h.Key {
			case ingest.HeaderReason:
				reason = string(h.Value)
			case ingest.HeaderError:
				errText = string(h.Value)
			}
		}
		if reason != ingest.ReasonValidation || errText == "" {
			t.Errorf("DLQ record headers %v", r.Headers)
		}
		var ev map[string]any
		if err := json.Unmarshal(r.Value, &ev); err != nil || ev["message"] != "no source here" {
			t.Errorf("DLQ record value %s", r.Value)
		}
	})

	t.Run("metrics keep the tutorial's names", func(t *testing.T) {
		body := string(get(t, p.producer+"/metrics").raw)
		for _, name := range []string{"logs_received_total", "logs_sent_total", "logs_failed_total", "logs_processed_total",
			"logs_processing_failed_total", "log_queries_total", "cache_hits_total", "cache_misses_total", "log_query_duration_seconds"} {
			if !containsMetric(body, name) {
				t.Errorf("/metrics lacks %s", name)
			}
		}
		if !containsLine(body, "logs_processed_total 8") {
			t.Errorf("logs_processed_total is not 8")
		}
	})
}

func containsMetric(body, name string) bool {
	return containsLine(body, "# TYPE "+name+" ")
}

func containsLine(body, prefix string) bool {
	for _, line := range splitLines(body) {
		if len(line) >= len(prefix) && line[:len(prefix)] == prefix {
			return true
		}
	}
	return false
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// readDLQ reads n records of the DLQ topic from the start.
func readDLQ(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d DLQ records of %d: %v", len(out), n, ctx.Err())
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func TestHealthWithRedisDown(t *testing.T) {
	t.Parallel()
	closed := freeAddr(t)
	p := startPipeline(t, func(c *configs.Config) { c.Redis.Addr = closed })
	r := get(t, p.gateway+"/api/v1/logs")
	if r.status != 200 || r.header.Get("X-Cache") != "MISS" {
		t.Errorf("query with Redis down: %d %q %s", r.status, r.header.Get("X-Cache"), r.raw)
	}
	r = get(t, p.gateway+"/actuator/health")
	if r.status != 200 || r.body["status"] != "UP" {
		t.Fatalf("health with Redis down: %d %s", r.status, r.raw)
	}
	comps := r.body["components"].(map[string]any)
	if comps["redis"].(map[string]any)["status"] != "DOWN" || comps["postgres"].(map[string]any)["status"] != "UP" {
		t.Errorf("components: %s", r.raw)
	}
}

func TestEveryRoleServesTheCommonEndpoints(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, nil)
	for _, base := range []string{p.producer, p.consumer, p.gateway} {
		for _, path := range []string{"/", "/healthz", "/readyz", "/actuator/health", "/metrics", "/actuator/prometheus"} {
			r := get(t, base+path)
			if r.status != 200 {
				t.Errorf("GET %s%s: %d %s", base, path, r.status, r.raw)
			}
		}
		if r := get(t, base+"/"); r.body["status"] != "running" {
			t.Errorf("GET %s/: %s", base, r.raw)
		}
	}
	if r := get(t, p.gateway+"/no/such/path"); r.status != 404 || r.body["error"] == nil {
		t.Errorf("unknown path: %d %s", r.status, r.raw)
	}
}

package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/resilience/resiliencetest"
)

// grafanaFixture is one request of Grafana's Loki data source and the
// exact answer it must get (testdata/grafana/README.md).
type grafanaFixture struct {
	Comment string `json:"comment"`
	Request struct {
		Method string            `json:"method"`
		Path   string            `json:"path"`
		Params map[string]string `json:"params"`
	} `json:"request"`
	Status        int             `json:"status"`
	Response      json.RawMessage `json:"response"`
	ErrorContains string          `json:"error_contains"`
}

var fixtureTime = regexp.MustCompile(`\$(ns|sec):([0-9a-z]+)\$`)

// TestGrafanaFixtures stores a small set of logs through the pipeline and
// replays Grafana's requests against the gateway's Loki API, comparing
// every answer with the fixture's, exactly.
func TestGrafanaFixtures(t *testing.T) {
	p := startPipeline(t, nil)
	// A base time in the past, on a whole hour, so that windows are
	// closed and minute steps align.
	base := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	at := func(d time.Duration) string { return base.Add(d).Format(time.RFC3339Nano) }
	batch := []map[string]any{
		{"timestamp": at(10 * time.Second), "level": "INFO", "source": "api", "message": "GET /users 200", "metadata": map[string]any{"region": "eu"}},
		{"timestamp": at(20 * time.Second), "level": "ERROR", "source": "api", "message": "GET /orders 500 timeout", "metadata": map[string]any{"region": "us"}},
		{"timestamp": at(70 * time.Second), "level": "WARN", "source": "db", "message": "slow query took 2s"},
		{"timestamp": at(80 * time.Second), "level": "ERROR", "source": "db", "message": `{"status":503,"msg":"db down"}`},
		{"timestamp": at(130 * time.Second), "level": "INFO", "source": "web", "message": "status=200 path=/ dur=0.5"},
		{"timestamp": at(135 * time.Second), "level": "DEBUG", "source": "web", "message": "cache miss"},
	}
	if r := postJSON(t, p.producer+"/api/v1/logs/batch", batch); r.status != 202 {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	p.waitProcessed(float64(len(batch)))

	files, err := filepath.Glob("testdata/grafana/*.json")
	if err != nil || len(files) < 15 {
		t.Fatalf("fixtures: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			text := fixtureTime.ReplaceAllStringFunc(string(raw), func(m string) string {
				parts := fixtureTime.FindStringSubmatch(m)
				d, err := time.ParseDuration(parts[2])
				if err != nil {
					t.Fatalf("%s: %v", m, err)
				}
				ts := base.Add(d)
				if parts[1] == "ns" {
					return strconv.FormatInt(ts.UnixNano(), 10)
				}
				return strconv.FormatInt(ts.Unix(), 10)
			})
			var fx grafanaFixture
			if err := json.Unmarshal([]byte(text), &fx); err != nil {
				t.Fatalf("fixture: %v", err)
			}
			q := url.Values{}
			for k, v := range fx.Request.Params {
				q.Set(k, v)
			}
			r := do(t, fx.Request.Method, p.gateway+fx.Request.Path+"?"+q.Encode(), "", nil,
				"X-Query-Tags", "Source=grafana", "User-Agent", "Grafana/11.3.0")
			if r.status != fx.Status {
				t.Fatalf("%s: status %d, want %d: %s", fx.Comment, r.status, fx.Status, r.raw)
			}
			if fx.ErrorContains != "" {
				if msg, _ := r.body["error"].(string); !strings.Contains(msg, fx.ErrorContains) {
					t.Errorf("%s: error %q, want it to name %q", fx.Comment, r.raw, fx.ErrorContains)
				}
				return
			}
			var got, want any
			if err := json.Unmarshal(r.raw, &got); err != nil {
				t.Fatalf("answer is not JSON: %s", r.raw)
			}
			if err := json.Unmarshal(fx.Response, &want); err != nil {
				t.Fatal(err)
			}
			if data, ok := got.(map[string]any)["data"].(map[string]any); ok && strings.Contains(fx.Request.Path, "query") {
				stats, ok := data["stats"].(map[string]any)
				if _, hasSummary := stats["summary"].(map[string]any); !ok || !hasSummary {
					t.Errorf("%s: no stats object with a summary: %s", fx.Comment, r.raw)
				}
				delete(data, "stats")
			}
			if !reflect.DeepEqual(got, want) {
				gotJSON, _ := json.Marshal(got)
				wantJSON, _ := json.Marshal(want)
				t.Errorf("%s:\n got %s\nwant %s", fx.Comment, gotJSON, wantJSON)
			}
		})
	}
}

// TestLokiMetricsFromRollupsMatchScanning: a volume query the rollups
// answer and the same query read log by log agree, over many logs and
// a window whose steps do not start on a bucket.
func TestLokiMetricsFromRollupsMatchScanning(t *testing.T) {
	p := startPipeline(t, nil)
	base := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	levels := []string{"INFO", "WARN", "ERROR", "DEBUG"}
	var batch []map[string]any
	for i := range 600 {
		batch = append(batch, map[string]any{
			"timestamp": base.Add(time.Duration(i*7919%3600) * time.Second).Format(time.RFC3339),
			"level":     levels[i%len(levels)], "source": []string{"a", "b", "c"}[i%3], "message": "event " + strconv.Itoa(i),
		})
	}
	if r := postJSON(t, p.producer+"/api/v1/logs/batch", batch); r.status != 202 {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	p.waitProcessed(float64(len(batch)))
	for _, step := range []string{"60000ms", "300000ms", "90000ms"} {
		ask := func(query string) []any {
			q := url.Values{"query": {query}, "start": {strconv.FormatInt(base.UnixNano(), 10)},
				"end": {strconv.FormatInt(base.Add(time.Hour).UnixNano(), 10)}, "step": {step}}
			r := get(t, p.gateway+"/loki/api/v1/query_range?"+q.Encode())
			if r.status != 200 {
				t.Fatalf("%s: %d %s", query, r.status, r.raw)
			}
			return r.body["data"].(map[string]any)["result"].([]any)
		}
		fromRollups := ask(`sum by (level) (count_over_time({source="b"}[5m]))`)
		scanned := ask(`sum by (level) (count_over_time({source=~"b"}[5m]))`)
		if !reflect.DeepEqual(fromRollups, scanned) || len(fromRollups) != 4 {
			t.Errorf("step %s: rollups and scanning disagree:\n rollups %v\n scanned %v", step, fromRollups, scanned)
		}
		// Rates are the same sums divided in another order: equal to
		// rounding.
		total := ask(`sum(rate({level=~".+"}[5m]))`)
		totalScanned := ask(`sum(rate({source=~".*"}[5m]))`)
		if !sameSamples(total, totalScanned) {
			t.Errorf("step %s: totals disagree:\n rollups %v\n scanned %v", step, total, totalScanned)
		}
	}
}

// sameSamples compares two matrices, values to a relative 1e-12.
func sameSamples(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		sa, sb := a[i].(map[string]any), b[i].(map[string]any)
		if !reflect.DeepEqual(sa["metric"], sb["metric"]) {
			return false
		}
		va, vb := sa["values"].([]any), sb["values"].([]any)
		if len(va) != len(vb) {
			return false
		}
		for j := range va {
			pa, pb := va[j].([]any), vb[j].([]any)
			x, _ := strconv.ParseFloat(pa[1].(string), 64)
			y, _ := strconv.ParseFloat(pb[1].(string), 64)
			if pa[0] != pb[0] || math.Abs(x-y) > 1e-12*math.Max(math.Abs(x), math.Abs(y)) {
				return false
			}
		}
	}
	return true
}

func TestLokiTailWebsocket(t *testing.T) {
	p := startPipeline(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u := "ws" + strings.TrimPrefix(p.gateway, "http") + "/loki/api/v1/tail?" + url.Values{"query": {`{source="ws"} |= "hello"`}}.Encode()
	conn := dialTail(ctx, t, u, nil)
	defer conn.CloseNow()
	batch := []map[string]any{
		{"message": "goodbye", "level": "INFO", "source": "ws"},
		{"message": "hello from ws", "level": "WARN", "source": "ws", "metadata": map[string]any{"pod": "p-1"}},
		{"message": "hello elsewhere", "level": "INFO", "source": "other"},
	}
	if r := postJSON(t, p.producer+"/api/v1/logs/batch", batch); r.status != 202 {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	var msg struct {
		Streams []struct {
			Stream map[string]string `json:"stream"`
			Values [][2]string       `json:"values"`
		} `json:"streams"`
		Dropped any `json:"dropped_entries"`
	}
	_, data, err := conn.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &msg); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
	if len(msg.Streams) != 1 || len(msg.Streams[0].Values) != 1 {
		t.Fatalf("message %s, want one stream of one line", data)
	}
	s := msg.Streams[0]
	if !reflect.DeepEqual(s.Stream, map[string]string{"level": "warn", "source": "ws", "pod": "p-1"}) || s.Values[0][1] != "hello from ws" {
		t.Errorf("message %s", data)
	}
	if ns, err := strconv.ParseInt(s.Values[0][0], 10, 64); err != nil || time.Since(time.Unix(0, ns)) > time.Minute {
		t.Errorf("timestamp %q is not a recent Unix nanosecond time", s.Values[0][0])
	}
	if !strings.Contains(string(data), `"dropped_entries":null`) {
		t.Errorf("no dropped_entries: %s", data)
	}
	// A bad query is refused before the upgrade.
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(p.gateway, "http")+"/loki/api/v1/tail?query="+url.QueryEscape(`{a="b"} | line_format "x"`), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unsupported tail query: %v %v", err, resp)
	}
}

// TestLokiScanLimit: a query whose filters are checked log by log stops
// at --loki-max-scan with 422, while one the store filters is answered.
func TestLokiScanLimit(t *testing.T) {
	p := startPipeline(t, func(c *configs.Config) { c.Loki.MaxScan = 50 })
	var batch []map[string]any
	for i := range 120 {
		batch = append(batch, map[string]any{"level": "INFO", "source": []string{"a", "b"}[i%2], "message": "line " + strconv.Itoa(i)})
	}
	if r := postJSON(t, p.producer+"/api/v1/logs/batch", batch); r.status != 202 {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	p.waitProcessed(float64(len(batch)))
	ask := func(query string) response {
		return get(t, p.gateway+"/loki/api/v1/query_range?"+url.Values{"query": {query}, "limit": {"5000"}}.Encode())
	}
	if r := ask(`{source=~"a"} |~ "line 1.*"`); r.status != 422 || !strings.Contains(r.body["error"].(string), "loki-max-scan") {
		t.Errorf("a scan past the limit: %d %s", r.status, r.raw)
	}
	r := ask(`{source="a"}`)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	result := r.body["data"].(map[string]any)["result"].([]any)
	if len(result) != 1 || len(result[0].(map[string]any)["values"].([]any)) != 60 {
		t.Errorf("{source=\"a\"}: %s", r.raw)
	}
}

// dialTail opens Loki's tail websocket at u, waiting while the gateway's
// tail is not ready yet (503).
func dialTail(ctx context.Context, t *testing.T, u string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	var conn *websocket.Conn
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		c, resp, err := websocket.Dial(ctx, u, opts)
		if err != nil {
			if resp != nil && resp.StatusCode == http.StatusServiceUnavailable {
				return false, "tail not ready"
			}
			t.Fatalf("dial: %v", err)
		}
		conn = c
		return true, ""
	})
	return conn
}

// TestLokiTailWebsocketDropsASlowClient: a websocket client that does not
// read is closed with "try again later" and the reason, once its buffer
// is full, instead of growing the gateway's memory.
func TestLokiTailWebsocketDropsASlowClient(t *testing.T) {
	// No ping: the client does not read, so a ping would wait for its pong
	// and end the stream before the buffer shows it slow (on a loaded
	// machine the flood takes a while to reach the tail).
	p := startPipeline(t, func(c *configs.Config) { c.Tail.Buffer = 2; c.Tail.PingInterval = time.Hour })
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	opts := &websocket.DialOptions{HTTPClient: tinyWindowClient()}
	u := "ws" + strings.TrimPrefix(p.gateway, "http") + "/loki/api/v1/tail?" + url.Values{"query": {`{source="flood"}`}}.Encode()
	conn := dialTail(ctx, t, u, opts)
	defer conn.CloseNow()
	conn.SetReadLimit(-1)
	// Modest lines: enough to fill the socket's buffers in a few hundred,
	// without flooding a loaded machine's pipeline with hundreds of MB.
	big := strings.Repeat("y", 8000)
	sent := 0
	resiliencetest.Eventually(t, 150*time.Second, func() (bool, string) {
		batch := make([]map[string]any, 20)
		for i := range batch {
			batch[i] = map[string]any{"message": strconv.Itoa(sent+i) + " " + big, "level": "INFO", "source": "flood"}
		}
		if r := postJSON(t, p.producer+"/api/v1/logs/batch", batch); r.status != 202 {
			t.Fatalf("batch: %d %s", r.status, r.raw)
		}
		sent += len(batch)
		return p.metric("tail_dropped_total") >= 1, fmt.Sprintf("%d logs sent, the slow client was not dropped", sent)
	})
	// Reading now: the messages written before the drop, then the close.
	lines := 0
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			if status := websocket.CloseStatus(err); status != websocket.StatusTryAgainLater {
				t.Fatalf("the stream ended with %v (status %d), want status %d", err, status, websocket.StatusTryAgainLater)
			}
			var ce websocket.CloseError
			if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "did not keep up") {
				t.Errorf("close reason %q", ce.Reason)
			}
			break
		}
		lines += strings.Count(string(data), big)
	}
	if lines >= sent {
		t.Errorf("the slow client got all %d lines: it was never behind", sent)
	}
}

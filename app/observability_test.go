package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/resilience/resiliencetest"
	"go.yaml.in/yaml/v3"
)

// The files under test, relative to the repository root.
const (
	obsDashboardFile  = "configs/grafana/dashboards/logengine.json"
	obsAlertsFile     = "configs/alerts.yml"
	obsAlertTestsFile = "configs/alerts_test.yml"
	obsPromConfigFile = "configs/prometheus.yml"
)

// obsRepoRoot is the repository root, found from this file's path.
func obsRepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// obsTool finds promtool or prometheus, and fails the test when it is missing:
// these checks must not pass silently on a machine without them.
func obsTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: run `make test` (its services step installs Prometheus, which "+
			"provides promtool and prometheus, when run as root with apt-get) or install it yourself "+
			"(Debian/Ubuntu: apt-get install prometheus)", name)
	}
	return path
}

// obsFamilies are the metric families every role's /metrics must carry once
// logs went through the pipeline and were queried; the dashboard and the
// alerts rely on them. breaker_transitions_total and the kafka_*_errors_total
// families only appear after a failure.
var obsFamilies = []string{
	// producer
	"logs_received_total", "logs_sent_total", "logs_failed_total", "logs_rejected_total",
	"logs_received_bytes_total", "logs_accept_duration_seconds", "dlq_records_total",
	// consumer
	"logs_processed_total", "logs_processing_failed_total", "consumer_batch_size",
	"consumer_flush_duration_seconds", "consumer_write_retries_total", "consumer_commit_failures_total",
	"logs_end_to_end_seconds", "consumer_committed_offset", "consumer_lag_records",
	// gateway, cache and breakers
	"log_queries_total", "log_query_duration_seconds", "cache_hits_total", "cache_misses_total",
	"cache_errors_total", "cache_operation_duration_seconds", "breaker_state",
	// store
	"store_rows_written_total", "store_write_duration_seconds", "store_query_duration_seconds",
	"store_partitions_dropped_total", "store_blocks_merged_total", "store_rows_merged_total", "store_merge_duration_seconds", "consumer_records_deleted_total", "consumer_skipped_total",
	"store_pool_acquired_conns", "store_pool_total_conns",
	// every listener
	"http_requests_total", "http_request_duration_seconds",
	// Kafka clients (kprom)
	"kafka_produce_records_total", "kafka_fetch_records_total", "kafka_request_duration_e2e_seconds",
	"kafka_buffered_produce_records", "kafka_buffered_fetch_records",
	"kafka_connects_total", "kafka_read_bytes_total", "kafka_write_bytes_total",
	// Go runtime and process collectors
	"go_goroutines", "go_threads", "go_memstats_heap_alloc_bytes", "go_gc_duration_seconds",
	"process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
}

// obsFailureOnly are families that exist only after something failed; the
// dashboard draws them as 0 until then.
var obsFailureOnly = []string{
	"breaker_transitions_total", "kafka_connect_errors_total", "kafka_read_errors_total", "kafka_write_errors_total",
}

// obsTraffic sends one round of what a busy pipeline sees: a batch of valid
// events with one invalid (a rejection and a dead letter), and queries of a
// closed window (a miss, then hits) and of a window ending now. It never
// fails the test: it also runs on a goroutine; errors are returned.
func obsTraffic(client *http.Client, p *pipeline, round int, invalid bool) error {
	now := time.Now().UTC()
	batch := []map[string]any{
		{"id": uuid.NewString(), "level": "INFO", "source": "observability", "message": fmt.Sprintf("round %d", round)},
		{"id": uuid.NewString(), "level": "ERROR", "source": "observability-" + strconv.Itoa(round%5), "message": "something failed"},
		{"id": uuid.NewString(), "timestamp": now.Add(-2 * time.Hour).Format(time.RFC3339Nano), "level": "WARN", "source": "observability", "message": "late"},
	}
	if invalid {
		batch = append(batch, map[string]any{"level": "INFO", "message": "no source"}) // rejected, dead letter
	}
	body, _ := json.Marshal(batch)
	var errs []error
	status := func(method, u, contentType string, body []byte) {
		req, err := http.NewRequest(method, u, bytes.NewReader(body))
		if err != nil {
			errs = append(errs, err)
			return
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := client.Do(req)
		if err != nil {
			errs = append(errs, err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			errs = append(errs, fmt.Errorf("%s %s: %d", method, u, resp.StatusCode))
		}
	}
	status(http.MethodPost, p.producer+"/api/v1/logs/batch", "application/json", body)
	// Hours apart from the late event's, whose writes would invalidate it.
	closed := windowQuery(now.Add(-6*time.Hour).Truncate(time.Hour), now.Add(-5*time.Hour).Truncate(time.Hour))
	hot := windowQuery(now.Add(-time.Hour), now.Add(time.Minute))
	for _, path := range []string{
		"/api/v1/logs?" + closed, "/api/v1/logs?" + closed, // a miss, then hits
		"/api/v1/logs/stats?" + closed,
		"/api/v1/logs/histogram?interval=1m&" + hot,
		"/api/v1/logs?source=observability&" + hot,
	} {
		status(http.MethodGet, p.gateway+path, "", nil)
	}
	return errors.Join(errs...)
}

// TestPromtoolChecksMetrics lints every role's /metrics with `promtool check
// metrics` once every metric family has samples.
func TestPromtoolChecksMetrics(t *testing.T) {
	t.Parallel()
	promtool := obsTool(t, "promtool")
	p := startPipeline(t, nil)
	for round := range 3 {
		if err := obsTraffic(http.DefaultClient, p, round, true); err != nil {
			t.Fatal(err)
		}
	}
	p.waitProcessed(9)
	// Once more: the closed window answers from the cache, and the consumer
	// has committed (lag and offsets are set).
	if err := obsTraffic(http.DefaultClient, p, 3, true); err != nil {
		t.Fatal(err)
	}
	p.waitProcessed(12)

	roles := []struct{ name, url string }{{"producer", p.producer}, {"consumer", p.consumer}, {"gateway", p.gateway}}
	for _, role := range roles {
		t.Run(role.name, func(t *testing.T) {
			r := get(t, role.url+"/metrics")
			if r.status != http.StatusOK {
				t.Fatalf("GET /metrics: %d", r.status)
			}
			text := string(r.raw)
			for _, name := range obsFamilies {
				if !strings.Contains(text, "\n# TYPE "+name+" ") {
					t.Errorf("metric family %s has no samples", name)
				}
			}
			if !containsLine(text, `cache_hits_total{tier="local"}`) && !containsLine(text, `cache_hits_total{tier="closed"}`) {
				t.Errorf("no cache hit counted")
			}

			// Every finding fails, third-party names included: what the
			// process exports is logengine's to keep clean.
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = bytes.NewReader(r.raw)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("promtool check metrics: %v", err)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if line != "" {
					t.Errorf("promtool: %s", line)
				}
			}
		})
	}
}

// TestAlertRules validates the alerting rules, runs their unit tests and
// checks the compose stack's Prometheus configuration that loads them.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	promtool := obsTool(t, "promtool")
	root := obsRepoRoot()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(promtool, args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		} else {
			t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
		}
	}
	run("check", "rules", obsAlertsFile)
	run("test", "rules", obsAlertTestsFile)

	// configs/prometheus.yml names the rules where compose.yaml mounts them.
	raw, err := os.ReadFile(filepath.Join(root, obsPromConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	const mounted = "/etc/prometheus/alerts.yml"
	if !bytes.Contains(raw, []byte(mounted)) {
		t.Fatalf("%s does not load %s", obsPromConfigFile, mounted)
	}
	compose, err := os.ReadFile(filepath.Join(root, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(compose, []byte("./"+obsAlertsFile+":"+mounted)) {
		t.Errorf("compose.yaml does not mount %s at %s", obsAlertsFile, mounted)
	}
	local := filepath.Join(t.TempDir(), "prometheus.yml")
	raw = bytes.ReplaceAll(raw, []byte(mounted), []byte(filepath.Join(root, obsAlertsFile)))
	if err := os.WriteFile(local, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	run("check", "config", local)
}

// obsPanel is a dashboard panel, rows' nested panels included.
type obsPanel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource *obsDatasource           `json:"datasource"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		Expr       string         `json:"expr"`
		RefID      string         `json:"refId"`
		Datasource *obsDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []obsPanel `json:"panels"`
}

type obsDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type obsDashboard struct {
	Title  string     `json:"title"`
	UID    string     `json:"uid"`
	Panels []obsPanel `json:"panels"`
}

func obsLoadDashboard(t *testing.T) obsDashboard {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(obsRepoRoot(), obsDashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var d obsDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", obsDashboardFile, err)
	}
	return d
}

// obsWalk calls fn for every panel, recursively.
func obsWalk(panels []obsPanel, fn func(obsPanel)) {
	for _, p := range panels {
		fn(p)
		obsWalk(p.Panels, fn)
	}
}

// obsQuery is one PromQL expression and where it comes from.
type obsQuery struct{ from, expr string }

// obsDashboardQueries lists every target expression of the dashboard.
func obsDashboardQueries(d obsDashboard) []obsQuery {
	var qs []obsQuery
	obsWalk(d.Panels, func(p obsPanel) {
		for _, tg := range p.Targets {
			qs = append(qs, obsQuery{fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID), tg.Expr})
		}
	})
	return qs
}

// obsAlertQueries lists the alert names and expressions of configs/alerts.yml.
func obsAlertQueries(t *testing.T) []obsQuery {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(obsRepoRoot(), obsAlertsFile))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatalf("%s: %v", obsAlertsFile, err)
	}
	var qs []obsQuery
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			qs = append(qs, obsQuery{r.Alert, strings.TrimSpace(r.Expr)})
		}
	}
	if len(qs) == 0 {
		t.Fatalf("%s holds no rules", obsAlertsFile)
	}
	return qs
}

// TestDashboardDefinition checks the dashboard's identity and layout.
func TestDashboardDefinition(t *testing.T) {
	t.Parallel()
	d := obsLoadDashboard(t)
	if d.Title != "Log Processor System Dashboard" || d.UID != "logengine" {
		t.Errorf("title %q uid %q", d.Title, d.UID)
	}
	ids := map[int]string{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	obsWalk(d.Panels, func(p obsPanel) {
		if other, ok := ids[p.ID]; ok {
			t.Errorf("panels %q and %q share the id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := used[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap", other, p.Title)
					return
				}
				used[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			return
		}
		if p.Datasource == nil || p.Datasource.UID != "prometheus" {
			t.Errorf("panel %q: datasource %+v, want uid prometheus", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" || tg.Datasource == nil || tg.Datasource.UID != "prometheus" {
				t.Errorf("panel %q: incomplete target %+v", p.Title, tg)
			}
		}
	})
}

// obsMetricName matches the metric names in an expression (label names and
// functions do not start with these prefixes).
var obsMetricName = regexp.MustCompile(`\b(?:logs|log|dlq|consumer|store|cache|breaker|http|kafka|go|process|auth)_[a-z0-9_]*[a-z0-9]\b`)

// obsPrometheus is a Prometheus server run for one test.
type obsPrometheus struct {
	url string
	out *lockedBuffer
}

// obsStartPrometheus runs prometheus with a configuration scraping the
// pipeline's three listeners every second and evaluating configs/alerts.yml;
// it is stopped when the test ends.
func obsStartPrometheus(t *testing.T, binary string, p *pipeline) *obsPrometheus {
	t.Helper()
	dir := t.TempDir()
	target := func(base string) string { return strings.TrimPrefix(base, "http://") }
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: logengine
    honor_labels: true
    static_configs:
      - targets: [%q]
        labels: {role: producer}
      - targets: [%q]
        labels: {role: consumer}
      - targets: [%q]
        labels: {role: gateway}
`, filepath.Join(obsRepoRoot(), obsAlertsFile), target(p.producer), target(p.consumer), target(p.gateway))
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	// The port is free when chosen; another process may take it before
	// prometheus listens, so a failed start is tried again on another one.
	var lastOut string
	for attempt := 0; attempt < 3; attempt++ {
		addr := freeAddr(t)
		out := &lockedBuffer{}
		cmd := exec.Command(binary,
			"--config.file="+configFile,
			"--storage.tsdb.path="+filepath.Join(dir, fmt.Sprintf("data%d", attempt)),
			"--web.listen-address="+addr,
			"--log.level=warn",
		)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start prometheus: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := sync.OnceFunc(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
		t.Cleanup(func() {
			stop()
			if t.Failed() {
				t.Logf("prometheus output:\n%s", out.String())
			}
		})
		prom := &obsPrometheus{url: "http://" + addr, out: out}
		ready := false
		resiliencetest.Eventually(t, 15*time.Second, func() (bool, string) {
			select {
			case err := <-exited:
				// Gone, maybe because its port was taken: see below.
				exited <- err // for stop
				return true, ""
			default:
			}
			resp, err := http.Get(prom.url + "/-/ready")
			if err != nil {
				return false, fmt.Sprintf("prometheus not ready: %v", err)
			}
			resp.Body.Close()
			ready = resp.StatusCode == http.StatusOK
			return ready, fmt.Sprintf("prometheus not ready: /-/ready answers %d", resp.StatusCode)
		})
		if ready {
			return prom
		}
		stop()
		lastOut = out.String()
		if !strings.Contains(lastOut, "address already in use") {
			break
		}
	}
	t.Fatalf("prometheus did not become ready:\n%s", lastOut)
	return nil
}

// api calls a Prometheus HTTP API endpoint and decodes data into v.
func (pr *obsPrometheus) api(path string, params url.Values, v any) error {
	resp, err := http.Get(pr.url + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var envelope struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &envelope); err != nil {
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, raw)
	}
	if envelope.Status != "success" {
		return fmt.Errorf("%s: status %s: %s: %s", path, envelope.Status, envelope.ErrorType, envelope.Error)
	}
	return json.Unmarshal(envelope.Data, v)
}

// query evaluates expr now and returns its samples' values.
func (pr *obsPrometheus) query(expr string) ([]float64, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := pr.api("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	var values [][2]any
	switch data.ResultType {
	case "vector":
		var samples []struct {
			Value [2]any `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &samples); err != nil {
			return nil, err
		}
		for _, s := range samples {
			values = append(values, s.Value)
		}
	case "scalar":
		var s [2]any
		if err := json.Unmarshal(data.Result, &s); err != nil {
			return nil, err
		}
		values = append(values, s)
	default:
		return nil, fmt.Errorf("result type %s", data.ResultType)
	}
	var out []float64
	for _, v := range values {
		s, _ := v[1].(string)
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("value %v: %w", v[1], err)
		}
		out = append(out, f)
	}
	return out, nil
}

// TestDashboardAndAlertQueriesReturnData runs a real Prometheus against a
// busy pipeline, with the alerting rules loaded, and evaluates every query of
// the dashboard (each must return data) and of the alerts (each must be valid).
func TestDashboardAndAlertQueriesReturnData(t *testing.T) {
	t.Parallel()
	binary := obsTool(t, "prometheus")
	dashboard := obsDashboardQueries(obsLoadDashboard(t))
	alerts := obsAlertQueries(t)
	p := startPipeline(t, func(c *configs.Config) {
		// A read replica that is none (the primary itself): reported down,
		// which is enough for the replica panels to have data.
		c.Replicas.URLs = []string{c.Postgres.URL}
	})

	// Traffic until the test ends: a batch every 100 ms (every fifth with an
	// invalid event, for the rejection and dead-letter metrics) and queries.
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg       sync.WaitGroup
		rounds   atomic.Int64
		failures atomic.Int64
		lastErr  atomic.Value
	)
	client := &http.Client{Timeout: 10 * time.Second}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for round := 0; ; round++ {
			if err := obsTraffic(client, p, round, round%5 == 0); err != nil && ctx.Err() == nil {
				failures.Add(1)
				lastErr.Store(err.Error())
			}
			rounds.Add(1)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		client.CloseIdleConnections()
	})

	prom := obsStartPrometheus(t, binary, p)

	// Wait for every target to be up and scraped a few times (rate over 1m
	// needs two samples; more make the rates steadier).
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		v, err := prom.query(`min(count_over_time(up{job="logengine"}[1m])) >= 8 and on() count(up{job="logengine"} == 1) == 3`)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) == 1 {
			return true, ""
		}
		var targets any
		_ = prom.api("/api/v1/targets", nil, &targets)
		return false, fmt.Sprintf("targets not up and scraped 8 times: %v", targets)
	})
	p.waitProcessed(1)

	// The rules are loaded and evaluate without error.
	want := map[string]bool{}
	for _, a := range alerts {
		want[a.from] = true
	}
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		var rules struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name      string `json:"name"`
					Type      string `json:"type"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := prom.api("/api/v1/rules", nil, &rules); err != nil {
			t.Fatal(err)
		}
		var problems []string
		seen := map[string]bool{}
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				seen[r.Name] = true
				if g.Name != "logengine" || r.Type != "alerting" || r.Health != "ok" {
					problems = append(problems, fmt.Sprintf("group %s rule %s: type %s health %s %s", g.Name, r.Name, r.Type, r.Health, r.LastError))
				}
			}
		}
		for name := range want {
			if !seen[name] {
				problems = append(problems, "rule "+name+" not loaded")
			}
		}
		return len(problems) == 0, "rules:\n" + strings.Join(problems, "\n")
	})

	// Every metric the queries use exists, unless it only appears on failures.
	var names []string
	if err := prom.api("/api/v1/label/__name__/values", nil, &names); err != nil {
		t.Fatal(err)
	}
	for _, q := range append(slices.Clone(dashboard), alerts...) {
		for _, name := range obsMetricName.FindAllString(q.expr, -1) {
			if !slices.Contains(names, name) && !slices.Contains(obsFailureOnly, name) {
				t.Errorf("%s: metric %s not scraped\n  %s", q.from, name, q.expr)
			}
		}
	}

	for _, q := range dashboard {
		values, err := prom.query(q.expr)
		switch {
		case err != nil:
			t.Errorf("%s: %v\n  %s", q.from, err, q.expr)
		case len(values) == 0:
			t.Errorf("%s: no data\n  %s", q.from, q.expr)
		case !slices.ContainsFunc(values, func(v float64) bool { return !math.IsNaN(v) }):
			t.Errorf("%s: only NaN\n  %s", q.from, q.expr)
		}
	}
	for _, q := range alerts {
		values, err := prom.query(q.expr)
		if err != nil {
			t.Errorf("alert %s: %v\n  %s", q.from, err, q.expr)
		} else if len(values) > 0 {
			t.Logf("alert %s would fire now: %v", q.from, values)
		}
	}
	t.Logf("%d dashboard and %d alert queries evaluated; %d traffic rounds, %d with errors %v",
		len(dashboard), len(alerts), rounds.Load(), failures.Load(), lastErr.Load())
}

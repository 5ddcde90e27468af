package loadtest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/app"
	"github.com/logengine/logengine/app/apptest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, apptest.LeakOptions()...)
}

// pipeline is logengine with every role in this process, on its own
// database, cache prefix and ephemeral ports.
type pipeline struct {
	producer, gateway string
}

func startPipeline(t *testing.T) pipeline {
	t.Helper()
	a := apptest.Start(t, apptest.Config(t), &apptest.LockedBuffer{})
	return pipeline{
		producer: "http://" + a.Addr(app.RoleProducer),
		gateway:  "http://" + a.Addr(app.RoleGateway),
	}
}

func TestRunVerifiesEveryAcceptedLog(t *testing.T) {
	t.Parallel()
	p := startPipeline(t)
	cfg := DefaultConfig()
	cfg.ProducerURLs = []string{p.producer}
	cfg.GatewayURL = p.gateway
	cfg.Count = 3000
	cfg.BatchSize = 100
	cfg.ClientIDs = true
	cfg.Concurrency = 2
	cfg.QueryRate = 20
	cfg.JSON = true
	cfg.VerifyTimeout = time.Minute
	var out, progress bytes.Buffer
	rep, err := Run(t.Context(), cfg, &out, &progress)
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s\nreport:\n%s", err, progress.String(), out.String())
	}
	t.Logf("sent in %.1fs, verified in %.1fs", rep.DurationSeconds, rep.VerifySeconds)
	if rep.Accepted != 3000 || rep.Lost != 0 || rep.Duplicates != 0 || !rep.Verified || rep.Verification != "walk" {
		t.Errorf("accepted %d, lost %d, duplicates %d, verified %v by %q; want 3000, 0, 0, true by walk",
			rep.Accepted, rep.Lost, rep.Duplicates, rep.Verified, rep.Verification)
	}
	if rep.AcceptLatency.Count != 30 || rep.Requests < 30 {
		t.Errorf("%d requests, %d accept latencies; want 30 accepted batches", rep.Requests, rep.AcceptLatency.Count)
	}
	if rep.VisibilityLatency.Count == 0 || rep.VisibilityLatency.P50 <= 0 {
		t.Errorf("visibility latency %+v, want samples", rep.VisibilityLatency)
	}
	mix, _ := parseMix(DefaultQueryMix)
	for _, k := range mix {
		q, ok := rep.Queries[k.kind]
		if !ok || q.Count == 0 {
			t.Errorf("query kind %s: %+v, want answered queries", k.kind, q)
			continue
		}
		var cached int64
		for _, n := range q.Cache {
			cached += n
		}
		if cached != q.Count || q.P50 <= 0 || len(q.Errors) > 0 {
			t.Errorf("query kind %s: %+v", k.kind, q)
		}
	}
	if !strings.Contains(progress.String(), "loadtest run "+rep.RunID) {
		t.Errorf("progress lacks the run id:\n%s", progress.String())
	}

	// --json prints exactly one object with every field.
	dec := json.NewDecoder(&out)
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("report is not JSON: %v", err)
	}
	if dec.More() {
		t.Error("more than one JSON value in the report")
	}
	for _, field := range []string{
		"run_id", "accepted", "rejected", "failed", "lost", "duplicates", "verified", "verification",
		"accepted_per_second", "accept_latency_ms", "visibility_latency_ms", "queries", "errors",
		"peak_rss_bytes", "duration_seconds", "settings",
	} {
		if _, ok := doc[field]; !ok {
			t.Errorf("JSON report lacks %q", field)
		}
	}
	if lat, _ := doc["accept_latency_ms"].(map[string]any); lat == nil || lat["p50"] == nil || lat["p95"] == nil || lat["p99"] == nil {
		t.Errorf("accept_latency_ms = %v", doc["accept_latency_ms"])
	}
	if q, _ := doc["queries"].(map[string]any); q == nil || q["stats"] == nil {
		t.Errorf("queries = %v", doc["queries"])
	} else if s := q["stats"].(map[string]any); s["cache_hit_share"] == nil || s["p95"] == nil {
		t.Errorf("queries.stats = %v", s)
	}
	if doc["peak_rss_bytes"].(float64) <= 0 {
		t.Errorf("peak_rss_bytes = %v; the producer's metrics have it", doc["peak_rss_bytes"])
	}
}

// A paced run sends about rate × duration logs; large runs are verified
// by a sample looked up by trace id.
func TestRunPacesToRateAndVerifiesBySample(t *testing.T) {
	t.Parallel()
	p := startPipeline(t)
	cfg := DefaultConfig()
	cfg.ProducerURLs = []string{p.producer, p.producer}
	cfg.GatewayURL = p.gateway
	cfg.Rate = 500
	cfg.Duration = 2 * time.Second
	cfg.BatchSize = 25
	// Workers share one schedule: more of them do not raise the rate, they
	// only keep slow answers (a busy machine) from holding it back. 40
	// workers cover the 40 slots of 2 s even if every answer took 2 s.
	cfg.Concurrency = 40
	cfg.QueryRate = 0
	cfg.VerifyTimeout = time.Minute
	cfg.walkLimit = 100
	var out, progress bytes.Buffer
	rep, err := Run(t.Context(), cfg, &out, &progress)
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s\nreport:\n%s", err, progress.String(), out.String())
	}
	t.Logf("report:\n%s", out.String())
	if rep.Accepted < 600 || rep.Accepted > 1400 {
		t.Errorf("accepted %d logs at 500/s for 2s, want 600..1400", rep.Accepted)
	}
	if !rep.Verified || rep.Verification != "sample" || rep.Lost != 0 {
		t.Errorf("verified %v by %q, lost %d; want true by sample, 0", rep.Verified, rep.Verification, rep.Lost)
	}
	if len(rep.Queries) != 0 {
		t.Errorf("queries %v with query rate 0", rep.Queries)
	}
	for _, want := range []string{"logengine loadtest  run " + rep.RunID, "verify      OK", "accept      p50 "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRunWithAnAPIKey: against a pipeline with API keys, the load test
// sends its key with every request, and is refused without one.
func TestRunWithAnAPIKey(t *testing.T) {
	t.Parallel()
	const key = "le_loadtest-0123456789"
	cfg := apptest.Config(t)
	cfg.Auth.Keys = `keys: [{name: loadtest, key: "` + key + `", scopes: [ingest, query]}]`
	a := apptest.Start(t, cfg, &apptest.LockedBuffer{})
	lc := DefaultConfig()
	lc.ProducerURLs = []string{"http://" + a.Addr(app.RoleProducer)}
	lc.GatewayURL = "http://" + a.Addr(app.RoleGateway)
	lc.Count, lc.BatchSize, lc.Concurrency, lc.QueryRate = 200, 50, 1, 0
	lc.VerifyTimeout = time.Minute
	lc.APIKey = key
	var out, progress bytes.Buffer
	rep, err := Run(t.Context(), lc, &out, &progress)
	if err != nil || rep.Accepted != 200 || !rep.Verified {
		t.Fatalf("with the key: accepted %d, verified %v, %v\n%s", rep.Accepted, rep.Verified, err, progress.String())
	}
	lc.APIKey = ""
	out.Reset()
	progress.Reset()
	if rep, err := Run(t.Context(), lc, &out, &progress); err == nil || rep.Accepted != 0 {
		t.Fatalf("without a key: accepted %d, %v", rep.Accepted, err)
	}
}

package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/store/logs"
)

// fakeProducer accepts every valid batch as the real producer does, and
// remembers the bodies it was sent.
type fakeProducer struct {
	mu     sync.Mutex
	bodies []string
	status int // answer instead of 202 when set
	stored []logs.Event
	// accepted, when set, is called after each accepted batch.
	accepted func(batches int)
	batches  int
}

func (f *fakeProducer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.bodies = append(f.bodies, string(body))
	status := f.status
	f.mu.Unlock()
	if status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, `{"error":"Kafka did not acknowledge the log events in time"}`)
		return
	}
	var items []json.RawMessage
	if r.URL.Path == "/api/v1/logs" {
		items = []json.RawMessage{body}
	} else if err := json.Unmarshal(body, &items); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ids := []string{}
	var events []logs.Event
	for _, raw := range items {
		ev, err := event.Parse(raw, event.Defaults{Now: time.Now()}, event.DefaultLimits())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ids = append(ids, ev.ID.String())
		events = append(events, ev)
	}
	f.mu.Lock()
	f.stored = append(f.stored, events...)
	f.batches++
	if f.accepted != nil {
		f.accepted(f.batches)
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(map[string]any{"accepted": len(ids), "rejected": 0, "errors": []any{}, "ids": ids})
}

func TestRunAgainstRefusingProducerRetriesTheSameBatch(t *testing.T) {
	t.Parallel()
	fake := &fakeProducer{status: http.StatusServiceUnavailable}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.ProducerURLs = []string{srv.URL}
	cfg.GatewayURL = ""
	cfg.Count = 200
	cfg.BatchSize = 100
	cfg.Concurrency = 2
	var out bytes.Buffer
	rep, err := Run(t.Context(), cfg, &out, nil)
	if err == nil || !strings.Contains(err.Error(), "nothing was accepted") {
		t.Fatalf("Run error = %v, want one saying nothing was accepted", err)
	}
	if got, want := rep.Errors["503"], int64(2*maxAttempts); got != want || len(rep.Errors) != 1 {
		t.Errorf("errors %v, want {503: %d}", rep.Errors, want)
	}
	if rep.Accepted != 0 || rep.Failed != 200 || rep.Verification != "none" {
		t.Errorf("accepted %d, failed %d, verification %q; want 0, 200, none", rep.Accepted, rep.Failed, rep.Verification)
	}
	// Every retry repeats its batch byte for byte: same ids, same timestamps.
	fake.mu.Lock()
	seen := map[string]int{}
	for _, b := range fake.bodies {
		seen[b]++
	}
	fake.mu.Unlock()
	if len(seen) != 2 {
		t.Errorf("%d distinct bodies, want 2 batches", len(seen))
	}
	for _, n := range seen {
		if n != maxAttempts {
			t.Errorf("a batch was sent %d times, want %d", n, maxAttempts)
		}
	}
	if !strings.Contains(out.String(), "errors      503=10") {
		t.Errorf("report:\n%s", out.String())
	}
}

func TestRunGivesUpWhenEveryBatchIsRefused(t *testing.T) {
	t.Parallel()
	fake := &fakeProducer{status: http.StatusRequestEntityTooLarge}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.ProducerURLs = []string{srv.URL}
	cfg.GatewayURL = ""
	cfg.Duration = time.Hour
	cfg.Concurrency = 2
	rep, err := Run(t.Context(), cfg, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "nothing was accepted (errors: 413=") {
		t.Fatalf("Run error = %v", err)
	}
	// Refusals are not retried, and sending stops after a few batches.
	if n := rep.Errors["413"]; n < 4 || n > 8 || rep.Rejected != 100*n {
		t.Errorf("errors %v, rejected %d", rep.Errors, rep.Rejected)
	}
}

func TestRunWithoutGatewaySendsSingleLogs(t *testing.T) {
	t.Parallel()
	fake := &fakeProducer{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.ProducerURLs = []string{srv.URL + "/"}
	cfg.GatewayURL = ""
	cfg.Count = 37
	cfg.BatchSize = 1
	cfg.Concurrency = 3
	cfg.JSON = true
	var out bytes.Buffer
	rep, err := Run(t.Context(), cfg, &out, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Accepted != 37 || rep.Requests != 37 || rep.Verification != "none" || rep.Verified {
		t.Errorf("accepted %d in %d requests, verification %q %v", rep.Accepted, rep.Requests, rep.Verification, rep.Verified)
	}
	var back Report
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back.Accepted != 37 || back.RunID != rep.RunID {
		t.Errorf("JSON report %v: %s", err, out.String())
	}
}

func TestRunStopsWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv := httptest.NewServer(&fakeProducer{accepted: func(batches int) {
		if batches == 3 {
			cancel()
		}
	}})
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.ProducerURLs = []string{srv.URL}
	cfg.GatewayURL = ""
	cfg.Duration = time.Hour
	cfg.Rate = 1000
	rep, err := Run(ctx, cfg, io.Discard, nil)
	if err == nil || !rep.Interrupted || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("Run = %v, interrupted %v; want an interrupted run", err, rep.Interrupted)
	}
	if rep.Accepted == 0 {
		t.Error("nothing accepted before the interruption")
	}
}

func TestReportErr(t *testing.T) {
	ok := Report{Accepted: 10, Verified: true, Verification: "walk", Errors: map[string]int64{}}
	if err := ok.Err(); err != nil {
		t.Errorf("a clean run: %v", err)
	}
	unverified := Report{Accepted: 10, Verification: "none"}
	if err := unverified.Err(); err != nil {
		t.Errorf("a run without a gateway: %v", err)
	}
	for name, tc := range map[string]struct {
		r    Report
		want string
	}{
		"lost":        {Report{Accepted: 10, Lost: 2, Verification: "walk"}, "2 accepted logs lost"},
		"duplicates":  {Report{Accepted: 10, Duplicates: 1, Verification: "walk"}, "1 duplicate logs stored"},
		"timeout":     {Report{Accepted: 10, Lost: 3, VerifyError: "verification timed out after 1m0s"}, "timed out"},
		"nothing":     {Report{Errors: map[string]int64{"503": 5, "conn": 1}}, "nothing was accepted (errors: 503=5 conn=1)"},
		"rejected":    {Report{Rejected: 5}, "nothing was accepted (5 logs rejected)"},
		"interrupted": {Report{Accepted: 10, Interrupted: true}, "interrupted"},
	} {
		err := tc.r.Err()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Err() = %v, want it to say %q", name, err, tc.want)
		}
	}
}

func TestReportWriteText(t *testing.T) {
	r := Report{
		RunID: "abc", Accepted: 1000, Verified: true, Verification: "walk", DurationSeconds: 2,
		AcceptedPerSecond: 500, AcceptLatency: Latency{Count: 10, P50: 1, P95: 2, P99: 3, Max: 4},
		Queries:      map[string]QueryStats{KindStats: {Count: 4, P50: 1.5, CacheHitShare: 0.5, Errors: map[string]int64{"503": 1}}},
		Errors:       map[string]int64{"conn": 2},
		PeakRSSBytes: 100 << 20, PeakRSSSource: "metrics",
		Settings: Settings{Count: 1000, BatchSize: 100, Concurrency: 4, Seed: 1},
	}
	var b bytes.Buffer
	if err := r.Write(&b, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"run abc", "1000 accepted", "500 logs/s", "p95 2.0ms", "errors      conn=2",
		"verify      OK", "stats", "50%", "503=1", "peak RSS    100.0 MiB"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, b.String())
		}
	}
}

func TestConfigValidation(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"no producer":  func(c *Config) { c.ProducerURLs = nil },
		"bad producer": func(c *Config) { c.ProducerURLs = []string{"localhost:8081"} },
		"bad gateway":  func(c *Config) { c.GatewayURL = "ftp://x" },
		"no bound":     func(c *Config) { c.Duration, c.Count = 0, 0 },
		"batch":        func(c *Config) { c.BatchSize = 0 },
		"huge batch":   func(c *Config) { c.BatchSize = maxBatchSize + 1 },
		"concurrency":  func(c *Config) { c.Concurrency = 0 },
		"rate":         func(c *Config) { c.Rate = -1 },
		"mix":          func(c *Config) { c.QueryMix = "recent=1,tail=2" },
	} {
		cfg := DefaultConfig()
		mutate(&cfg)
		if _, err := Run(t.Context(), cfg, io.Discard, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	cfg := DefaultConfig()
	cfg.ProducerURLs = []string{" http://a:1/ , http://b:2", "http://c:3"}
	got, _, err := cfg.normalise()
	if err != nil || strings.Join(got.ProducerURLs, " ") != "http://a:1 http://b:2 http://c:3" {
		t.Errorf("normalise = %v, %v", got.ProducerURLs, err)
	}
}

func TestParseMix(t *testing.T) {
	mix, err := parseMix("")
	if err != nil || len(mix) != 5 || mix[0] != (weightedKind{KindRecent, 4}) {
		t.Fatalf("default mix = %v, %v", mix, err)
	}
	mix, err = parseMix(" Level=3, stats=0 ,keyword=1")
	if err != nil || len(mix) != 2 || mix[0] != (weightedKind{KindLevel, 3}) || mix[1] != (weightedKind{KindKeyword, 1}) {
		t.Errorf("mix = %v, %v", mix, err)
	}
	for _, bad := range []string{"recent", "recent=x", "recent=-1", "recent=1,recent=2", "stats=0", "grep=1"} {
		if _, err := parseMix(bad); err == nil {
			t.Errorf("parseMix(%q): no error", bad)
		}
	}
}

func TestWRRFollowsTheWeightsAndCoversEveryKind(t *testing.T) {
	mix, _ := parseMix(DefaultQueryMix)
	w := newWRR(mix)
	first := map[string]int{}
	for range 10 {
		first[w.next()]++
	}
	for _, k := range mix {
		if first[k.kind] != k.weight {
			t.Errorf("in one round %s came %d times, want %d", k.kind, first[k.kind], k.weight)
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 95: 95 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond} {
		if got := percentile(d, p); got != want {
			t.Errorf("p%g = %v, want %v", p, got, want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Error("percentile of nothing")
	}
	r := newRecorder(10, 1)
	for i := range 1000 {
		r.add(time.Duration(i) * time.Microsecond)
	}
	if l := r.latency(); l.Count != 1000 || len(r.samples) != 10 || l.Max != 0.999 {
		t.Errorf("recorder kept %d samples, latency %+v", len(r.samples), l)
	}
}

func TestPacerSpacesBatches(t *testing.T) {
	p := newPacer(1000) // 1 ms per log
	a := p.reserve(50)
	b := p.reserve(50)
	c := p.reserve(10)
	if b.Sub(a) != 50*time.Millisecond || c.Sub(b) != 50*time.Millisecond {
		t.Errorf("slots %v, %v apart; want 50ms each", b.Sub(a), c.Sub(b))
	}
	if newPacer(0) != nil {
		t.Error("rate 0 paces")
	}
}

func TestProbesSpreadOverACountedRun(t *testing.T) {
	r := &runner{cfg: Config{GatewayURL: "http://g", Count: 10000, Seed: 1}}
	p := newProber(r)
	n := 0
	for first := int64(0); first < 10000; first += 100 {
		if p.want(first, 100) {
			n++
		}
	}
	if n != probeCount {
		t.Errorf("%d probes, want %d", n, probeCount)
	}
	r.cfg.GatewayURL = ""
	if newProber(r).want(0, 100) {
		t.Error("probe without a gateway")
	}
}

func TestParseRSS(t *testing.T) {
	status := "Name:\tlogengine\nVmPeak:\t  900000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n"
	if v, err := parseProcStatus([]byte(status)); err != nil || v != 200<<20 {
		t.Errorf("parseProcStatus = %d, %v", v, err)
	}
	if _, err := parseProcStatus([]byte("Name:\tx\n")); err == nil {
		t.Error("no error without VmHWM")
	}
	metrics := "# HELP process_resident_memory_bytes Resident memory size in bytes.\n" +
		"# TYPE process_resident_memory_bytes gauge\n" +
		"process_resident_memory_bytes_total 1\n" +
		"process_resident_memory_bytes 5.4296576e+07\n"
	if v, err := parseRSSMetric(strings.NewReader(metrics)); err != nil || v != 54296576 {
		t.Errorf("parseRSSMetric = %d, %v", v, err)
	}
	if v, err := parseRSSMetric(strings.NewReader(`process_resident_memory_bytes{pod="a b"} 42 1700000000`)); err != nil || v != 42 {
		t.Errorf("parseRSSMetric with labels = %d, %v", v, err)
	}
	if _, err := parseRSSMetric(strings.NewReader("go_goroutines 7\n")); err == nil {
		t.Error("no error without the metric")
	}
}

// fakeGateway answers searches from what a fakeProducer accepted, with
// the store's faults chosen by the test.
type fakeGateway struct {
	p      *fakeProducer
	drop   int // the first drop logs are never found
	dup    int // the last dup logs are found twice
	others int // logs of other clients in the window
	// statsStatus, when set, is the answer to every stats request.
	statsStatus int
}

// fakeCountLimit caps totalElements as the gateway's --count-limit does.
const fakeCountLimit = 200

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	g.p.mu.Lock()
	all := append([]logs.Event(nil), g.p.stored...)
	g.p.mu.Unlock()
	var rows []logs.Event
	for i, ev := range all {
		if i < g.drop {
			continue
		}
		if tr := q.Get("traceId"); tr != "" && ev.TraceID != tr {
			continue
		}
		if kw := q.Get("keyword"); kw != "" && !strings.Contains(ev.Message, kw) {
			continue
		}
		rows = append(rows, ev)
		if i >= len(all)-g.dup {
			rows = append(rows, ev)
		}
	}
	if r.URL.Path == "/api/v1/logs/stats" {
		if g.statsStatus != 0 {
			w.WriteHeader(g.statsStatus)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"totalCount": len(rows) + g.others})
		return
	}
	size, _ := strconv.Atoi(q.Get("size"))
	offset, _ := strconv.Atoi(q.Get("cursor"))
	end := min(offset+size, len(rows))
	type item struct {
		ID      string `json:"id"`
		TraceID string `json:"traceId"`
	}
	out := struct {
		Content         []item `json:"content"`
		TotalElements   int    `json:"totalElements"`
		TotalIsEstimate bool   `json:"totalIsEstimate"`
		NextCursor      string `json:"nextCursor,omitempty"`
	}{Content: []item{}, TotalElements: min(len(rows), fakeCountLimit), TotalIsEstimate: len(rows) > fakeCountLimit}
	for _, ev := range rows[offset:end] {
		out.Content = append(out.Content, item{ev.ID.String(), ev.TraceID})
	}
	if end < len(rows) {
		out.NextCursor = strconv.Itoa(end)
	}
	w.Header().Set("X-Cache", "MISS")
	json.NewEncoder(w).Encode(out)
}

func TestVerificationFindsLostAndDuplicateLogs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                         string
		drop, dup, others, walkLimit int
		lost, dups                   int64 // -1: some
		verification, want           string
	}{
		{"clean", 0, 0, 0, 0, 0, 0, "walk", ""},
		{"lost", 3, 0, 0, 0, 3, 0, "walk", "timed out after 1s: 3 of 500 accepted logs not found"},
		{"lost among others", 3, 0, 1000, 0, 3, 0, "walk", "timed out after 1s: 3 of 500 accepted logs not found"},
		{"nothing stored", 500, 0, 0, 0, 500, 0, "walk", "timed out after 1s: 500 of 500 accepted logs not found"},
		{"duplicates", 0, 2, 0, 0, 0, 2, "walk", "2 duplicate logs stored"},
		{"clean sample", 0, 0, 0, 100, 0, 0, "sample", ""},
		{"lost sample", 250, 0, 1000, 100, -1, 0, "sample", " of 200 sampled accepted logs not found"},
		{"duplicates sample", 0, 500, 0, 100, 0, sampleSize, "sample", "200 duplicate logs stored"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prod := &fakeProducer{}
			ps := httptest.NewServer(prod)
			defer ps.Close()
			gs := httptest.NewServer(&fakeGateway{p: prod, drop: tc.drop, dup: tc.dup, others: tc.others})
			defer gs.Close()
			cfg := DefaultConfig()
			cfg.ProducerURLs = []string{ps.URL}
			cfg.GatewayURL = gs.URL
			cfg.Count = 500
			cfg.BatchSize = 50
			cfg.QueryRate = 50
			cfg.VerifyTimeout = time.Second
			cfg.stallAfter = 300 * time.Millisecond
			cfg.walkLimit = tc.walkLimit
			var out bytes.Buffer
			rep, err := Run(t.Context(), cfg, &out, nil)
			lostOK := rep.Lost == tc.lost || (tc.lost == -1 && rep.Lost > 0 && rep.Lost < sampleSize)
			if !lostOK || rep.Duplicates != tc.dups || rep.Verification != tc.verification ||
				rep.Verified != (tc.want == "") {
				t.Errorf("lost %d, duplicates %d, verified %v by %s; want %d, %d, %v by %s\n%s",
					rep.Lost, rep.Duplicates, rep.Verified, rep.Verification, tc.lost, tc.dups, tc.want == "", tc.verification, out.String())
			}
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Run: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Run error = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// A gateway whose statistics fail, or count wrong, does not keep the
// verification from reading the logs back.
func TestVerificationReadsBackWhenTheCountIsUnavailable(t *testing.T) {
	t.Parallel()
	prod := &fakeProducer{}
	ps := httptest.NewServer(prod)
	defer ps.Close()
	gs := httptest.NewServer(&fakeGateway{p: prod, statsStatus: http.StatusInternalServerError})
	defer gs.Close()
	cfg := DefaultConfig()
	cfg.ProducerURLs = []string{ps.URL}
	cfg.GatewayURL = gs.URL
	cfg.Count = 300
	cfg.QueryRate = 0
	cfg.VerifyTimeout = 20 * time.Second
	cfg.stallAfter = time.Second
	rep, err := Run(t.Context(), cfg, io.Discard, nil)
	if err != nil || !rep.Verified || rep.Verification != "walk" {
		t.Errorf("Run: %v; verified %v by %s", err, rep.Verified, rep.Verification)
	}
}

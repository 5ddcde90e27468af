// Package loadtest drives a running logengine with realistic logs and
// queries, measures what a client sees (accept latency, throughput, query
// latency and cache hits, the delay until a log is searchable), and then
// proves that every accepted log was stored exactly once.
package loadtest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/logengine/logengine/app/auth"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one load test.
type Config struct {
	// APIKey, when the pipeline has API keys, is sent with every request;
	// it needs the ingest and query scopes (or admin, for /metrics with a
	// metrics token). From the environment, never a flag.
	APIKey string
	// ProducerURLs are the producers' base URLs; batches go to them in turn.
	ProducerURLs []string
	// GatewayURL is the gateway's base URL; "" disables queries and
	// verification.
	GatewayURL string
	// Rate is the total of logs per second; 0 sends as fast as possible.
	Rate float64
	// Duration bounds the run unless Count is positive.
	Duration time.Duration
	// Count, when positive, is the number of logs to send instead.
	Count int
	// BatchSize is the number of logs per request; 1 uses POST /api/v1/logs.
	BatchSize int
	// Concurrency is the number of sending workers.
	Concurrency int
	// ClientIDs sends an id with every log, as a client that retries
	// safely does. Without, the producer assigns the ids (the common case
	// and the cheaper one to store), read back from its answers, and a
	// request that failed without an answer is not sent again, as its
	// logs might be stored twice.
	ClientIDs bool
	// QueryRate is the number of queries per second; 0 sends none.
	QueryRate float64
	// QueryMix weighs the kinds of queries: "recent=4,level=2,...".
	QueryMix string
	// Seed makes the generated logs reproducible.
	Seed int64
	// JSON prints the report as one JSON object.
	JSON bool
	// VerifyTimeout bounds the wait for every accepted log to be queryable.
	VerifyTimeout time.Duration
	// ServerPID, when positive, is a local process whose peak RSS is read
	// from /proc; otherwise the producers' process_resident_memory_bytes
	// metric is sampled.
	ServerPID int

	// walkLimit is the most accepted logs verified one by one with a
	// cursor walk; beyond it a sample is checked (0 = defaultWalkLimit).
	walkLimit int
	// stallAfter is how long verification waits for the window's count to
	// move before it reads the logs back anyway (0 = defaultStallAfter).
	stallAfter time.Duration
}

// Defaults of the command's flags.
const (
	DefaultProducerURL = "http://127.0.0.1:8081"
	DefaultGatewayURL  = "http://127.0.0.1:8080"
	DefaultQueryMix    = "recent=4,level=2,source=2,keyword=1,stats=1"
	defaultWalkLimit   = 200_000
	defaultStallAfter  = 10 * time.Second
	// maxBatchSize is the producer's default --max-batch-events.
	maxBatchSize = 10_000
)

// DefaultConfig is the configuration of the command with no flags.
func DefaultConfig() Config {
	return Config{
		ProducerURLs:  []string{DefaultProducerURL},
		GatewayURL:    DefaultGatewayURL,
		Duration:      60 * time.Second,
		BatchSize:     100,
		Concurrency:   4,
		QueryRate:     5,
		QueryMix:      DefaultQueryMix,
		Seed:          1,
		VerifyTimeout: 60 * time.Second,
	}
}

// normalise checks cfg and returns it with URLs cleaned and the query mix
// parsed.
func (cfg Config) normalise() (Config, []weightedKind, error) {
	var urls []string
	for _, u := range cfg.ProducerURLs {
		for _, part := range strings.Split(u, ",") {
			if part = strings.TrimSpace(part); part != "" {
				urls = append(urls, part)
			}
		}
	}
	if len(urls) == 0 {
		return cfg, nil, errors.New("loadtest: at least one producer URL is required")
	}
	for i, u := range urls {
		clean, err := baseURL(u)
		if err != nil {
			return cfg, nil, fmt.Errorf("loadtest: producer URL: %w", err)
		}
		urls[i] = clean
	}
	cfg.ProducerURLs = urls
	if cfg.GatewayURL = strings.TrimSpace(cfg.GatewayURL); cfg.GatewayURL != "" {
		clean, err := baseURL(cfg.GatewayURL)
		if err != nil {
			return cfg, nil, fmt.Errorf("loadtest: gateway URL: %w", err)
		}
		cfg.GatewayURL = clean
	}
	switch {
	case cfg.Rate < 0:
		return cfg, nil, errors.New("loadtest: rate must not be negative")
	case cfg.Count < 0:
		return cfg, nil, errors.New("loadtest: count must not be negative")
	case cfg.Count == 0 && cfg.Duration <= 0:
		return cfg, nil, errors.New("loadtest: give a positive duration or count")
	case cfg.BatchSize < 1 || cfg.BatchSize > maxBatchSize:
		return cfg, nil, fmt.Errorf("loadtest: batch size must be between 1 and %d", maxBatchSize)
	case cfg.Concurrency < 1:
		return cfg, nil, errors.New("loadtest: concurrency must be at least 1")
	case cfg.QueryRate < 0:
		return cfg, nil, errors.New("loadtest: query rate must not be negative")
	case cfg.VerifyTimeout <= 0:
		return cfg, nil, errors.New("loadtest: verify timeout must be positive")
	}
	if cfg.Count > 0 {
		cfg.Duration = 0
	}
	if cfg.walkLimit <= 0 {
		cfg.walkLimit = defaultWalkLimit
	}
	if cfg.stallAfter <= 0 {
		cfg.stallAfter = defaultStallAfter
	}
	var mix []weightedKind
	if cfg.GatewayURL != "" && cfg.QueryRate > 0 {
		var err error
		if mix, err = parseMix(cfg.QueryMix); err != nil {
			return cfg, nil, err
		}
	}
	return cfg, mix, nil
}

func baseURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an http:// or https:// URL", s)
	}
	return strings.TrimRight(s, "/"), nil
}

// Run sends logs and queries as cfg says, verifies the store, writes the
// report to out and live progress to progress (nil = none). The error is
// non-nil when nothing was accepted, an accepted log was lost or stored
// twice, verification timed out, or ctx ended the run early.
func Run(ctx context.Context, cfg Config, out io.Writer, progress io.Writer) (Report, error) {
	cfg, mix, err := cfg.normalise()
	if err != nil {
		return Report{}, err
	}
	if progress == nil {
		progress = io.Discard
	}
	r := newRunner(cfg, mix, progress)
	defer r.transport.CloseIdleConnections()
	rep := r.run(ctx)
	if err := rep.Write(out, cfg.JSON); err != nil {
		return rep, err
	}
	return rep, rep.Err()
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// runner is the state of one run.
type runner struct {
	cfg       Config
	mix       []weightedKind
	progress  io.Writer
	transport *http.Transport
	client    *http.Client
	runID     string
	ledger    *ledger
	accept    *recorder // latency of accepted requests
	queries   *queryStats
	probes    *prober
	// verifyStatus is verification's progress, for the progress line.
	verifyStatus atomic.Pointer[string]
}

func (r *runner) setVerifyStatus(s string) { r.verifyStatus.Store(&s) }

func newRunner(cfg Config, mix []weightedKind, progress io.Writer) *runner {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   cfg.Concurrency + queryConcurrency + probeConcurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	r := &runner{
		cfg: cfg, mix: mix, progress: progress, transport: tr,
		client: &http.Client{Transport: auth.Transport(tr, cfg.APIKey), Timeout: 90 * time.Second},
		runID:  newRunID(cfg.Seed, time.Now()),
		accept: newRecorder(reservoirSize, uint64(cfg.Seed)),
	}
	r.ledger = newLedger(cfg.walkLimit, uint64(cfg.Seed))
	r.queries = newQueryStats(mix, uint64(cfg.Seed))
	return r
}

// newRunID is 16 hex digits derived from the seed and the start time, so
// two runs with one seed still tell their logs apart.
func newRunID(seed int64, now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(seed))
	binary.BigEndian.PutUint64(b[8:], uint64(now.UnixNano()))
	sum := sha256.Sum256(b[:])
	return hex.EncodeToString(sum[:8])
}

func (r *runner) run(ctx context.Context) Report {
	cfg := r.cfg
	start := time.Now()
	bound := cfg.Duration.String()
	if cfg.Count > 0 {
		bound = fmt.Sprintf("%d logs", cfg.Count)
	}
	rate := "as fast as possible"
	if cfg.Rate > 0 {
		rate = fmt.Sprintf("%g logs/s", cfg.Rate)
	}
	fmt.Fprintf(r.progress, "loadtest run %s: %s, %s, batches of %d, %d workers, %g queries/s\n",
		r.runID, bound, rate, cfg.BatchSize, cfg.Concurrency, cfg.QueryRate)

	rss := newRSSSampler(r.client, cfg)
	rssCtx, stopRSS := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Go(func() { rss.run(rssCtx) })

	r.probes = newProber(r)
	sendDone := make(chan struct{})
	var queryWG, probeWG sync.WaitGroup
	if len(r.mix) > 0 {
		queryWG.Go(func() { r.queryLoop(ctx, sendDone) })
	}
	if cfg.GatewayURL != "" {
		probeWG.Go(func() { r.probes.run(ctx, sendDone) })
	}
	prog := newProgressPrinter(r, start)
	progCtx, stopProg := context.WithCancel(ctx)
	bg.Go(func() { prog.run(progCtx) })

	r.send(ctx, start)
	sendEnd := time.Now()
	close(sendDone)
	queryWG.Wait()

	rep := Report{
		RunID:           r.runID,
		DurationSeconds: sendEnd.Sub(start).Seconds(),
		Verification:    "none",
		Settings:        settingsOf(cfg),
	}
	r.ledger.fill(&rep)
	rep.AcceptLatency = r.accept.latency()
	rep.Queries = r.queries.report()
	if rep.DurationSeconds > 0 {
		rep.AcceptedPerSecond = round3(float64(rep.Accepted) / rep.DurationSeconds)
	}
	rep.DurationSeconds = round3(rep.DurationSeconds)

	switch {
	case ctx.Err() != nil:
		rep.Interrupted = true
	case cfg.GatewayURL != "" && rep.Accepted > 0:
		prog.setPhase("verifying")
		verifyStart := time.Now()
		r.verify(ctx, start, &rep)
		rep.VerifySeconds = round3(time.Since(verifyStart).Seconds())
		if ctx.Err() != nil {
			rep.Interrupted = true
		}
	}
	probeWG.Wait()
	rep.VisibilityLatency = r.probes.latency()
	rep.VisibilityNotFound = r.probes.notFound.Load()
	stopProg()
	stopRSS()
	bg.Wait()
	prog.finish()
	rep.PeakRSSBytes, rep.PeakRSSSource = rss.peak()
	return rep
}

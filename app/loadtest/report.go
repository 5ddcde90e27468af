package loadtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// Report is what a run measured and verified.
type Report struct {
	RunID string `json:"run_id"`
	// Accepted logs were answered 202; Rejected were refused as invalid
	// (4xx, or listed in a 202's errors); Failed were still refused (503)
	// or unanswered after every retry.
	Accepted int64 `json:"accepted"`
	Rejected int64 `json:"rejected"`
	Failed   int64 `json:"failed"`
	// Lost accepted logs were not found before the verify timeout;
	// Duplicates are extra copies found. With "sample" verification both
	// count within the sample.
	Lost       int64 `json:"lost"`
	Duplicates int64 `json:"duplicates"`
	// StoredUnacknowledged logs of the run were found though their request
	// was never answered 202 (a 503 that reached Kafka late): not an error.
	StoredUnacknowledged int64 `json:"stored_unacknowledged"`
	// Verified is true when every accepted log was found exactly once.
	Verified bool `json:"verified"`
	// Verification is how: "walk" (every log of the run read back),
	// "sample" (a sample looked up by trace id, for large runs) or "none".
	Verification  string  `json:"verification"`
	VerifyError   string  `json:"verify_error,omitempty"`
	VerifySeconds float64 `json:"verify_seconds"`
	Interrupted   bool    `json:"interrupted,omitempty"`

	DurationSeconds   float64 `json:"duration_seconds"`
	AcceptedPerSecond float64 `json:"accepted_per_second"`
	Requests          int64   `json:"requests"`
	// AcceptLatency is the time of an accepted request (one batch).
	AcceptLatency Latency `json:"accept_latency_ms"`
	// VisibilityLatency is from a log's acceptance until a search finds it.
	VisibilityLatency Latency `json:"visibility_latency_ms"`
	// VisibilityNotFound counts probe logs not found before the timeout;
	// they are not in VisibilityLatency.
	VisibilityNotFound int64                 `json:"visibility_not_found"`
	Queries            map[string]QueryStats `json:"queries"`
	// Errors counts failed ingest attempts by HTTP status ("conn": network
	// error); retried attempts count each time.
	Errors        map[string]int64 `json:"errors"`
	PeakRSSBytes  int64            `json:"peak_rss_bytes"`
	PeakRSSSource string           `json:"peak_rss_source,omitempty"`
	Settings      Settings         `json:"settings"`
}

// Settings echo the configuration of the run.
type Settings struct {
	ProducerURLs    []string `json:"producer_urls"`
	GatewayURL      string   `json:"gateway_url"`
	Rate            float64  `json:"rate"`
	DurationSeconds float64  `json:"duration_seconds,omitempty"`
	Count           int      `json:"count,omitempty"`
	BatchSize       int      `json:"batch_size"`
	ClientIDs       bool     `json:"client_ids"`
	Concurrency     int      `json:"concurrency"`
	QueryRate       float64  `json:"query_rate"`
	QueryMix        string   `json:"query_mix,omitempty"`
	Seed            int64    `json:"seed"`
}

func settingsOf(cfg Config) Settings {
	s := Settings{
		ProducerURLs: cfg.ProducerURLs, GatewayURL: cfg.GatewayURL, Rate: cfg.Rate,
		DurationSeconds: cfg.Duration.Seconds(), Count: cfg.Count, BatchSize: cfg.BatchSize,
		ClientIDs: cfg.ClientIDs, Concurrency: cfg.Concurrency, QueryRate: cfg.QueryRate, Seed: cfg.Seed,
	}
	if cfg.GatewayURL != "" && cfg.QueryRate > 0 {
		s.QueryMix = cfg.QueryMix
		if s.QueryMix == "" {
			s.QueryMix = DefaultQueryMix
		}
	}
	return s
}

// Err is the run's verdict: nil when something was accepted and, where
// verified, every accepted log was found exactly once.
func (r Report) Err() error {
	var errs []error
	if r.Accepted == 0 {
		msg := "nothing was accepted"
		if len(r.Errors) > 0 {
			msg += " (errors: " + formatCounts(r.Errors) + ")"
		} else if r.Rejected > 0 {
			msg += fmt.Sprintf(" (%d logs rejected)", r.Rejected)
		}
		errs = append(errs, errors.New(msg))
	}
	if r.Lost > 0 && r.VerifyError == "" {
		errs = append(errs, fmt.Errorf("%d accepted logs lost", r.Lost))
	}
	if r.Duplicates > 0 {
		errs = append(errs, fmt.Errorf("%d duplicate logs stored", r.Duplicates))
	}
	if r.VerifyError != "" {
		errs = append(errs, errors.New(r.VerifyError))
	}
	if r.Interrupted {
		errs = append(errs, errors.New("interrupted before the run was verified"))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("loadtest: %w", errors.Join(errs...))
}

// formatCounts is "503=4 conn=1", in key order.
func formatCounts(m map[string]int64) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// Write prints the report: one JSON object, or lines for a person.
func (r Report) Write(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	var b strings.Builder
	s := r.Settings
	bound := fmt.Sprintf("%gs", s.DurationSeconds)
	if s.Count > 0 {
		bound = fmt.Sprintf("%d logs", s.Count)
	}
	rate := "max"
	if s.Rate > 0 {
		rate = fmt.Sprintf("%g/s", s.Rate)
	}
	ids := "producer's ids"
	if s.ClientIDs {
		ids = "client ids"
	}
	fmt.Fprintf(&b, "logengine loadtest  run %s  (%s, rate %s, batch %d, %s, concurrency %d, seed %d)\n",
		r.RunID, bound, rate, s.BatchSize, ids, s.Concurrency, s.Seed)
	fmt.Fprintf(&b, "ingest      %d accepted in %.1fs = %.0f logs/s; %d rejected, %d failed; %d requests\n",
		r.Accepted, r.DurationSeconds, r.AcceptedPerSecond, r.Rejected, r.Failed, r.Requests)
	fmt.Fprintf(&b, "accept      %s\n", formatLatency(r.AcceptLatency, true))
	errs := "none"
	if len(r.Errors) > 0 {
		errs = formatCounts(r.Errors)
	}
	fmt.Fprintf(&b, "errors      %s\n", errs)
	switch {
	case r.Verification == "none":
		fmt.Fprintf(&b, "verify      not verified\n")
	case r.Verified:
		fmt.Fprintf(&b, "verify      OK: every accepted log found exactly once (%s, %.1fs)\n", r.Verification, r.VerifySeconds)
	default:
		fmt.Fprintf(&b, "verify      FAILED (%s, %.1fs): %d lost, %d duplicates\n", r.Verification, r.VerifySeconds, r.Lost, r.Duplicates)
	}
	if r.VerifyError != "" {
		fmt.Fprintf(&b, "            %s\n", r.VerifyError)
	}
	if r.StoredUnacknowledged > 0 {
		fmt.Fprintf(&b, "            %d logs stored whose request was not acknowledged\n", r.StoredUnacknowledged)
	}
	if r.VisibilityLatency.Count > 0 || r.VisibilityNotFound > 0 {
		fmt.Fprintf(&b, "visibility  %s", formatLatency(r.VisibilityLatency, false))
		if r.VisibilityNotFound > 0 {
			fmt.Fprintf(&b, "; %d probes not found in time", r.VisibilityNotFound)
		}
		b.WriteByte('\n')
	}
	if len(r.Queries) > 0 {
		fmt.Fprintf(&b, "queries\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "\tkind\tcount\tp50 ms\tp95 ms\tp99 ms\tcache hit\terrors\t\n")
		for _, kind := range queryKinds {
			q, ok := r.Queries[kind]
			if !ok {
				continue
			}
			qe := "-"
			if len(q.Errors) > 0 {
				qe = formatCounts(q.Errors)
			}
			fmt.Fprintf(tw, "\t%s\t%d\t%.1f\t%.1f\t%.1f\t%.0f%%\t%s\t\n", kind, q.Count, q.P50, q.P95, q.P99, 100*q.CacheHitShare, qe)
		}
		tw.Flush()
	}
	if r.PeakRSSBytes > 0 {
		fmt.Fprintf(&b, "peak RSS    %.1f MiB (%s)\n", float64(r.PeakRSSBytes)/(1<<20), r.PeakRSSSource)
	} else {
		fmt.Fprintf(&b, "peak RSS    unknown\n")
	}
	if r.Interrupted {
		fmt.Fprintf(&b, "interrupted before the run was verified\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func formatLatency(l Latency, p95 bool) string {
	if l.Count == 0 {
		return "no samples"
	}
	if p95 {
		return fmt.Sprintf("p50 %.1fms  p95 %.1fms  p99 %.1fms  max %.1fms  (%d samples)", l.P50, l.P95, l.P99, l.Max, l.Count)
	}
	return fmt.Sprintf("p50 %.1fms  p99 %.1fms  max %.1fms  (%d samples)", l.P50, l.P99, l.Max, l.Count)
}

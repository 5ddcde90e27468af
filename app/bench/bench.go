// Package bench is the storage benchmark: it sends a week of realistic
// logs through a running pipeline's batch API, waits until every one is
// countable, runs eight queries uncached and checks each answer exactly,
// and reports ingest rate, freshness, bytes per log and peak memory.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/logengine/logengine/app/auth"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Config is one run.
type Config struct {
	// APIKey, when the pipeline has API keys, is sent with every request
	// (ingest and query scopes). From the environment, never a flag.
	APIKey                  string
	ProducerURL, GatewayURL string
	// PostgresURL is the pipeline's database, for bytes per log.
	PostgresURL string
	Logs        int
	BatchSize   int
	Concurrency int
	Repeats     int
	Seed        uint64
	// ServerPID, when set, is the local server whose peak RSS is read.
	ServerPID int
	// MergeWait bounds the wait for the merger to catch up.
	MergeWait time.Duration
}

// DefaultConfig is the benchmark as the storage targets are stated.
func DefaultConfig() Config {
	return Config{
		ProducerURL: "http://127.0.0.1:8081", GatewayURL: "http://127.0.0.1:8080",
		PostgresURL: "postgres://postgres@127.0.0.1:5432/logengine?sslmode=disable",
		Logs:        2_000_000, BatchSize: 1000, Concurrency: 4, Repeats: 20, Seed: 1,
		MergeWait: 10 * time.Minute,
	}
}

// Run runs the benchmark and writes its report to out.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	now := time.Now().UTC().Truncate(time.Second)
	fmt.Fprintf(out, "generating %d logs over the 7 days before %s\n", cfg.Logs, now.Format(time.RFC3339))
	data := generate(cfg.Logs, cfg.Seed, now)
	db, err := pgx.Connect(ctx, cfg.PostgresURL)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer db.Close(ctx)
	var walStart string
	if err := db.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&walStart); err != nil {
		return err
	}
	client := &http.Client{Transport: auth.Transport(http.DefaultTransport, cfg.APIKey), Timeout: 2 * time.Minute}

	// Ingest.
	start := time.Now()
	if err := send(ctx, client, cfg, data); err != nil {
		return err
	}
	lastAccepted := time.Now()
	ingest := float64(cfg.Logs) / lastAccepted.Sub(start).Seconds()
	fmt.Fprintf(out, "ingest: %d logs accepted in %.1f s: %.0f logs/s\n", cfg.Logs, lastAccepted.Sub(start).Seconds(), ingest)

	// Freshness: until the whole window counts every log.
	all := url.Values{"startTime": {data.start.Format(time.RFC3339)}, "endTime": {now.Format(time.RFC3339)}}
	for {
		var st struct{ TotalCount int64 }
		if err := getJSON(ctx, client, cfg.GatewayURL+"/api/v1/logs/stats?"+all.Encode(), &st); err != nil {
			return err
		}
		if st.TotalCount == int64(cfg.Logs) {
			break
		}
		if st.TotalCount > int64(cfg.Logs) {
			return fmt.Errorf("%d logs counted, %d sent: duplicates", st.TotalCount, cfg.Logs)
		}
		if time.Since(lastAccepted) > 10*time.Minute {
			return fmt.Errorf("after 10 minutes %d of %d logs are countable", st.TotalCount, cfg.Logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	countable := time.Since(lastAccepted)
	fmt.Fprintf(out, "countable: every log %.2f s after the last 202\n", countable.Seconds())

	// Queries, each checked.
	fmt.Fprintf(out, "\n%-38s %9s %9s\n", "query (uncached)", "p50 ms", "p95 ms")
	for _, q := range data.queries(now) {
		var times []time.Duration
		for i := range cfg.Repeats {
			t0 := time.Now()
			body, err := getRaw(ctx, client, cfg.GatewayURL+q.path)
			times = append(times, time.Since(t0))
			if err != nil {
				return fmt.Errorf("%s: %w", q.name, err)
			}
			if i == 0 {
				if err := q.check(body); err != nil {
					return fmt.Errorf("%s: wrong answer: %w", q.name, err)
				}
			}
		}
		slices.Sort(times)
		fmt.Fprintf(out, "%-38s %9.1f %9.1f\n", q.name, ms(pct(times, 0.5)), ms(pct(times, 0.95)))
	}

	// Bytes per log, once the merger caught up.
	mergeStart := time.Now()
	for {
		var fresh int64
		if err := db.QueryRow(ctx, "SELECT count(*) FROM log_blocks_fresh").Scan(&fresh); err != nil {
			return err
		}
		if fresh == 0 || time.Since(mergeStart) > cfg.MergeWait {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	// What maintenance does after merges, now rather than at its next pass.
	for _, table := range []string{"log_blocks", "log_blocks_fresh"} {
		if _, err := db.Exec(ctx, "VACUUM ANALYZE "+table); err != nil {
			return err
		}
	}
	var dbSize, wal, blocks, blockBytes int64
	if err := db.QueryRow(ctx, `SELECT pg_database_size(current_database()),
		pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint,
		(SELECT count(*) FROM all_blocks), (SELECT coalesce(sum(length(data)), 0) FROM all_blocks)`, walStart).
		Scan(&dbSize, &wal, &blocks, &blockBytes); err != nil {
		return err
	}
	n := float64(cfg.Logs)
	fmt.Fprintf(out, "\nmerged in %.1f s more: %d blocks, %.0f logs each\n", time.Since(mergeStart).Seconds(), blocks, n/float64(max(blocks, 1)))
	fmt.Fprintf(out, "bytes per log: %.0f database + %.0f WAL written = %.0f all-in (block data alone %.1f)\n",
		float64(dbSize)/n, float64(wal)/n, float64(dbSize+wal)/n, float64(blockBytes)/n)
	if cfg.ServerPID > 0 {
		if rss, err := peakRSS(cfg.ServerPID); err == nil {
			fmt.Fprintf(out, "peak RSS of the server: %.0f MB\n", float64(rss)/(1<<20))
		}
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func pct(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(math.Ceil(p*float64(len(sorted))))-1)]
}

// send posts the logs in order, BatchSize per request, Concurrency at once.
func send(ctx context.Context, client *http.Client, cfg Config, d *dataset) error {
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	batches := (len(d.logs) + cfg.BatchSize - 1) / cfg.BatchSize
	for range cfg.Concurrency {
		wg.Go(func() {
			var buf bytes.Buffer
			for {
				b := int(next.Add(1) - 1)
				if b >= batches || firstErr.Load() != nil || ctx.Err() != nil {
					return
				}
				buf.Reset()
				d.appendBatch(&buf, b*cfg.BatchSize, min((b+1)*cfg.BatchSize, len(d.logs)))
				if err := postBatch(ctx, client, cfg.ProducerURL, buf.Bytes()); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	return ctx.Err()
}

// postBatch sends one batch, again after a 503 (the producer's back
// pressure), and fails on anything else but a 202.
func postBatch(ctx context.Context, client *http.Client, base string, body []byte) error {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/logs/batch", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusAccepted:
			var a struct{ Rejected int }
			if json.Unmarshal(answer, &a) == nil && a.Rejected > 0 {
				return fmt.Errorf("%d logs rejected: %.500s", a.Rejected, answer)
			}
			return nil
		case resp.StatusCode == http.StatusServiceUnavailable && attempt < 100:
			// Not accepted: nothing of it is stored, so sending it again
			// duplicates nothing.
			time.Sleep(100 * time.Millisecond)
		default:
			return fmt.Errorf("batch answered %d: %s", resp.StatusCode, answer)
		}
	}
}

func getRaw(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("answered %d: %s", resp.StatusCode, body)
	}
	return body, err
}

func getJSON(ctx context.Context, client *http.Client, u string, v any) error {
	body, err := getRaw(ctx, client, u)
	if err != nil {
		return err
	}
	return json.Unmarshal(body, v)
}

// peakRSS reads VmHWM of a local process.
func peakRSS(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/configs"
)

// BenchmarkDashboard polls the views a dashboard shows while logs flow,
// with the cache and without it, in one run: hit ratio per tier and the
// latency of hits and misses as the gateway answers them over loopback.
//
//	go test -run='^$' -bench=Dashboard -benchtime=300x ./app/
func BenchmarkDashboard(b *testing.B) {
	for _, mode := range []struct {
		name  string
		redis bool
	}{{"cache", true}, {"no-cache", false}} {
		b.Run(mode.name, func(b *testing.B) { benchDashboard(b, mode.redis) })
	}
}

func benchDashboard(b *testing.B, redis bool) {
	p := startPipeline(b, func(c *configs.Config) {
		if !redis {
			c.Redis.Addr = ""
		}
	})
	// History: two hours of logs, then a steady trickle while polling.
	now := time.Now().UTC()
	var batch []map[string]any
	for i := 0; i < 5000; i++ {
		batch = append(batch, map[string]any{
			"id": uuid.NewString(), "timestamp": now.Add(-time.Duration(i) * 1440 * time.Millisecond).Format(time.RFC3339Nano),
			"level": []string{"INFO", "INFO", "WARN", "ERROR"}[i%4], "source": fmt.Sprintf("svc-%d", i%20), "message": fmt.Sprintf("request %d done", i),
		})
		if len(batch) == 1000 {
			if r := postJSON(b, p.producer+"/api/v1/logs/batch", batch); r.status != http.StatusAccepted {
				b.Fatalf("seed batch: %d %s", r.status, r.raw)
			}
			batch = nil
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			body := strings.NewReader(`{"level":"INFO","source":"svc-1","message":"tick"}`)
			if resp, err := http.Post(p.producer+"/api/v1/logs", "application/json", body); err == nil {
				resp.Body.Close()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	defer func() { cancel(); wg.Wait() }()

	closedEnd := now.Add(-30 * time.Minute).Truncate(time.Minute)
	closed := "startTime=" + url.QueryEscape(closedEnd.Add(-time.Hour).Format(time.RFC3339)) + "&endTime=" + url.QueryEscape(closedEnd.Format(time.RFC3339))
	views := []string{
		"/api/v1/logs?logLevel=ERROR", // hot: newest errors
		"/api/v1/logs/stats?startTime=" + url.QueryEscape(now.Add(-15*time.Minute).Format(time.RFC3339)), // hot
		"/api/v1/logs/histogram?interval=1m&startTime=" + url.QueryEscape(now.Add(-time.Hour).Format(time.RFC3339)),
		"/api/v1/logs?source=svc-3&" + closed,          // closed
		"/api/v1/logs/stats?" + closed,                 // closed
		"/api/v1/logs/histogram?interval=5m&" + closed, // closed
	}
	var hits, misses []time.Duration
	status := map[string]int{}
	client := &http.Client{Timeout: 10 * time.Second}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, v := range views {
			start := time.Now()
			resp, err := client.Get(p.gateway + v)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			d := time.Since(start)
			c := resp.Header.Get("X-Cache")
			status[c]++
			if c == "HIT" {
				hits = append(hits, d)
			} else {
				misses = append(misses, d)
			}
		}
	}
	b.StopTimer()
	total := float64(len(hits) + len(misses))
	b.ReportMetric(float64(len(hits))/total, "hit-ratio")
	b.ReportMetric(quantileMs(hits, 0.5), "hit-p50-ms")
	b.ReportMetric(quantileMs(hits, 0.99), "hit-p99-ms")
	b.ReportMetric(quantileMs(misses, 0.5), "miss-p50-ms")
	b.ReportMetric(quantileMs(misses, 0.99), "miss-p99-ms")
	if redis {
		body := string(get(b, p.gateway+"/metrics").raw)
		for _, tier := range []string{"local", "hot", "closed"} {
			h, m := metricValue(body, `cache_hits_total{tier="`+tier+`"}`), metricValue(body, `cache_misses_total{tier="`+tier+`"}`)
			if h+m > 0 {
				b.ReportMetric(h/(h+m), tier+"-hit-ratio")
			}
		}
	}
}

func quantileMs(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[int(q*float64(len(s)-1))].Microseconds()) / 1000
}

func metricValue(body, prefix string) float64 {
	for _, line := range splitLines(body) {
		if len(line) > len(prefix) && line[:len(prefix)] == prefix && line[len(prefix)] == ' ' {
			var v float64
			fmt.Sscan(line[len(prefix)+1:], &v)
			return v
		}
	}
	return 0
}

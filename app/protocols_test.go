package app_test

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/logengine/logengine/resilience/resiliencetest"
	"github.com/logengine/logengine/store/storetest"
)

// stored waits until the database holds total logs, then searches the
// gateway for the n logs of one source (waiting first keeps an early empty
// answer out of the cache), oldest first, as the search API answers them.
func (p *pipeline) stored(t *testing.T, total int, source string, n int) []map[string]any {
	t.Helper()
	p.waitRows(total)
	q := url.Values{
		"source": {source}, "sort": {"asc"}, "size": {"1000"},
		"startTime": {time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)},
		"endTime":   {time.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
	}
	var content []any
	resiliencetest.Eventually(t, 60*time.Second, func() (bool, string) {
		r := get(t, p.gateway+"/api/v1/logs?"+q.Encode())
		if r.status != 200 {
			return false, fmt.Sprintf("search: %d %s", r.status, r.raw)
		}
		content, _ = r.body["content"].([]any)
		if len(content) > n {
			t.Fatalf("source %q has %d logs, want %d: %s", source, len(content), n, r.raw)
		}
		return len(content) == n, fmt.Sprintf("source %q has %d logs, want %d", source, len(content), n)
	})
	out := make([]map[string]any, len(content))
	for i, c := range content {
		out[i] = c.(map[string]any)
	}
	return out
}

// checkFields fails for every field of got that differs from want; a nil
// want value means the field must be absent.
func checkFields(t *testing.T, what string, got map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		switch {
		case w == nil && ok:
			t.Errorf("%s: %s = %v, want it absent", what, k, g)
		case w != nil && fmt.Sprint(g) != fmt.Sprint(w):
			t.Errorf("%s: %s = %v, want %v", what, k, g, w)
		}
	}
}

// protocolEvents is logs_protocol_events_total of one protocol and outcome.
func (p *pipeline) protocolEvents(protocol, outcome string) float64 {
	p.t.Helper()
	mfs, err := p.app.Registry().Gather()
	if err != nil {
		p.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "logs_protocol_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["protocol"] == protocol && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// storedAtLeast waits until the database holds at least total logs, then
// searches the gateway for the first log of source (over UDP a sender may
// have repeated a message).
func (p *pipeline) storedAtLeast(t *testing.T, total int, source string) map[string]any {
	t.Helper()
	resiliencetest.Eventually(t, 60*time.Second, func() (bool, string) {
		n := storetest.StoredCount(t, p.cfg.Postgres.URL)
		return n >= int64(total), fmt.Sprintf("database holds %d logs, want at least %d", n, total)
	})
	q := url.Values{
		"source": {source}, "sort": {"asc"}, "size": {"10"},
		"startTime": {time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)},
		"endTime":   {time.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
	}
	var first map[string]any
	resiliencetest.Eventually(t, 60*time.Second, func() (bool, string) {
		r := get(t, p.gateway+"/api/v1/logs?"+q.Encode())
		content, _ := r.body["content"].([]any)
		if len(content) == 0 {
			return false, fmt.Sprintf("no log of source %q yet: %s", source, r.raw)
		}
		first = content[0].(map[string]any)
		return true, ""
	})
	return first
}

// lokiLines asks the gateway's Loki query API for the lines a LogQL query
// selects from since until now, sorted.
func (p *pipeline) lokiLines(t *testing.T, query string, since time.Time) []string {
	t.Helper()
	q := url.Values{"query": {query}, "limit": {"1000"}, "direction": {"forward"},
		"start": {strconv.FormatInt(since.UnixNano(), 10)}, "end": {strconv.FormatInt(time.Now().UnixNano(), 10)}}
	r := get(t, p.gateway+"/loki/api/v1/query_range?"+q.Encode())
	if r.status != 200 {
		t.Fatalf("Loki query %s: %d %s", query, r.status, r.raw)
	}
	var lines []string
	data, _ := r.body["data"].(map[string]any)
	results, _ := data["result"].([]any)
	for _, res := range results {
		values, _ := res.(map[string]any)["values"].([]any)
		for _, v := range values {
			lines = append(lines, v.([]any)[1].(string))
		}
	}
	slices.Sort(lines)
	return lines
}

package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/app"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/ingest"
)

const (
	teamAKey = "le_team-a-0123456789"
	teamBKey = "le_team-b-0123456789"
)

// Two tenants with identical rights, and an operator.
const tenantKeys = `keys:
  - name: team-a
    key: "` + teamAKey + `"
    tenant: team-a
    scopes: [ingest, query]
  - name: team-b
    key: "` + teamBKey + `"
    tenant: team-b
    scopes: [ingest, query]
  - name: operator
    key: "` + adminKey + `"
    scopes: [admin]
tenants:
  team-a: {retention: 30d}
`

// keyClient sends every request with an API key and, when set, an
// X-Scope-OrgID header.
func keyClient(key, orgID string) *http.Client {
	return &http.Client{Transport: headerTransport{key: key, orgID: orgID}}
}

type headerTransport struct{ key, orgID string }

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+h.key)
	if h.orgID != "" {
		r.Header.Set("X-Scope-OrgID", h.orgID)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func tenantDo(t *testing.T, key, orgID, method, u string, body any) response {
	t.Helper()
	headers := []string{"Authorization", "Bearer " + key}
	if orgID != "" {
		headers = append(headers, "X-Scope-OrgID", orgID)
	}
	if body == nil {
		return do(t, method, u, "", nil, headers...)
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, method, u, "application/json", b, headers...)
}

// contentOf lists the messages and tenants of a search answer.
func contentOf(t *testing.T, r response) (messages, tenants []string) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("search: %d %s", r.status, r.raw)
	}
	for _, c := range r.body["content"].([]any) {
		m := c.(map[string]any)
		messages = append(messages, m["message"].(string))
		if tn, ok := m["tenant"].(string); ok {
			tenants = append(tenants, tn)
		}
	}
	slices.Sort(messages)
	return messages, tenants
}

// TestTenantIsolation sends the same sources, trace id and client-chosen
// id as two tenants and checks that neither sees the other's logs,
// counts, histograms, cached answers, live tail or dead letters, and that
// only an admin key reads across tenants.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	p := startSecured(t, tenantKeys, func(c *configs.Config) { c.Tail.PingInterval = 50 * time.Millisecond })
	base := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Second)
	window := "startTime=" + url.QueryEscape(base.Format(time.RFC3339)) +
		"&endTime=" + url.QueryEscape(base.Add(time.Minute).Format(time.RFC3339))
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	shared := uuid.NewString() // both tenants choose this id

	tailA := openTail(t, p, "", keyClient(teamAKey, ""), true)
	tailB := openTail(t, p, "", keyClient(teamBKey, ""), true)

	for i, tenant := range []struct{ name, key string }{{"team-a", teamAKey}, {"team-b", teamBKey}} {
		batch := []map[string]any{
			{"id": shared, "timestamp": base.Add(time.Second).Format(time.RFC3339Nano), "level": "ERROR", "source": "checkout", "message": tenant.name + " one", "traceId": trace},
			{"timestamp": base.Add(2 * time.Second).Format(time.RFC3339Nano), "level": "INFO", "source": "checkout", "message": tenant.name + " two", "traceId": trace},
			{"timestamp": base.Add(3 * time.Second).Format(time.RFC3339Nano), "level": "WARN", "source": "billing", "message": tenant.name + " three"},
			{"level": "bogus", "source": "checkout", "message": tenant.name + " refused"},
		}
		// team-b sends one more, so the counts tell the tenants apart.
		if i == 1 {
			batch = append(batch, map[string]any{"timestamp": base.Add(4 * time.Second).Format(time.RFC3339Nano), "level": "INFO", "source": "checkout", "message": "team-b four"})
		}
		r := tenantDo(t, tenant.key, "", http.MethodPost, p.producer+"/api/v1/logs/batch", batch)
		if r.status != 202 || r.body["rejected"] != float64(1) {
			t.Fatalf("%s batch: %d %s", tenant.name, r.status, r.raw)
		}
	}
	p.waitRows(7)

	t.Run("search", func(t *testing.T) {
		for _, tc := range []struct {
			key  string
			want []string
		}{
			{teamAKey, []string{"team-a one", "team-a three", "team-a two"}},
			{teamBKey, []string{"team-b four", "team-b one", "team-b three", "team-b two"}},
		} {
			msgs, tenants := contentOf(t, tenantDo(t, tc.key, "", http.MethodGet, p.gateway+"/api/v1/logs?"+window, nil))
			if !slices.Equal(msgs, tc.want) || len(tenants) != 0 {
				t.Errorf("search: %v (tenants shown %v), want %v and no tenant field", msgs, tenants, tc.want)
			}
			msgs, _ = contentOf(t, tenantDo(t, tc.key, "", http.MethodGet, p.gateway+"/api/v1/logs?"+window+"&traceId="+trace, nil))
			if len(msgs) != 2 || !strings.HasPrefix(msgs[0], tc.want[0][:6]) || !strings.HasPrefix(msgs[1], tc.want[0][:6]) {
				t.Errorf("trace search: %v, want the tenant's own two", msgs)
			}
		}
	})

	t.Run("stats and histogram", func(t *testing.T) {
		for _, tc := range []struct {
			key   string
			total float64
		}{{teamAKey, 3}, {teamBKey, 4}} {
			r := tenantDo(t, tc.key, "", http.MethodGet, p.gateway+"/api/v1/logs/stats?"+window, nil)
			if r.status != 200 || r.body["totalCount"] != tc.total {
				t.Errorf("stats: %d %s, want totalCount %v", r.status, r.raw, tc.total)
			}
			if src := r.body["topSources"].(map[string]any); src["checkout"] != tc.total-1 || src["billing"] != 1.0 {
				t.Errorf("top sources %v", src)
			}
			r = tenantDo(t, tc.key, "", http.MethodGet, p.gateway+"/api/v1/logs/histogram?"+window+"&interval=1m", nil)
			var sum float64
			for _, b := range r.body["buckets"].([]any) {
				sum += b.(map[string]any)["total"].(float64)
			}
			if r.status != 200 || sum != tc.total {
				t.Errorf("histogram: %v logs, want %v: %s", sum, tc.total, r.raw)
			}
		}
	})

	t.Run("loki", func(t *testing.T) {
		q := url.Values{"query": {`{source="checkout"}`}, "start": {fmt.Sprint(base.UnixNano())},
			"end": {fmt.Sprint(base.Add(time.Minute).UnixNano())}, "limit": {"100"}}
		for _, tc := range []struct {
			key, orgID, tenant string
		}{{teamAKey, "", "team-a"}, {teamBKey, "team-b", "team-b"}, {adminKey, "team-a", "team-a"}} {
			r := tenantDo(t, tc.key, tc.orgID, http.MethodGet, p.gateway+"/loki/api/v1/query_range?"+q.Encode(), nil)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			lines := 0
			for _, st := range r.body["data"].(map[string]any)["result"].([]any) {
				for _, v := range st.(map[string]any)["values"].([]any) {
					line := v.([]any)[1].(string)
					if !strings.Contains(line, tc.tenant+" ") {
						t.Errorf("%s's Loki query returned %q", tc.tenant, line)
					}
					lines++
				}
			}
			if want := map[string]int{"team-a": 2, "team-b": 3}[tc.tenant]; lines != want {
				t.Errorf("%s's Loki query: %d lines, want %d", tc.tenant, lines, want)
			}
		}
	})

	t.Run("cache", func(t *testing.T) {
		// The same query, cached for one tenant, is a miss for the other.
		q := p.gateway + "/api/v1/logs/stats?" + window + "&logLevel=INFO"
		first := tenantDo(t, teamAKey, "", http.MethodGet, q, nil)
		again := tenantDo(t, teamAKey, "", http.MethodGet, q, nil)
		other := tenantDo(t, teamBKey, "", http.MethodGet, q, nil)
		if again.header.Get("X-Cache") != "HIT" {
			t.Fatalf("team-a's repeat: X-Cache %q, want HIT", again.header.Get("X-Cache"))
		}
		if other.header.Get("X-Cache") == "HIT" || other.body["totalCount"] != 2.0 || first.body["totalCount"] != 1.0 {
			t.Errorf("team-b: X-Cache %q, %s; team-a: %s", other.header.Get("X-Cache"), other.raw, first.raw)
		}
	})

	t.Run("tenant header", func(t *testing.T) {
		r := tenantDo(t, teamAKey, "team-b", http.MethodGet, p.gateway+"/api/v1/logs?"+window, nil)
		if r.status != 403 || !strings.Contains(string(r.raw), "admin") {
			t.Errorf("team-a acting for team-b: %d %s, want 403 naming the admin scope", r.status, r.raw)
		}
		if r := tenantDo(t, teamAKey, "team-a", http.MethodGet, p.gateway+"/api/v1/logs?"+window, nil); r.status != 200 {
			t.Errorf("team-a naming itself: %d %s", r.status, r.raw)
		}
		if r := tenantDo(t, adminKey, "bad tenant!", http.MethodGet, p.gateway+"/api/v1/logs?"+window, nil); r.status != 400 {
			t.Errorf("a malformed tenant: %d %s, want 400", r.status, r.raw)
		}
		if r := tenantDo(t, adminKey, "team-a|team-b", http.MethodPost, p.producer+"/api/v1/logs", map[string]any{"level": "INFO", "source": "x", "message": "y"}); r.status != 400 {
			t.Errorf("a write for two tenants: %d %s, want 400", r.status, r.raw)
		}
		// The operator's own tenant (the default) holds nothing.
		if msgs, _ := contentOf(t, tenantDo(t, adminKey, "", http.MethodGet, p.gateway+"/api/v1/logs?"+window, nil)); len(msgs) != 0 {
			t.Errorf("the operator's own tenant shows %v", msgs)
		}
		msgs, tenants := contentOf(t, tenantDo(t, adminKey, "team-a|team-b", http.MethodGet, p.gateway+"/api/v1/logs?"+window+"&traceId="+trace, nil))
		slices.Sort(tenants)
		if len(msgs) != 4 || !slices.Equal(tenants, []string{"team-a", "team-a", "team-b", "team-b"}) {
			t.Errorf("admin across tenants: %v %v, want both tenants' two, each named", msgs, tenants)
		}
		r = tenantDo(t, adminKey, "team-a|team-b", http.MethodGet, p.gateway+"/api/v1/logs/stats?"+window, nil)
		if r.body["totalCount"] != 7.0 {
			t.Errorf("admin stats across tenants: %s", r.raw)
		}
	})

	t.Run("live tail", func(t *testing.T) {
		for _, tenant := range []struct{ name, key string }{{"team-b", teamBKey}, {"team-a", teamAKey}} {
			r := tenantDo(t, tenant.key, "", http.MethodPost, p.producer+"/api/v1/logs", map[string]any{"level": "INFO", "source": "checkout", "message": tenant.name + " live"})
			if r.status != 202 {
				t.Fatalf("%s live: %d %s", tenant.name, r.status, r.raw)
			}
		}
		// Each stream shows its tenant's logs, up to its live one, and
		// none of the other's.
		for _, tc := range []struct {
			s      *sseStream
			tenant string
		}{{tailA, "team-a"}, {tailB, "team-b"}} {
			for {
				var got map[string]any
				if err := json.Unmarshal([]byte(tc.s.next(t).data), &got); err != nil {
					t.Fatal(err)
				}
				msg, _ := got["message"].(string)
				if !strings.HasPrefix(msg, tc.tenant+" ") {
					t.Fatalf("%s's tail shows %q", tc.tenant, msg)
				}
				if msg == tc.tenant+" live" {
					break
				}
			}
		}
	})

	t.Run("dead letters", func(t *testing.T) {
		cfg := p.cfg
		cfg.Kafka.Brokers = p.app.KafkaBrokers()
		for _, tenant := range []string{"team-a", "team-b"} {
			var out strings.Builder
			if err := app.DLQList(context.Background(), cfg, app.DLQOptions{JSON: true, Tenant: tenant}, &out); err != nil {
				t.Fatal(err)
			}
			var letters []ingest.DLQRecord
			if err := json.Unmarshal([]byte(out.String()), &letters); err != nil {
				t.Fatalf("%v: %s", err, out.String())
			}
			if len(letters) != 1 || letters[0].Tenant != tenant || !strings.Contains(letters[0].Preview, tenant+" refused") {
				t.Errorf("%s's letters: %+v", tenant, letters)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		body := string(tenantDo(t, adminKey, "", http.MethodGet, p.producer+"/metrics", nil).raw)
		for _, want := range []string{
			`logs_tenant_events_total{outcome="accepted",tenant="team-a"} 4`,
			`logs_tenant_events_total{outcome="accepted",tenant="team-b"} 5`,
			`logs_tenant_events_total{outcome="rejected",tenant="team-a"} 1`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		body = string(tenantDo(t, adminKey, "", http.MethodGet, p.gateway+"/metrics", nil).raw)
		if !strings.Contains(body, `log_tenant_queries_total{endpoint="search",tenant="team-a"}`) ||
			!strings.Contains(body, `log_tenant_queries_total{endpoint="search",tenant="_many"}`) {
			t.Errorf("/metrics lacks the queries by tenant:\n%s", grepLines(body, "log_tenant_queries_total"))
		}
	})
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return fmt.Sprint(out)
}

package app_test

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logengine/logengine/app"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/resilience/resiliencetest"
)

// Keys of the secured pipeline in these tests.
const (
	ingestKey  = "le_ingest-0123456789"
	queryKey   = "le_query-0123456789"
	adminKey   = "le_admin-0123456789"
	metricsTok = "metrics-token-0123456789"
)

const securedKeys = `keys:
  - name: shipper
    key: "` + ingestKey + `"
    tenant: team-a
    scopes: [ingest]
  - name: reader
    key: "` + queryKey + `"
    tenant: team-a
    scopes: [query]
  - name: operator
    key: "` + adminKey + `"
    scopes: [admin]
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// replaceFile swaps a file's content at once, as an operator's editor or
// a secret manager does.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func startSecured(t *testing.T, keys string, mutate func(*configs.Config)) *pipeline {
	t.Helper()
	keysFile := writeFile(t, "keys.yaml", keys)
	tokenFile := writeFile(t, "metrics-token", metricsTok+"\n")
	return startPipeline(t, func(c *configs.Config) {
		c.Auth.KeysFile = keysFile
		c.Auth.MetricsTokenFile = tokenFile
		if mutate != nil {
			mutate(c)
		}
	})
}

// TestAuthEndpointsByCredential is the table of endpoint × credential ×
// status a secured pipeline answers.
func TestAuthEndpointsByCredential(t *testing.T) {
	t.Parallel()
	p := startSecured(t, securedKeys, nil)
	event := []byte(`{"level":"info","source":"auth-test","message":"hello"}`)
	batch := []byte(`[{"level":"info","source":"auth-test","message":"hello"}]`)
	now := strconv.FormatInt(time.Now().UnixNano(), 10)
	lokiPush := []byte(`{"streams":[{"stream":{"service_name":"auth-test"},"values":[["` + now + `","via loki"]]}]}`)
	otlpLogs := []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"` + now + `","severityText":"INFO","body":{"stringValue":"via otlp"}}]}]}]}`)
	bulk := []byte("{\"index\":{}}\n{\"message\":\"via bulk\",\"log.level\":\"info\"}\n")
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	type cred struct{ name, header, value string }
	var (
		none       = cred{"none", "", ""}
		ingBearer  = cred{"ingest bearer", "Authorization", "Bearer " + ingestKey}
		ingBasic   = cred{"ingest basic", "Authorization", basic("shipper", ingestKey)}
		ingHeader  = cred{"ingest X-API-Key", "X-API-Key", ingestKey}
		qryBearer  = cred{"query bearer", "Authorization", "Bearer " + queryKey}
		qryHeader  = cred{"query X-API-Key", "X-API-Key", queryKey}
		admBearer  = cred{"admin bearer", "Authorization", "Bearer " + adminKey}
		wrong      = cred{"unknown key", "Authorization", "Bearer le_wrong-0123456789"}
		malformed  = cred{"malformed", "Authorization", "Bearer"}
		metricsCrd = cred{"metrics token", "Authorization", "Bearer " + metricsTok}
	)
	cases := []struct {
		method, base, path string
		body               []byte
		cred               cred
		want               int
	}{
		// Producer: ingest for every ingest endpoint.
		{"POST", p.producer, "/api/v1/logs", event, none, 401},
		{"POST", p.producer, "/api/v1/logs", event, wrong, 401},
		{"POST", p.producer, "/api/v1/logs", event, malformed, 401},
		{"POST", p.producer, "/api/v1/logs", event, qryBearer, 403},
		{"POST", p.producer, "/api/v1/logs", event, ingBearer, 202},
		{"POST", p.producer, "/api/v1/logs", event, ingBasic, 202},
		{"POST", p.producer, "/api/v1/logs", event, ingHeader, 202},
		{"POST", p.producer, "/api/v1/logs/batch", batch, ingBearer, 202},
		{"POST", p.producer, "/api/v1/logs/batch", batch, admBearer, 202},
		{"POST", p.producer, "/api/v1/logs/batch", batch, none, 401},
		// Every shipper protocol needs ingest too, and counts as stored logs.
		{"POST", p.producer, "/loki/api/v1/push", lokiPush, none, 401},
		{"POST", p.producer, "/loki/api/v1/push", lokiPush, qryBearer, 403},
		{"POST", p.producer, "/loki/api/v1/push", lokiPush, ingBasic, 204},
		{"POST", p.producer, "/v1/logs", otlpLogs, none, 401},
		{"POST", p.producer, "/v1/logs", otlpLogs, ingHeader, 200},
		{"POST", p.producer, "/_bulk", bulk, none, 401},
		{"POST", p.producer, "/_bulk", bulk, ingBearer, 200},
		{"POST", p.producer, "/api/v1/logs/jsonl", event, none, 401},
		{"POST", p.producer, "/api/v1/logs/jsonl", event, ingBearer, 202},
		{"GET", p.producer, "/no-such-route", nil, none, 401}, // no route enumeration without a key
		{"GET", p.producer, "/no-such-route", nil, ingBearer, 404},
		// Gateway: query for the API, the web UI's files open.
		{"GET", p.gateway, "/api/v1/logs", nil, none, 401},
		{"GET", p.gateway, "/api/v1/logs", nil, ingBearer, 403},
		{"GET", p.gateway, "/api/v1/logs", nil, qryBearer, 200},
		{"GET", p.gateway, "/api/v1/logs", nil, qryHeader, 200},
		{"GET", p.gateway, "/api/v1/logs", nil, admBearer, 200},
		{"GET", p.gateway, "/api/v1/logs/stats", nil, qryBearer, 200},
		{"GET", p.gateway, "/api/v1/logs/stats", nil, none, 401},
		{"GET", p.gateway, "/api/v1/logs/histogram", nil, none, 401},
		{"POST", p.gateway, "/api/v1/logs/query", []byte(`{}`), none, 401},
		{"GET", p.gateway, "/loki/api/v1/labels", nil, none, 401},
		{"GET", p.gateway, "/ui/", nil, none, 200},
		{"GET", p.gateway, "/ui/app.js", nil, none, 200},
		{"GET", p.gateway, "/", nil, none, 200},
		{"GET", p.gateway, "/debug/pprof/", nil, admBearer, 404}, // never on an API listener
		// Admin: the running configuration.
		{"GET", p.gateway, "/config", nil, none, 401},
		{"GET", p.gateway, "/config", nil, qryBearer, 403},
		{"GET", p.gateway, "/config", nil, admBearer, 200},
		{"GET", p.consumer, "/config", nil, ingBearer, 403},
		{"GET", p.consumer, "/config", nil, admBearer, 200},
		// Health and readiness stay open; /metrics takes its token.
		{"GET", p.producer, "/healthz", nil, none, 200},
		{"GET", p.gateway, "/readyz", nil, none, 200},
		{"GET", p.consumer, "/actuator/health", nil, none, 200},
		{"GET", p.consumer, "/metrics", nil, none, 401},
		{"GET", p.consumer, "/metrics", nil, ingBearer, 401},
		{"GET", p.consumer, "/metrics", nil, metricsCrd, 200},
		{"GET", p.gateway, "/actuator/prometheus", nil, metricsCrd, 200},
		{"GET", p.producer, "/metrics", nil, admBearer, 200},
	}
	for _, c := range cases {
		var headers []string
		if c.cred.header != "" {
			headers = []string{c.cred.header, c.cred.value}
		}
		ct := ""
		if c.body != nil {
			ct = "application/json"
		}
		r := do(t, c.method, c.base+c.path, ct, c.body, headers...)
		if r.status != c.want {
			t.Errorf("%s %s with %s: %d, want %d: %s", c.method, c.path, c.cred.name, r.status, c.want, r.raw)
			continue
		}
		if c.want == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s %s with %s: 401 without WWW-Authenticate", c.method, c.path, c.cred.name)
		}
	}
	// The valid ingests are stored: a key lets data through, not just a status.
	p.waitRows(9)

	// Decisions are counted by key name, never by key.
	metrics := string(do(t, "GET", p.gateway+"/metrics", "", nil, "Authorization", "Bearer "+metricsTok).raw)
	for _, want := range []string{
		`auth_decisions_total{key="shipper",outcome="allowed",role="producer"}`,
		`auth_decisions_total{key="reader",outcome="forbidden",role="producer"}`,
		`auth_decisions_total{key="-",outcome="missing",role="gateway"}`,
		`auth_decisions_total{key="-",outcome="invalid",role="producer"}`,
		`auth_decisions_total{key="metrics-token",outcome="allowed",role="gateway"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	for _, secret := range []string{ingestKey, queryKey, adminKey, metricsTok} {
		if strings.Contains(metrics, secret) || strings.Contains(p.logs.String(), secret) {
			t.Errorf("a secret shows in /metrics or the logs")
		}
	}
	if !strings.Contains(p.logs.String(), `"msg":"request refused"`) || !strings.Contains(p.logs.String(), `"client":"127.0.0.1:`) {
		t.Errorf("refused requests were not logged with the client's address")
	}
	if !strings.Contains(p.logs.String(), `"status":202,"duration_ms"`) || !strings.Contains(p.logs.String(), `"key":"shipper"`) {
		t.Errorf("request log lines do not name their key")
	}
}

// TestAuthKeysReloadWithoutRestart: a changed keys file takes effect
// while the process runs, when it changes and on SIGHUP.
func TestAuthKeysReloadWithoutRestart(t *testing.T) {
	t.Parallel()
	keysFile := writeFile(t, "keys.yaml", securedKeys)
	p := startPipeline(t, func(c *configs.Config) {
		c.Auth.KeysFile = keysFile
		c.Auth.ReloadInterval = 20 * time.Millisecond
	})
	status := func(key string) int {
		return do(t, "GET", p.gateway+"/api/v1/logs/stats", "", nil, "Authorization", "Bearer "+key).status
	}
	if s := status(queryKey); s != 200 {
		t.Fatalf("before the change: %d", s)
	}
	const newKey = "le_rotated-0123456789"
	replaceFile(t, keysFile, strings.Replace(securedKeys, queryKey, newKey, 1))
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		return status(newKey) == 200 && status(queryKey) == 401, "the rotated key is not in use yet"
	})
	// A broken file keeps the keys in use.
	replaceFile(t, keysFile, "keys: [{name: broken}]")
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		return strings.Contains(p.logs.String(), "API keys not reloaded"), "the broken file was not noticed"
	})
	if s := status(newKey); s != 200 {
		t.Fatalf("after a broken keys file the last good keys must stay: %d", s)
	}
}

// TestAuthKeysReloadOnSIGHUP: with a reload interval too long to matter,
// SIGHUP reloads the keys, and does not stop the process.
func TestAuthKeysReloadOnSIGHUP(t *testing.T) {
	keysFile := writeFile(t, "keys.yaml", securedKeys)
	p := startPipeline(t, func(c *configs.Config) {
		c.Auth.KeysFile = keysFile
		c.Auth.ReloadInterval = time.Hour
	})
	const newKey = "le_hup-rotated-0123456789"
	replaceFile(t, keysFile, strings.Replace(securedKeys, queryKey, newKey, 1))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		s := do(t, "GET", p.gateway+"/api/v1/logs/stats", "", nil, "X-API-Key", newKey).status
		return s == 200, "after SIGHUP the new key gets " + strconv.Itoa(s)
	})
}

// TestAuthRateLimits: past a key's requests/s or logs/s the answer is
// 429 with Retry-After. The limits are so small that no refill happens
// within the test, whatever the machine's speed.
func TestAuthRateLimits(t *testing.T) {
	t.Parallel()
	keys := `keys:
  - name: slow-reader
    key: "` + queryKey + `"
    scopes: [query]
    rate: {requests_per_second: 0.001}
  - name: small-shipper
    key: "` + ingestKey + `"
    scopes: [ingest]
    rate: {logs_per_second: 0.001}
  - name: other
    key: "` + adminKey + `"
    scopes: [admin]
  - name: loki-shipper
    key: "le_loki-0123456789"
    scopes: [ingest]
    rate: {logs_per_second: 0.001}
`
	p := startSecured(t, keys, nil)
	q := func() response {
		return do(t, "GET", p.gateway+"/api/v1/logs/stats", "", nil, "Authorization", "Bearer "+queryKey)
	}
	if r := q(); r.status != 200 {
		t.Fatalf("first request: %d %s", r.status, r.raw)
	}
	r := q()
	if r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("second request of a 0.001 requests/s key: %d, Retry-After %q; want 429 with Retry-After", r.status, r.header.Get("Retry-After"))
	}
	// Another key is not affected.
	if r := do(t, "GET", p.gateway+"/api/v1/logs/stats", "", nil, "X-API-Key", adminKey); r.status != 200 {
		t.Fatalf("another key: %d", r.status)
	}

	// Logs: a batch of 3 is taken whole, then the key is in debt.
	batch := []byte(`[{"level":"info","source":"a","message":"1"},{"level":"info","source":"a","message":"2"},{"level":"info","source":"a","message":"3"}]`)
	if r := do(t, "POST", p.producer+"/api/v1/logs/batch", "application/json", batch, "X-API-Key", ingestKey); r.status != 202 {
		t.Fatalf("first batch: %d %s", r.status, r.raw)
	}
	r = do(t, "POST", p.producer+"/api/v1/logs", "application/json", []byte(`{"level":"info","source":"a","message":"4"}`), "X-API-Key", ingestKey)
	if r.status != 429 {
		t.Fatalf("a key past its logs/s: %d, want 429: %s", r.status, r.raw)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q, want whole seconds", r.header.Get("Retry-After"))
	}
	// The logs of every protocol count: a Loki push of three lines.
	now := time.Now().UnixNano()
	push := []byte(fmt.Sprintf(`{"streams":[{"stream":{"service_name":"loki"},"values":[["%d","a"],["%d","b"],["%d","c"]]}]}`, now, now+1, now+2))
	if r := do(t, "POST", p.producer+"/loki/api/v1/push", "application/json", push, "X-API-Key", "le_loki-0123456789"); r.status != 204 {
		t.Fatalf("first push: %d %s", r.status, r.raw)
	}
	if r := do(t, "POST", p.producer+"/loki/api/v1/push", "application/json", push, "X-API-Key", "le_loki-0123456789"); r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("a Loki shipper past its logs/s: %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	p.waitRows(6)
	if got := p.metric("auth_decisions_total"); got < 5 {
		t.Fatalf("auth_decisions_total is %v", got)
	}
}

// TestOpenServerBindsLoopback: without keys, a listen address without a
// host binds loopback (with a warning); with keys, every interface.
func TestOpenServerBindsLoopback(t *testing.T) {
	t.Parallel()
	open := startPipeline(t, func(c *configs.Config) {
		c.HTTP.GatewayAddr = ":0"
		c.Roles = "all"
	})
	if addr := open.app.Addr(app.RoleGateway); !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("an open gateway at :0 listens on %s, want loopback", addr)
	}
	if !strings.Contains(open.logs.String(), "every API endpoint is open") {
		t.Errorf("no warning that the API is open")
	}
	secured := startSecured(t, securedKeys, func(c *configs.Config) { c.HTTP.GatewayAddr = ":0" })
	if addr := secured.app.Addr(app.RoleGateway); strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("a gateway with keys at :0 listens on %s, want every interface", addr)
	}
}

// TestPprofOnlyOnItsLoopbackListener: profiles are served on their own
// listener, and a non-loopback address for it is refused.
func TestPprofOnlyOnItsLoopbackListener(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, func(c *configs.Config) {
		c.HTTP.Pprof = true
		c.HTTP.PprofAddr = "127.0.0.1:0"
	})
	if r := get(t, "http://"+p.app.PprofAddr()+"/debug/pprof/"); r.status != 200 {
		t.Fatalf("profiles: %d", r.status)
	}
	if r := get(t, p.gateway+"/debug/pprof/"); r.status != 404 {
		t.Fatalf("profiles on the gateway's listener: %d, want 404", r.status)
	}
	cfg := testConfig(t)
	cfg.HTTP.Pprof = true
	cfg.HTTP.PprofAddr = "0.0.0.0:6060"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--pprof-addr") {
		t.Fatalf("a pprof address on every interface: %v", err)
	}
}

// TestCORS: off by default; with --cors-allowed-origins a page of those
// origins may call the API, its preflight needing no key.
func TestCORS(t *testing.T) {
	t.Parallel()
	const origin = "https://ui.example.com"
	p := startSecured(t, securedKeys, func(c *configs.Config) { c.Auth.CORSAllowedOrigins = []string{origin} })
	pre := do(t, "OPTIONS", p.gateway+"/api/v1/logs", "", nil,
		"Origin", origin, "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "x-api-key")
	if pre.status != 204 || pre.header.Get("Access-Control-Allow-Origin") != origin ||
		!strings.Contains(strings.ToLower(pre.header.Get("Access-Control-Allow-Headers")), "x-api-key") {
		t.Fatalf("preflight from an allowed origin: %d %v", pre.status, pre.header)
	}
	r := do(t, "GET", p.gateway+"/api/v1/logs", "", nil, "Origin", origin, "X-API-Key", queryKey)
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != origin {
		t.Fatalf("GET from an allowed origin: %d, Access-Control-Allow-Origin %q", r.status, r.header.Get("Access-Control-Allow-Origin"))
	}
	if r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("an API answer without X-Content-Type-Options: nosniff")
	}
	other := do(t, "GET", p.gateway+"/api/v1/logs", "", nil, "Origin", "https://evil.example.com", "X-API-Key", queryKey)
	if got := other.header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("another origin was allowed: %q", got)
	}
	// Without the flag no CORS header is sent.
	open := startPipeline(t, nil)
	r = do(t, "GET", open.gateway+"/api/v1/logs", "", nil, "Origin", origin)
	if got := r.header.Get("Access-Control-Allow-Origin"); r.status != 200 || got != "" {
		t.Errorf("CORS is on by default: %d %q", r.status, got)
	}
}

// TestAuthKeysFromTheEnvironment: LOGENGINE_AUTH_KEYS holds keys too, and
// a name in both it and the file stops the start.
func TestAuthKeysFromTheEnvironment(t *testing.T) {
	t.Parallel()
	const envKey = "le_from-env-0123456789"
	env := func(c *configs.Config) {
		c.Secrets(func(name string) (string, bool) {
			if name == configs.EnvAuthKeys {
				return `{"keys":[{"name":"from-env","key":"` + envKey + `","scopes":["query"]}]}`, true
			}
			return "", false
		})
	}
	p := startSecured(t, securedKeys, env)
	if r := do(t, "GET", p.gateway+"/api/v1/logs/stats", "", nil, "X-API-Key", envKey); r.status != 200 {
		t.Fatalf("a key from the environment: %d", r.status)
	}
	if r := do(t, "GET", p.gateway+"/api/v1/logs/stats", "", nil, "X-API-Key", queryKey); r.status != 200 {
		t.Fatalf("a key from the file beside it: %d", r.status)
	}
	cfg := testConfig(t)
	cfg.Auth.KeysFile = writeFile(t, "keys.yaml", strings.Replace(securedKeys, "name: reader", "name: from-env", 1))
	env(&cfg)
	if _, err := app.New(cfg, "test", slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "from-env") {
		t.Fatalf("a key named in the file and the environment: %v", err)
	}
}

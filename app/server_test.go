package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/ingest"
	"github.com/logengine/logengine/query"
	"github.com/logengine/logengine/store/logs"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace/noop"
)

// These tests build one role's listener alone (no Kafka, PostgreSQL or
// Redis): what they prove is the HTTP layer's own behaviour.

// logBuffer collects a server's JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// entries decodes every log line.
func (b *logBuffer) entries(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q is not one JSON object: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

// find returns the log entries with message msg.
func (b *logBuffer) find(t *testing.T, msg string) []map[string]any {
	t.Helper()
	return slices.DeleteFunc(b.entries(t), func(e map[string]any) bool { return e["msg"] != msg })
}

type testServer struct {
	addr string // host:port
	url  string
	reg  *prometheus.Registry
	logs *logBuffer
}

// startServer serves one role's listener on an ephemeral port until the
// test ends.
func startServer(t *testing.T, role Role, mutate func(*configs.HTTP), routes func(*echo.Echo)) *testServer {
	t.Helper()
	hc := configs.DefaultHTTP()
	if mutate != nil {
		mutate(&hc)
	}
	if err := hc.Validate(); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{reg: prometheus.NewRegistry(), logs: &logBuffer{}}
	var ready atomic.Bool
	ready.Store(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := newServer(serverConfig{
		role: role, version: "test", http: hc, logger: slog.New(slog.NewJSONHandler(ts.logs, nil)),
		reg: ts.reg, tracer: noop.NewTracerProvider(), ready: &ready, routes: routes,
	}, ln)
	if err != nil {
		_ = ln.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.http.Serve(s.ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.http.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			t.Logf("server logs:\n%s", ts.logs.buf.String())
		}
	})
	ts.addr = s.ln.Addr().String()
	ts.url = "http://" + ts.addr
	return ts
}

type answer struct {
	status int
	header http.Header
	raw    string
}

// request sends one request on a connection of its own.
func request(t *testing.T, method, url, body string, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
}

// panickingHandler is a bug: it panics on every request.
func panickingHandler(echo.Context) error {
	var m map[string]int
	m["boom"]++ // assignment to entry in nil map
	return nil
}

func TestPanicIsA500ForThatRequestOnly(t *testing.T) {
	ts := startServer(t, RoleGateway, nil, func(e *echo.Echo) { e.GET("/boom", panickingHandler) })

	r := request(t, http.MethodGet, ts.url+"/boom", "", "X-Correlation-ID", "cid-panic-1")
	if r.status != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500: %s", r.status, r.raw)
	}
	if want := `{"correlationId":"cid-panic-1","error":"internal error"}` + "\n"; r.raw != want {
		t.Errorf("body %q, want %q", r.raw, want)
	}
	if strings.Contains(r.raw, "nil map") {
		t.Errorf("the panic's text reached the client: %s", r.raw)
	}

	lines := ts.logs.find(t, "http handler panicked")
	if len(lines) != 1 {
		t.Fatalf("%d panic log lines, want 1", len(lines))
	}
	l := lines[0]
	stack, _ := l["stack"].(string)
	if l["correlation_id"] != "cid-panic-1" || !strings.Contains(l["panic"].(string), "nil map") ||
		!strings.Contains(stack, "app.panickingHandler") || l["role"] != "gateway" {
		t.Errorf("panic log line %v: want the correlation id, the panic, the role and a stack naming the handler", l)
	}
	// Logged once, with its stack: not again as an internal error.
	if n := len(ts.logs.find(t, "http internal error")); n != 0 {
		t.Errorf("the panic was also logged %d times as an internal error", n)
	}
	// The request is observed as the 500 it became.
	if !slices.ContainsFunc(ts.logs.find(t, "http request"), func(e map[string]any) bool {
		return e["path"] == "/boom" && e["status"] == 500.0 && e["correlation_id"] == "cid-panic-1"
	}) {
		t.Errorf("no request log line with status 500 for /boom")
	}

	m := request(t, http.MethodGet, ts.url+"/metrics", "")
	if !strings.Contains(m.raw, "\nhttp_panics_total{role=\"gateway\"} 1\n") {
		t.Errorf("/metrics does not count the panic:\n%s", grepLines(m.raw, "http_panics_total"))
	}
	if !strings.Contains(m.raw, `http_requests_total{code="500",role="gateway",route="/boom"} 1`) {
		t.Errorf("/metrics does not count the 500:\n%s", grepLines(m.raw, "http_requests_total"))
	}

	// The server keeps serving, the same route included.
	if r := request(t, http.MethodGet, ts.url+"/healthz", ""); r.status != http.StatusOK {
		t.Errorf("after the panic, GET /healthz: %d %s", r.status, r.raw)
	}
	if r := request(t, http.MethodGet, ts.url+"/boom", ""); r.status != http.StatusInternalServerError {
		t.Errorf("after the panic, GET /boom again: %d %s", r.status, r.raw)
	}
	if got := counterValue(t, ts.reg, "http_panics_total"); got != 2 {
		t.Errorf("http_panics_total = %v, want 2", got)
	}
}

// counterValue sums a counter family's samples.
func counterValue(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestInternalErrorIsLoggedWithItsCause(t *testing.T) {
	ts := startServer(t, RoleGateway, nil, func(e *echo.Echo) {
		e.GET("/fail", func(echo.Context) error { return errors.New("disk on fire") })
	})
	r := request(t, http.MethodGet, ts.url+"/fail", "", "X-Correlation-ID", "cid-500")
	if want := `{"correlationId":"cid-500","error":"internal error"}` + "\n"; r.status != http.StatusInternalServerError || r.raw != want {
		t.Errorf("answer %d %q, want 500 %q", r.status, r.raw, want)
	}
	lines := ts.logs.find(t, "http internal error")
	if len(lines) != 1 || lines[0]["err"] != "disk on fire" || lines[0]["correlation_id"] != "cid-500" || lines[0]["path"] != "/fail" {
		t.Errorf("internal error log lines %v, want one with the cause, the path and the correlation id", lines)
	}
}

func TestErrorsAnswerReadableJSON(t *testing.T) {
	// The gateway's refusals name "meta.<key>"; HTML escaping would turn
	// it into meta.\u003ckey\u003e.
	const msg = `a keyword search without a source, traceId or meta.<key> filter & a window > 1d is refused`
	ts := startServer(t, RoleGateway, nil, func(e *echo.Echo) {
		e.GET("/refuse", func(echo.Context) error { return echo.NewHTTPError(http.StatusUnprocessableEntity, msg) })
	})
	r := request(t, http.MethodGet, ts.url+"/refuse", "")
	if want := `{"error":"` + msg + `"}` + "\n"; r.status != http.StatusUnprocessableEntity || r.raw != want {
		t.Errorf("answer %d %q, want 422 %q", r.status, r.raw, want)
	}
}

func TestCorrelationID(t *testing.T) {
	ts := startServer(t, RoleGateway, nil, nil)
	generated := regexp.MustCompile(`^[0-9a-f]{32}$`)
	long := strings.Repeat("x", maxCorrelationIDBytes+1)
	for _, tc := range []struct {
		name, sent string
		want       *regexp.Regexp
	}{
		{"taken from the client", "corr-123", regexp.MustCompile(`^corr-123$`)},
		{"trimmed", "  corr-456 ", regexp.MustCompile(`^corr-456$`)},
		{"at the length limit", long[1:], regexp.MustCompile(`^` + long[1:] + `$`)},
		{"generated when absent", "", generated},
		{"generated when blank", "   ", generated},
		{"generated when too long", long, generated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var headers []string
			if tc.sent != "" {
				headers = []string{"X-Correlation-ID", tc.sent}
			}
			r := request(t, http.MethodGet, ts.url+"/", "", headers...)
			got := r.header.Get("X-Correlation-ID")
			if !tc.want.MatchString(got) {
				t.Errorf("X-Correlation-ID %q, want %s", got, tc.want)
			}
			if !slices.ContainsFunc(ts.logs.find(t, "http request"), func(e map[string]any) bool { return e["correlation_id"] == got }) {
				t.Errorf("no request log line with correlation id %q", got)
			}
		})
	}
}

// acceptAll is a Kafka that takes every event at once.
type acceptAll struct{}

func (acceptAll) Publish(context.Context, []logs.Event, []ingest.DeadLetter, string) error {
	return nil
}

func ingestRoutes(reg prometheus.Registerer) func(*echo.Echo) {
	return func(e *echo.Echo) {
		cfg := ingest.DefaultHandlerConfig()
		cfg.MaxBodyBytes, cfg.MaxBatchEvents = 1<<20, 10
		ingest.NewHandler(cfg, acceptAll{}, slog.New(slog.DiscardHandler), reg).Register(e)
	}
}

func TestInvalidEventSaysInvalidOnce(t *testing.T) {
	reg := prometheus.NewRegistry() // the ingest metrics; the server's own are elsewhere
	ts := startServer(t, RoleProducer, nil, ingestRoutes(reg))
	r := request(t, http.MethodPost, ts.url+"/api/v1/logs", `{"level":"INFO","source":"svc"}`, "Content-Type", "application/json")
	want := `{"error":"invalid event: message: is required and must not be blank",` +
		`"details":[{"field":"message","problem":"is required and must not be blank"}]}` + "\n"
	if r.status != http.StatusBadRequest || r.raw != want {
		t.Errorf("answer %d %q,\nwant 400 %q", r.status, r.raw, want)
	}
	r = request(t, http.MethodPost, ts.url+"/api/v1/logs/batch", `[{"level":"INFO","source":"svc"},{"message":"m","level":"INFO","source":"svc"}]`,
		"Content-Type", "application/json")
	if r.status != http.StatusAccepted || !strings.Contains(r.raw, `"errors":[{"index":0,"error":"invalid event: message: is required and must not be blank"}]`) {
		t.Errorf("batch answer %d %s", r.status, r.raw)
	}
}

func TestStalledBodyIsCutOffAtTheReadTimeout(t *testing.T) {
	reg := prometheus.NewRegistry()
	ts := startServer(t, RoleProducer, func(h *configs.HTTP) {
		h.ReadHeaderTimeout = 200 * time.Millisecond
		h.ReadTimeout = 300 * time.Millisecond
	}, ingestRoutes(reg))
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Half the announced body, then nothing.
	body := `{"message":"half`
	if _, err := io.WriteString(conn, "POST /api/v1/logs HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"+
		"Content-Length: 64\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	// Far beyond the read timeout: only reached if the server never cuts
	// the connection.
	if err := conn.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(conn) // until the server closes the connection
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server kept the stalled connection open; read so far: %q", raw)
	}
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
	if err != nil {
		t.Fatalf("answer %q: %v", raw, err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(text), "read timeout") {
		t.Errorf("answer %d %s, want 408 naming the read timeout", resp.StatusCode, text)
	}
}

func TestConnectionCap(t *testing.T) {
	ts := startServer(t, RoleConsumer, func(h *configs.HTTP) { h.MaxConns = 1 }, nil)
	get := "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"

	// The first connection is served and stays open (keep-alive).
	first, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := io.WriteString(first, get); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(first), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first connection: %d", resp.StatusCode)
	}

	// The second one connects (the kernel queues it) but is not served
	// while the first is open.
	second, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if _, err := io.WriteString(second, get); err != nil {
		t.Fatal(err)
	}
	if err := second.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	sr := bufio.NewReader(second)
	if _, err := sr.Peek(1); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the second connection was answered (err %v) while the first was open", err)
	}

	// Once the first closes, the second is served.
	first.Close()
	if err := second.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(sr, nil)
	if err != nil {
		t.Fatalf("second connection after the first closed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("second connection: %d", resp.StatusCode)
	}
}

func TestIndexListsEveryRoute(t *testing.T) {
	for _, tc := range []struct {
		role   Role
		routes func(*echo.Echo)
		api    []string
	}{
		{RoleProducer, ingestRoutes(prometheus.NewRegistry()), []string{"POST /api/v1/logs", "POST /api/v1/logs/batch", "POST /api/v1/logs/jsonl"}},
		{RoleConsumer, nil, nil},
		{RoleGateway, query.NewHandler(nil, query.DefaultLimits(), slog.New(slog.DiscardHandler), prometheus.NewRegistry()).Register,
			[]string{"GET /api/v1/logs", "GET /api/v1/logs/histogram", "POST /api/v1/logs/query", "GET /api/v1/logs/stats"}},
	} {
		t.Run(string(tc.role), func(t *testing.T) {
			ts := startServer(t, tc.role, nil, tc.routes)
			r := request(t, http.MethodGet, ts.url+"/", "")
			var body struct {
				Service, Status, Version, Description string
				Endpoints                             []string
			}
			if err := json.Unmarshal([]byte(r.raw), &body); err != nil || r.status != http.StatusOK {
				t.Fatalf("GET /: %d %s (%v)", r.status, r.raw, err)
			}
			if body.Service != "logengine-"+string(tc.role) || body.Status != "running" || body.Version != "test" || body.Description == "" {
				t.Errorf("GET /: %s", r.raw)
			}
			want := append([]string{"GET /", "GET /actuator/health", "GET /actuator/prometheus"}, tc.api...)
			want = append(want, "GET /healthz", "GET /metrics", "GET /readyz")
			if !slices.Equal(body.Endpoints, want) {
				t.Errorf("endpoints\n%q, want\n%q", body.Endpoints, want)
			}
			// Every endpoint listed is served.
			for _, ep := range body.Endpoints {
				method, path, _ := strings.Cut(ep, " ")
				if method == http.MethodGet && !strings.HasPrefix(path, "/api/") {
					if r := request(t, method, ts.url+path, ""); r.status != http.StatusOK {
						t.Errorf("%s: %d", ep, r.status)
					}
				}
			}
		})
	}
}

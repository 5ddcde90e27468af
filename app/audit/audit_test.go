package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/logengine/logengine/configs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNormalize(t *testing.T) {
	cases := []struct {
		name, raw, ctype, body string
		cut                    bool
		want                   string
	}{
		{"sorted, values in order", "source=b&logLevel=ERROR&source=a", "", "", false, "logLevel=ERROR&source=b&source=a"},
		{"secrets hidden, any case", "keyword=x&API_KEY=s3cret&token=t&Password=p", "", "", false, "API_KEY=xxxxx&Password=xxxxx&keyword=x&token=xxxxx"},
		{"values readable", "keyword=" + "bob%40example.com+logged%20in", "", "", false, "keyword=bob@example.com logged in"},
		{"separators escaped", "keyword=a%26b%3Dc%25&k%3Dx=1", "", "", false, "k%3Dx=1&keyword=a%26b=c%25"},
		{"control characters escaped", "keyword=a%0Ab", "", "", false, "keyword=a%0Ab"},
		{"form body merged", "limit=5", "application/x-www-form-urlencoded", "query=%7Bsource%3D%22a%22%7D&token=t", false, `limit=5&query={source="a"}&token=xxxxx`},
		{"JSON body sorted, secrets hidden", "", "application/json; charset=utf-8", `{"size":5,"keyword":"user-123","auth":{"x":1},"nested":[{"password":"p"}]}`, false,
			`{"auth":"xxxxx","keyword":"user-123","nested":[{"password":"xxxxx"}],"size":5}`},
		{"JSON numbers kept", "", "application/json", `{"size":12345678901234567890}`, false, `{"size":12345678901234567890}`},
		{"JSON body cut: its text", "", "application/json", `{"keyword":"user-1`, true, `{"keyword":"user-1`},
		{"not JSON: its text", "", "application/json", "not json", false, "not json"},
		{"params and body", "x=1", "application/json", `{"a":1}`, false, `x=1 {"a":1}`},
		{"nothing", "", "", "", false, ""},
	}
	for _, c := range cases {
		if got := Normalize(c.raw, c.ctype, []byte(c.body), c.cut); got != c.want {
			t.Errorf("%s: Normalize = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	s := strings.Repeat("é", 100) // 2 bytes each
	for _, max := range []int{64, 65, 99, 100} {
		got, cut := truncate(s, max)
		if !cut || len(got) > max || !utf8.ValidString(got) || !strings.HasSuffix(got, truncatedMarker) {
			t.Errorf("truncate(%d) = %q (%d bytes), %v", max, got, len(got), cut)
		}
	}
	if got, cut := truncate("short", 64); got != "short" || cut {
		t.Errorf("a short query was cut: %q", got)
	}
}

func newTestLogger(t *testing.T, cfg configs.Audit, stderr io.Writer) (*Logger, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	l, err := New(cfg, stderr, io.Discard, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	return l, reg
}

// TestRecordFields: a record's line has the documented names, a long
// query cut and marked, and the metric's principal stays bounded.
func TestRecordFields(t *testing.T) {
	var buf lockedBuffer
	cfg := configs.DefaultAudit()
	cfg.MaxQueryBytes = 64
	l, _ := newTestLogger(t, cfg, &buf)
	stop := l.Start()
	at := time.Date(2026, 12, 1, 10, 0, 0, 5, time.FixedZone("x", 3600))
	l.Log(Record{Time: at, Kind: KindQuery, Principal: "10.0.0.7", Client: "10.0.0.7", Method: "GET", Path: "/api/v1/logs",
		Query: strings.Repeat("k", 100), Status: 200, Rows: 0, RowsSet: true, Bytes: 10, Duration: 1500 * time.Microsecond})
	stop(context.Background())
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	want := map[string]any{"time": "2026-12-01T09:00:00.000000005Z", "log": "audit", "kind": "query", "principal": "10.0.0.7",
		"client": "10.0.0.7", "method": "GET", "path": "/api/v1/logs", "query": strings.Repeat("k", 64-len(truncatedMarker)) + truncatedMarker,
		"query_truncated": true, "status": float64(200), "outcome": "ok", "rows": float64(0), "bytes": float64(10), "duration_ms": 1.5}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	for _, k := range []string{"level", "msg", "tenant", "trace_id", "error"} {
		if _, ok := got[k]; ok {
			t.Errorf("record has %s: %s", k, buf.Bytes())
		}
	}
	if n := testutil.ToFloat64(l.records.WithLabelValues(KindQuery, PrincipalAnonymous)); n != 1 {
		t.Errorf("a principal that is not a key name must count as anonymous: %v", n)
	}
}

// blockingWriter never returns until released: a destination that hangs.
type blockingWriter struct{ release chan struct{} }

func (b blockingWriter) Write(p []byte) (int, error) { <-b.release; return len(p), nil }

// TestNeverBlocks: a destination that hangs does not hold up Log; past
// the queue records are dropped and counted.
func TestNeverBlocks(t *testing.T) {
	w := blockingWriter{release: make(chan struct{})}
	l, _ := newTestLogger(t, configs.DefaultAudit(), w)
	stop := l.Start()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range queueRecords + 101 { // one more is in the writer's hands
			l.Log(Record{Kind: KindQuery, Principal: PrincipalAnonymous})
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Log blocked on a hanging destination")
	}
	if n := testutil.ToFloat64(l.failures.WithLabelValues("queue_full")); n < 100 {
		t.Errorf("queue_full failures = %v, want at least 100", n)
	}
	close(w.release)
	stop(context.Background())
}

// TestReopen: after the file was moved away (log rotation), Reopen
// writes to a new file at the path.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, _ := newTestLogger(t, configs.Audit{Log: path, MaxQueryBytes: 4096}, io.Discard)
	stop := l.Start()
	l.Log(Record{Kind: KindAdmin, Principal: PrincipalSystem, Query: "before"})
	waitFor(t, path, "before")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	l.Reopen()
	// Reopen is handled in order with the queue by the one writer: wait
	// for the new file, then write.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the file was not reopened")
		}
		time.Sleep(5 * time.Millisecond)
	}
	l.Log(Record{Kind: KindAdmin, Principal: PrincipalSystem, Query: "after"})
	stop(context.Background())
	b, _ := os.ReadFile(path)
	old, _ := os.ReadFile(path + ".1")
	if !strings.Contains(string(b), "after") || strings.Contains(string(b), "before") || !strings.Contains(string(old), "before") {
		t.Errorf("new file %q, rotated file %q", b, old)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v, %v; want 0600", fi.Mode(), err)
	}
}

func waitFor(t *testing.T, path, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte(s)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared in %s", s, path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOffAndBadFile(t *testing.T) {
	l, err := New(configs.Audit{Log: configs.AuditOff, MaxQueryBytes: 4096}, io.Discard, io.Discard, slog.New(slog.DiscardHandler), nil)
	if err != nil || l != nil {
		t.Fatalf("off: %v, %v", l, err)
	}
	l.Log(Record{Kind: KindQuery}) // a nil logger writes nothing
	l.Start()(context.Background())
	_, err = New(configs.Audit{Log: filepath.Join(t.TempDir(), "missing", "audit.log"), MaxQueryBytes: 4096}, io.Discard, io.Discard, slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), "--audit-log") {
		t.Errorf("a file that cannot be opened must fail the start, naming the flag: %v", err)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.b.Bytes()...)
}

// BenchmarkRecord is what auditing adds to one search: normalizing its
// query and formatting and queueing its record (written by the writer
// goroutine to a discarding destination).
func BenchmarkRecord(b *testing.B) {
	l, err := New(configs.DefaultAudit(), io.Discard, io.Discard, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	stop := l.Start()
	defer stop(context.Background())
	raw := "size=50&keyword=user-123&logLevel=ERROR,FATAL&source=accounts&startTime=2026-12-01T00:00:00Z"
	b.ReportAllocs()
	for b.Loop() {
		l.Log(Record{Kind: KindQuery, Principal: "grafana", Tenant: "eu", Client: "10.0.3.7", Role: "gateway", Method: "GET",
			Path: "/api/v1/logs", Query: Normalize(raw, "", nil, false), Status: 200, Rows: 50, RowsSet: true, Bytes: 20000,
			Duration: time.Millisecond, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", CorrelationID: "9b2c0e6f", keyed: true})
	}
}

package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/logengine/logengine/app"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/resilience/resiliencetest"
	"github.com/logengine/logengine/store"
	"github.com/logengine/logengine/store/logs"
	"github.com/logengine/logengine/store/storetest"
)

// auditRecord is one line of the audit log, as an operator's jq reads it.
type auditRecord map[string]any

func (r auditRecord) str(k string) string { s, _ := r[k].(string); return s }
func (r auditRecord) num(k string) float64 {
	n, _ := r[k].(float64)
	return n
}

// readAudit parses every line of the audit file; a line that is not a
// JSON object fails the test.
func readAudit(t *testing.T, path string) []auditRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []auditRecord
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r auditRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line is not JSON: %v: %s", err, sc.Bytes())
		}
		if r.str("log") != "audit" {
			t.Fatalf("audit line without \"log\":\"audit\": %s", sc.Bytes())
		}
		out = append(out, r)
	}
	return out
}

// waitAudit waits for a record that match accepts (records are written
// after the answer, by the audit log's own goroutine) and returns it.
func waitAudit(t *testing.T, path, what string, match func(auditRecord) bool) auditRecord {
	t.Helper()
	var found auditRecord
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		for _, r := range readAudit(t, path) {
			if match(r) {
				found = r
				return true, ""
			}
		}
		return false, "no audit record of " + what
	})
	return found
}

// TestAuditRecordsQueriesByKey: with API keys, each query is recorded
// with the key's name and tenant, the normalized query with secrets
// hidden, status, rows and bytes; refused requests are recorded with
// their status; admin requests are recorded as such; ingest is not.
func TestAuditRecordsQueriesByKey(t *testing.T) {
	t.Parallel()
	p := startSecured(t, securedKeys, nil)
	auditLog := p.cfg.Audit.Log
	batch := []map[string]any{
		{"level": "ERROR", "source": "accounts", "message": "login failed for user-123"},
		{"level": "ERROR", "source": "accounts", "message": "password reset for user-123"},
		{"level": "INFO", "source": "accounts", "message": "login ok for user-456"},
	}
	if r := postJSON(t, p.producer+"/api/v1/logs/batch", batch, "Authorization", "Bearer "+ingestKey); r.status != 202 {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	p.waitRows(3)

	// A search by the reader key, parameters out of order, a key in the URL.
	r := do(t, "GET", p.gateway+"/api/v1/logs?size=10&keyword=user-123&api_key=le_leaked-0123456789&logLevel=ERROR", "", nil,
		"Authorization", "Bearer "+queryKey, "X-Correlation-ID", "audit-search-1")
	if r.status != 200 {
		t.Fatalf("search: %d %s", r.status, r.raw)
	}
	rec := waitAudit(t, auditLog, "the search", func(r auditRecord) bool { return r.str("correlation_id") == "audit-search-1" })
	want := map[string]any{
		"kind": "query", "principal": "reader", "tenant": "team-a", "client": "127.0.0.1", "role": "gateway",
		"method": "GET", "path": "/api/v1/logs", "query": "api_key=xxxxx&keyword=user-123&logLevel=ERROR&size=10",
		"status": float64(200), "outcome": "ok", "rows": float64(2), "bytes": float64(len(r.raw)),
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("search record %s = %v, want %v\n%v", k, rec[k], v, rec)
		}
	}
	if strings.Contains(fmt.Sprint(rec), "le_leaked") || strings.Contains(fmt.Sprint(rec), queryKey) {
		t.Errorf("the record holds a secret: %v", rec)
	}
	if len(rec.str("trace_id")) != 32 || rec.str("time") == "" {
		t.Errorf("record without trace id or time: %v", rec)
	}
	if _, err := time.Parse(time.RFC3339Nano, rec.str("time")); err != nil || !strings.HasSuffix(rec.str("time"), "Z") {
		t.Errorf("time %q is not RFC 3339 UTC", rec.str("time"))
	}

	// The same search as a JSON body: the body's fields, keys sorted.
	body := `{"size":5,"keyword":"user-123","source":"accounts","startTime":"2000-01-01T00:00:00Z","endTime":"2100-01-01T00:00:00Z","token":"hide-me"}`
	if r := do(t, "POST", p.gateway+"/api/v1/logs/query", "application/json", []byte(body),
		"X-API-Key", queryKey, "X-Correlation-ID", "audit-body-1"); r.status != 200 {
		t.Fatalf("query body: %d %s", r.status, r.raw)
	} else if !strings.Contains(string(r.raw), `"numberOfElements":2`) {
		t.Fatalf("the handler did not see the whole body: %s", r.raw)
	}
	rec = waitAudit(t, auditLog, "the body search", func(r auditRecord) bool { return r.str("correlation_id") == "audit-body-1" })
	if q := rec.str("query"); q != `{"endTime":"2100-01-01T00:00:00Z","keyword":"user-123","size":5,"source":"accounts","startTime":"2000-01-01T00:00:00Z","token":"xxxxx"}` || rec.num("rows") != 2 {
		t.Errorf("body search record: %v", rec)
	}

	// Stats: a query without a row count.
	if r := do(t, "GET", p.gateway+"/api/v1/logs/stats?source=accounts", "", nil, "X-API-Key", queryKey, "X-Correlation-ID", "audit-stats-1"); r.status != 200 {
		t.Fatalf("stats: %d", r.status)
	}
	rec = waitAudit(t, auditLog, "stats", func(r auditRecord) bool { return r.str("correlation_id") == "audit-stats-1" })
	if rec.str("path") != "/api/v1/logs/stats" || rec.str("query") != "source=accounts" || rec["rows"] != nil {
		t.Errorf("stats record: %v", rec)
	}

	// Refused: no key (401) and a key without the scope (403).
	if r := do(t, "GET", p.gateway+"/api/v1/logs?keyword=user-123", "", nil, "X-Correlation-ID", "audit-401"); r.status != 401 {
		t.Fatalf("without a key: %d", r.status)
	}
	rec = waitAudit(t, auditLog, "the 401", func(r auditRecord) bool { return r.str("correlation_id") == "audit-401" })
	if rec.str("principal") != "anonymous" || rec.num("status") != 401 || rec.str("outcome") != "error" ||
		rec.str("client") != "127.0.0.1" || rec.str("query") != "keyword=user-123" || rec.str("error") == "" {
		t.Errorf("401 record: %v", rec)
	}
	if r := do(t, "GET", p.gateway+"/api/v1/logs?keyword=user-123", "", nil, "X-API-Key", ingestKey, "X-Correlation-ID", "audit-403"); r.status != 403 {
		t.Fatalf("ingest key on the gateway: %d", r.status)
	}
	rec = waitAudit(t, auditLog, "the 403", func(r auditRecord) bool { return r.str("correlation_id") == "audit-403" })
	if rec.str("principal") != "shipper" || rec.num("status") != 403 || rec.str("kind") != "query" {
		t.Errorf("403 record: %v", rec)
	}

	// Admin: the running configuration, on the consumer's listener.
	if r := do(t, "GET", p.consumer+"/config", "", nil, "Authorization", "Bearer "+adminKey, "X-Correlation-ID", "audit-config"); r.status != 200 {
		t.Fatalf("/config: %d", r.status)
	}
	rec = waitAudit(t, auditLog, "/config", func(r auditRecord) bool { return r.str("correlation_id") == "audit-config" })
	if rec.str("kind") != "admin" || rec.str("principal") != "operator" || rec.str("role") != "consumer" || rec.str("tenant") != "default" {
		t.Errorf("/config record: %v", rec)
	}

	// Ingest, health and metrics are not audited.
	for _, r := range readAudit(t, auditLog) {
		if r.str("role") == "producer" || r.str("path") == "/healthz" || r.str("path") == "/metrics" {
			t.Errorf("audited what is not a query or admin request: %v", r)
		}
	}
	// The metric counts by kind and key name; refused anonymous requests
	// under one fixed label.
	metrics := do(t, "GET", p.gateway+"/metrics", "", nil, "Authorization", "Bearer "+metricsTok)
	for _, line := range []string{
		`audit_records_total{kind="query",principal="reader"} 3`,
		`audit_records_total{kind="query",principal="anonymous"} 1`,
		`audit_records_total{kind="query",principal="shipper"} 1`,
		`audit_records_total{kind="admin",principal="operator"} 1`,
	} {
		if !strings.Contains(string(metrics.raw), line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}

	// The README's example: who searched for this user id.
	var who []string
	for _, r := range readAudit(t, auditLog) {
		if r.str("kind") == "query" && strings.Contains(r.str("query"), "user-123") && r.str("outcome") == "ok" {
			who = append(who, r.str("principal"))
		}
	}
	if strings.Join(who, ",") != "reader,reader" {
		t.Errorf("who searched for user-123: %v", who)
	}
}

// TestAuditOpenServerAndLiveTail: without keys, the record names the
// client's address (the principal is "anonymous"); a live tail is
// recorded when it opens and when it ends, with the events it sent; a
// Loki query with the lines it returned.
func TestAuditOpenServerAndLiveTail(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, nil)
	auditLog := p.cfg.Audit.Log

	tail := openTail(t, p, "source=audit-tail", nil, true)
	open := waitAudit(t, auditLog, "the tail's start", func(r auditRecord) bool {
		d, _ := r["details"].(map[string]any)
		return r.str("kind") == "tail" && d["stream"] == "open" && r.num("status") == 200
	})
	if open.str("principal") != "anonymous" || open.str("client") != "127.0.0.1" || open.str("query") != "source=audit-tail" ||
		open.str("path") != "/api/v1/logs/tail" {
		t.Errorf("tail start record: %v", open)
	}
	if r := postJSON(t, p.producer+"/api/v1/logs/batch", []map[string]any{
		{"level": "INFO", "source": "audit-tail", "message": "one"},
		{"level": "INFO", "source": "audit-tail", "message": "two"},
	}); r.status != 202 {
		t.Fatalf("batch: %d", r.status)
	}
	tail.next(t)
	tail.next(t)
	tail.cancel()
	closed := waitAudit(t, auditLog, "the tail's end", func(r auditRecord) bool {
		d, _ := r["details"].(map[string]any)
		return r.str("kind") == "tail" && d["stream"] == "closed"
	})
	if closed.num("rows") != 2 || closed.num("bytes") == 0 || closed.str("correlation_id") != open.str("correlation_id") {
		t.Errorf("tail end record: %v (start %v)", closed, open)
	}

	p.waitRows(2)
	q := url.Values{"query": {`{source="audit-tail"}`}, "start": {"0"}, "limit": {"10"}}
	if r := do(t, "GET", p.gateway+"/loki/api/v1/query_range?"+q.Encode(), "", nil, "X-Correlation-ID", "audit-loki"); r.status != 200 {
		t.Fatalf("loki: %d %s", r.status, r.raw)
	}
	rec := waitAudit(t, auditLog, "the Loki query", func(r auditRecord) bool { return r.str("correlation_id") == "audit-loki" })
	if rec.str("query") != `limit=10&query={source="audit-tail"}&start=0` || rec.num("rows") != 2 || rec.str("principal") != "anonymous" {
		t.Errorf("Loki record: %v", rec)
	}

	// The Loki websocket: opened (101), then closed with the lines sent.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := dialTail(ctx, t, "ws"+strings.TrimPrefix(p.gateway, "http")+"/loki/api/v1/tail?"+url.Values{"query": {`{source="audit-ws"}`}}.Encode(), nil)
	waitAudit(t, auditLog, "the websocket's start", func(r auditRecord) bool {
		d, _ := r["details"].(map[string]any)
		return r.str("path") == "/loki/api/v1/tail" && d["stream"] == "open" && r.num("status") == 101
	})
	if r := postJSON(t, p.producer+"/api/v1/logs", map[string]any{"level": "INFO", "source": "audit-ws", "message": "over ws"}); r.status != 202 {
		t.Fatalf("post: %d", r.status)
	}
	if _, _, err := conn.Read(ctx); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(websocket.StatusNormalClosure, "")
	ws := waitAudit(t, auditLog, "the websocket's end", func(r auditRecord) bool {
		d, _ := r["details"].(map[string]any)
		return r.str("path") == "/loki/api/v1/tail" && d["stream"] == "closed"
	})
	if ws.str("kind") != "tail" || ws.num("rows") != 1 || ws.str("query") != `query={source="audit-ws"}` {
		t.Errorf("websocket end record: %v", ws)
	}
	// Two records per stream and one for the Loki query; a tail request
	// answered 503 while the tail reader started adds its own.
	if n := p.metric("audit_records_total"); n < 5 {
		t.Errorf("audit_records_total = %v, want at least 5", n)
	}
}

// TestAuditKeysReload: a reload of the keys file is an admin record by
// the process itself, with the keys in use after it, or the error.
func TestAuditKeysReload(t *testing.T) {
	t.Parallel()
	keysFile := writeFile(t, "keys.yaml", securedKeys)
	p := startPipeline(t, func(c *configs.Config) {
		c.Auth.KeysFile = keysFile
		c.Auth.ReloadInterval = 20 * time.Millisecond
	})
	replaceFile(t, keysFile, strings.Replace(securedKeys, queryKey, "le_rotated-0123456789", 1))
	rec := waitAudit(t, p.cfg.Audit.Log, "the reload", func(r auditRecord) bool { return r.str("kind") == "admin" && r.str("outcome") == "ok" })
	if rec.str("principal") != "system" || rec.str("query") != "action=reload_keys&file="+keysFile+"&trigger=file_changed" || rec.num("rows") != 3 {
		t.Errorf("reload record: %v", rec)
	}
	replaceFile(t, keysFile, "keys: [{name: broken}]")
	rec = waitAudit(t, p.cfg.Audit.Log, "the failed reload", func(r auditRecord) bool { return r.str("kind") == "admin" && r.str("outcome") == "error" })
	if !strings.Contains(rec.str("error"), "key or sha256 is required") || rec.num("rows") != 3 {
		t.Errorf("failed reload record: %v", rec)
	}
}

// TestAuditDestinationFailing: an audit log that refuses writes (a full
// disk) fails no request; the lost records are counted.
func TestAuditDestinationFailing(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, func(c *configs.Config) { c.Audit.Log = "/dev/full" })
	for range 3 {
		if r := get(t, p.gateway+"/api/v1/logs/stats"); r.status != 200 {
			t.Fatalf("stats with a full audit disk: %d %s", r.status, r.raw)
		}
	}
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := p.metric("audit_write_failures_total")
		return n >= 3, fmt.Sprintf("audit_write_failures_total = %v, want 3", n)
	})
	if !strings.Contains(p.logs.String(), "audit records cannot be written") {
		t.Error("the failing audit log was not reported in the process's log")
	}
}

// TestAuditOff: --audit-log=off writes no record and serves as before.
func TestAuditOff(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, func(c *configs.Config) { c.Audit.Log = configs.AuditOff })
	if r := get(t, p.gateway+"/api/v1/logs/stats"); r.status != 200 {
		t.Fatalf("stats: %d", r.status)
	}
	if n := p.metric("audit_records_total"); n != 0 {
		t.Errorf("audit_records_total = %v with the audit log off", n)
	}
	body := do(t, "GET", p.gateway+"/config", "", nil).raw
	if !strings.Contains(string(body), `audit-log: "off"`) {
		t.Errorf("/config does not report the audit log off:\n%s", body)
	}
}

// TestAuditDLQReplay: a replay is recorded with the OS user, the topics
// and filters, and the counts.
func TestAuditDLQReplay(t *testing.T) {
	t.Parallel()
	cfg := dlqConfig(t)
	runDLQ(t, app.DLQReplay, cfg, app.DLQOptions{Reason: "validation", Since: "24h"})
	recs := readAudit(t, cfg.Audit.Log) // written before the command returned
	if len(recs) != 1 {
		t.Fatalf("audit records of one replay: %v", recs)
	}
	rec := recs[0]
	d, _ := rec["details"].(map[string]any)
	if rec.str("kind") != "dlq_replay" || rec.str("principal") == "" || rec.str("outcome") != "ok" || rec.num("rows") != 1 || d["skipped"] != float64(1) ||
		rec.str("query") != "dlq_topic="+cfg.Kafka.DLQTopic+"&reason=validation&since=24h&topic="+cfg.Kafka.Topic {
		t.Errorf("replay record: %v", rec)
	}
}

// TestAuditExport: an export is recorded with the OS user, its filters
// and the logs it wrote.
func TestAuditExport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := configs.Default()
	cfg.Postgres.URL = storetest.NewURL(t)
	cfg.Audit.Log = filepath.Join(t.TempDir(), "audit.log")
	s, err := store.Open(ctx, cfg.Postgres, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	var events []logs.Event
	for i := range 4 {
		events = append(events, logs.Event{ID: uuid.New(), Timestamp: base.Add(time.Duration(i) * time.Minute), Level: logs.LevelInfo,
			Source: "api", Message: fmt.Sprintf("request %d of user-123", i)})
	}
	if _, err := s.WriteBatch(ctx, events); err != nil {
		t.Fatal(err)
	}
	s.Close()
	opts := app.ExportOptions{Start: base.Format(time.RFC3339), Keyword: "user-123", Sources: []string{"api", "web"}}
	if err := app.Export(ctx, cfg, opts, io.Discard); err != nil {
		t.Fatal(err)
	}
	recs := readAudit(t, cfg.Audit.Log) // written before Export returned
	if len(recs) != 1 {
		t.Fatalf("audit records of one export: %v", recs)
	}
	rec := recs[0]
	if rec.str("kind") != "export" || rec.str("principal") == "" || rec.str("outcome") != "ok" || rec.num("rows") != 4 ||
		rec.str("query") != "keyword=user-123&source=api&source=web&start="+base.Format(time.RFC3339) {
		t.Errorf("export record: %v", rec)
	}
}

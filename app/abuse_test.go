package app_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/resilience/resiliencetest"
	"github.com/logengine/logengine/store/storetest"
)

// The TestAbuse tests are the standing adversarial suite (make abuse): what
// hostile or careless clients send, against a running pipeline, answered
// with the documented status, within bounded memory, losing nothing.

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

// Compressed bodies, as Vector, Fluent Bit and the OpenTelemetry Collector
// send them, are taken; the body limit applies to what they expand to; an
// encoding not supported and a missing Content-Type are 415.
func TestAbuseRequestBodies(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, nil)
	batch := []byte(`[{"message":"gzip one","level":"INFO","source":"abuse-bodies"},{"message":"gzip two","level":"WARN","source":"abuse-bodies"}]`)
	one := []byte(`{"message":"zstd one","level":"ERROR","source":"abuse-bodies"}`)
	// About 20 KB of gzip that expands to 20 MiB, twice the body limit.
	bomb := gzipBytes(t, bytes.Repeat([]byte(" "), 20<<20))
	if len(bomb) > 25<<10 {
		t.Fatalf("the bomb is %d bytes", len(bomb))
	}
	cases := []struct {
		name, path, contentType, encoding string
		body                              []byte
		status                            int
		mention                           string
	}{
		{"gzip batch", "/api/v1/logs/batch", "application/json", "gzip", gzipBytes(t, batch), 202, "accepted"},
		{"zstd event", "/api/v1/logs", "application/json", "zstd", zstdBytes(t, one), 202, "accepted"},
		{"gzip bomb", "/api/v1/logs/batch", "application/json", "gzip", bomb, 413, "decompressed"},
		{"zstd bomb", "/api/v1/logs/batch", "application/json", "zstd", zstdBytes(t, bytes.Repeat([]byte(" "), 20<<20)), 413, "decompressed"},
		{"brotli", "/api/v1/logs", "application/json", "br", one, 415, "Content-Encoding"},
		{"corrupt gzip", "/api/v1/logs", "application/json", "gzip", one, 400, "gzip"},
		{"no content type", "/api/v1/logs", "", "", one, 415, "Content-Type is required"},
		{"no content type, batch", "/api/v1/logs/batch", "", "", batch, 415, "Content-Type is required"},
	}
	for _, c := range cases {
		var headers []string
		if c.encoding != "" {
			headers = []string{"Content-Encoding", c.encoding}
		}
		r := do(t, http.MethodPost, p.producer+c.path, c.contentType, c.body, headers...)
		if r.status != c.status || !strings.Contains(string(r.raw), c.mention) {
			t.Errorf("%s: %d %s; want %d mentioning %q", c.name, r.status, r.raw, c.status, c.mention)
		}
	}
	// What was accepted is stored, and only that.
	p.waitRows(3)
}

// Edge cases of the input: what is refused is refused at the edge with
// 400 naming the field (or the DLQ for a batch element), and what is
// accepted is stored as answered.
func TestAbuseEdgeInput(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, nil) // the default --retention of 7 days
	ev := func(extra string) []byte {
		return []byte(`{"message":"edge","level":"INFO","source":"abuse-edge"` + extra + `}`)
	}
	for _, c := range []struct {
		name    string
		body    []byte
		status  int
		mention string
	}{
		{"number PostgreSQL cannot hold", ev(`,"metadata":{"n":1e1000000}`), 400, "metadata: holds the number 1e1000000"},
		{"offset +24:00", ev(`,"timestamp":"2026-01-15T10:30:00+24:00"`), 400, "zone offset out of range"},
		{"second 60 mid-day", ev(`,"timestamp":"2016-12-31T12:00:60Z"`), 400, "leap second"},
		{"older than the retention", ev(`,"timestamp":"1969-07-20T20:17:40Z"`), 400, "older than the retention of 168h0m0s"},
	} {
		r := do(t, http.MethodPost, p.producer+"/api/v1/logs", "application/json", c.body)
		if r.status != c.status || !strings.Contains(string(r.raw), c.mention) {
			t.Errorf("%s: %d %s; want %d mentioning %q", c.name, r.status, r.raw, c.status, c.mention)
		}
	}

	// A batch: an element older than the retention and one repeating an
	// id go to the DLQ by index; accepted counts what is stored.
	const id = "0192f3a4-5b6c-7d8e-9f01-23456789abcd"
	old := time.Now().Add(-30 * 24 * time.Hour).UTC().Format(time.RFC3339)
	batch := `[{"id":"` + id + `","message":"first","level":"INFO","source":"abuse-edge"},` +
		`{"message":"too old","level":"INFO","source":"abuse-edge","timestamp":"` + old + `"},` +
		`{"id":"` + id + `","message":"same id","level":"WARN","source":"abuse-other"}]`
	r := do(t, http.MethodPost, p.producer+"/api/v1/logs/batch", "application/json", []byte(batch))
	if r.status != 202 || r.body["accepted"] != 1.0 || r.body["rejected"] != 2.0 ||
		!strings.Contains(string(r.raw), `{"index":1,"error":"invalid event: timestamp: is older than the retention`) ||
		!strings.Contains(string(r.raw), `{"index":2,"error":"invalid event: id: repeats the id of element 0`) {
		t.Errorf("batch: %d %s", r.status, r.raw)
	}

	// A client id makes retries idempotent without a timestamp: three
	// POSTs of the same id (each given another time of receipt) store one.
	const retried = "0192f3a4-5b6c-7d8e-9f01-23456789ffff"
	for range 3 {
		r := do(t, http.MethodPost, p.producer+"/api/v1/logs", "application/json",
			[]byte(`{"id":"`+retried+`","message":"retried","level":"ERROR","source":"abuse-retry"}`))
		if r.status != 202 {
			t.Fatalf("retry: %d %s", r.status, r.raw)
		}
	}
	p.waitProcessed(2) // the batch's one and the first retry; the others are skipped
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		return p.metric("consumer_skipped_total") >= 2, "the consumer has not seen the two repeats of the retried id"
	})
	ids := map[string]int{}
	for _, e := range storetest.StoredLogs(t, p.cfg.Postgres.URL) {
		ids[e.ID.String()]++
	}
	if len(ids) != 2 || ids[id] != 1 || ids[retried] != 1 {
		t.Errorf("stored ids %v; want %s (the batch's first) and %s once each", ids, id, retried)
	}
	if n := countTopic(t, p.app.KafkaBrokers(), p.cfg.Kafka.DLQTopic); n != 2 {
		t.Errorf("%d letters in the DLQ, want the 2 refused batch elements", n)
	}
}

// Any past time is stored when the retention keeps it: before 1970 and a
// leap second (as the last microsecond of its minute).
func TestAbuseTimestampsStored(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, func(c *configs.Config) { c.Postgres.Maintenance.Retention = 0 })
	for _, ts := range []string{"1969-07-20T20:17:40Z", "2016-12-31T23:59:60Z", "0001-01-01T00:00:01Z"} {
		r := do(t, http.MethodPost, p.producer+"/api/v1/logs", "application/json",
			[]byte(`{"message":"at `+ts+`","level":"INFO","source":"abuse-time","timestamp":"`+ts+`"}`))
		if r.status != 202 {
			t.Errorf("%s: %d %s", ts, r.status, r.raw)
		}
	}
	p.waitRows(3)
	got := map[string]string{}
	for _, e := range storetest.StoredLogs(t, p.cfg.Postgres.URL) {
		got[e.Message] = e.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	for msg, want := range map[string]string{
		"at 1969-07-20T20:17:40Z": "1969-07-20T20:17:40Z",
		"at 2016-12-31T23:59:60Z": "2016-12-31T23:59:59.999999Z",
		"at 0001-01-01T00:00:01Z": "0001-01-01T00:00:01Z",
	} {
		if got[msg] != want {
			t.Errorf("%q stored at %q, want %s", msg, got[msg], want)
		}
	}
}

// vmRSS is a process's resident memory.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// stallUpload opens a connection, announces a body of size bytes, sends
// sent of them and stops: a slow or hostile client.
func stallUpload(t *testing.T, addr string, size, sent int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return nil
	}
	t.Cleanup(func() { conn.Close() })
	head := fmt.Sprintf("POST /api/v1/logs/batch HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", size)
	if _, err := io.WriteString(conn, head); err != nil {
		t.Error(err)
		return conn
	}
	chunk := bytes.Repeat([]byte(" "), 64<<10)
	for n := 0; n < sent; n += len(chunk) {
		if _, err := conn.Write(chunk[:min(len(chunk), sent-n)]); err != nil {
			// Refused (503) before the body was read: the server answered
			// and closed; that is what past the budget means.
			return conn
		}
	}
	return conn
}

// Thirty uploads of 9 MB that stall half way hold at most the in-flight
// budget, not 270 MB: past it the server answers 503 with Retry-After at
// once. When they are gone, ingest takes logs again and loses none.
func TestAbuseStalledUploadsAreBounded(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	prod, cons, gw, kafka := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	proc := startProcess(t, buildBinary(t), "logengine", "serve", "--role=all", "--embedded-kafka-addr="+kafka,
		"--producer-addr="+prod, "--consumer-addr="+cons, "--gateway-addr="+gw,
		"--postgres-url="+cfg.Postgres.URL, "--cache-prefix="+cfg.Redis.Prefix, "--partitions=3", "--flush-interval=50ms",
		"--max-body-bytes-in-flight=33554432", "--log-level=warn")
	waitReady(t, proc, "http://"+prod)
	waitReady(t, proc, "http://"+cons)
	producer := "http://" + prod
	// Warm up the paths a body takes, so the baseline holds their memory.
	if r := do(t, http.MethodPost, producer+"/api/v1/logs/batch", "application/json",
		[]byte(`[{"message":"warm","level":"INFO","source":"abuse-stall"}]`)); r.status != 202 {
		t.Fatalf("warm-up: %d %s", r.status, r.raw)
	}
	before := vmRSS(t, proc.cmd.Process.Pid)
	// At once, as a crowd of clients would: a refused upload waits for its
	// connection to close.
	conns := make([]net.Conn, 30)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() { conns[i] = stallUpload(t, prod, 9<<20, 8<<20) })
	}
	wg.Wait()
	// The fault bit: the budget is full, so a new body is refused at once.
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		v := scrape(t, producer, "ingest_body_bytes_in_flight")
		return len(v) == 1 && v[0] >= 24<<20, fmt.Sprintf("ingest_body_bytes_in_flight %v; want the stalled bodies to hold most of the 32 MiB", v)
	})
	r := do(t, http.MethodPost, producer+"/api/v1/logs/batch", "application/json", bytes.Repeat([]byte(" "), 9<<20))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("a body past the budget: %d %q %s; want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.raw)
	}
	grown := vmRSS(t, proc.cmd.Process.Pid) - before
	t.Logf("ABUSE stalled-uploads uploads=30x9MB rss_growth=%dMB budget=32MB", grown>>20)
	if grown > 100<<20 {
		t.Errorf("RSS grew by %d MB with 30 stalled 9 MB uploads; the in-flight budget is 32 MB", grown>>20)
	}
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		v := scrape(t, producer, "ingest_body_bytes_in_flight")
		return len(v) == 1 && v[0] == 0, fmt.Sprintf("ingest_body_bytes_in_flight %v after the uploads closed, want 0", v)
	})
	// Nothing lost: what is accepted now is stored.
	l := newLoader(producer)
	l.send(context.Background(), chaosEvents(500, "after-stall"), 100, 0)
	o := settle(t, cfg.Postgres.URL, l.ids(), []string{kafka}, cfg.Kafka.DLQTopic)
	if o.accepted != 500 || o.lost != 0 || o.duplicates != 0 || o.dlq != 0 {
		t.Errorf("after the stalled uploads: accepted %d, stored %d, lost %d, duplicates %d", o.accepted, o.stored, o.lost, o.duplicates)
	}
	proc.stop(t)
}

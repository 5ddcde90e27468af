package app_test

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
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

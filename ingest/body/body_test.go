package body_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/ingest/body"
	"github.com/logengine/logengine/resilience/resiliencetest"
	"github.com/prometheus/client_golang/prometheus"
)

const maxBytes = 10 << 20

func newReader(inFlight int64) *body.Reader {
	return body.NewReader(body.Limits{MaxBytes: maxBytes, MaxInFlightBytes: inFlight, RetryAfter: 2 * time.Second}, prometheus.NewRegistry())
}

// read runs Read on a request whose context the caller ends; it returns
// the body, the answer's status (200 when read) and the recorder.
func read(t *testing.T, r *body.Reader, ctx context.Context, src io.Reader, headers ...string) ([]byte, int, *httptest.ResponseRecorder) {
	t.Helper()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/", src)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	if _, ok := src.(*bytes.Reader); !ok {
		req.ContentLength = -1 // streamed, as a chunked upload
	}
	rec := httptest.NewRecorder()
	c := echo.New().NewContext(req, rec)
	b, err := r.Read(c, echo.MIMEApplicationJSON)
	if err != nil {
		he, ok := err.(*echo.HTTPError)
		if !ok {
			t.Fatalf("Read error %T %v is not an *echo.HTTPError", err, err)
		}
		return nil, he.Code, rec
	}
	return b, http.StatusOK, rec
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func zstded(b []byte) []byte {
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func TestCompressedBodiesAreDecompressed(t *testing.T) {
	r := newReader(64 << 20)
	plain := []byte(`[` + strings.Repeat(`{"level":"INFO","source":"api","message":"hello"},`, 1000) + `{}]`)
	for _, tc := range []struct {
		enc  string
		data []byte
	}{{"gzip", gzipped(plain)}, {"GZIP", gzipped(plain)}, {"x-gzip", gzipped(plain)}, {"zstd", zstded(plain)}, {"identity", plain}} {
		ctx, cancel := context.WithCancel(context.Background())
		got, status, _ := read(t, r, ctx, bytes.NewReader(tc.data), "Content-Encoding", tc.enc)
		cancel()
		if status != http.StatusOK || !bytes.Equal(got, plain) {
			t.Errorf("%s: status %d, %d bytes, want the %d plain bytes", tc.enc, status, len(got), len(plain))
		}
	}
}

// A small compressed body that expands past the limit is refused by its
// decompressed size, without holding more than the limit.
func TestDecompressionBombIsTooLarge(t *testing.T) {
	r := newReader(64 << 20)
	bomb := bytes.Repeat([]byte(" "), 20<<20)
	for enc, data := range map[string][]byte{"gzip": gzipped(bomb), "zstd": zstded(bomb)} {
		if len(data) > 25<<10 {
			t.Fatalf("%s bomb is %d bytes; the probe wants a small one", enc, len(data))
		}
		for _, src := range []io.Reader{bytes.NewReader(data), io.MultiReader(bytes.NewReader(data))} {
			ctx, cancel := context.WithCancel(context.Background())
			_, status, _ := read(t, r, ctx, src, "Content-Encoding", enc)
			cancel()
			if status != http.StatusRequestEntityTooLarge {
				t.Errorf("%s bomb of %d bytes: status %d, want 413", enc, len(data), status)
			}
		}
	}
	noneReserved(t, r)
}

func TestRefusedBeforeReading(t *testing.T) {
	r := newReader(64 << 20)
	valid := []byte(`{"level":"INFO","source":"api","message":"hello"}`)
	for name, tc := range map[string]struct {
		headers []string
		body    []byte
		status  int
	}{
		"unsupported encoding":  {[]string{"Content-Encoding", "br"}, valid, http.StatusUnsupportedMediaType},
		"two encodings":         {[]string{"Content-Encoding", "gzip, zstd"}, valid, http.StatusUnsupportedMediaType},
		"no content type":       {[]string{"Content-Type", ""}, valid, http.StatusUnsupportedMediaType},
		"form content type":     {[]string{"Content-Type", "application/x-www-form-urlencoded"}, valid, http.StatusUnsupportedMediaType},
		"json with charset":     {[]string{"Content-Type", "application/json; charset=utf-8"}, valid, http.StatusOK},
		"a +json type":          {[]string{"Content-Type", "application/vnd.logs+json"}, valid, http.StatusOK},
		"gzip that is not gzip": {[]string{"Content-Encoding", "gzip"}, valid, http.StatusBadRequest},
		"zstd that is not zstd": {[]string{"Content-Encoding", "zstd"}, valid, http.StatusBadRequest},
		"truncated gzip":        {[]string{"Content-Encoding", "gzip"}, gzipped(valid)[:20], http.StatusBadRequest},
		"over the limit":        {nil, bytes.Repeat([]byte("x"), maxBytes+1), http.StatusRequestEntityTooLarge},
		"at the limit":          {nil, bytes.Repeat([]byte("x"), maxBytes), http.StatusOK},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		_, status, _ := read(t, r, ctx, bytes.NewReader(tc.body), tc.headers...)
		cancel()
		if status != tc.status {
			t.Errorf("%s: status %d, want %d", name, status, tc.status)
		}
	}
	noneReserved(t, r)
}

// Bodies being received hold their bytes until their request ends; past
// the in-flight budget a request gets 503 with Retry-After, and the budget
// comes back when requests end.
func TestBodiesInFlightAreBounded(t *testing.T) {
	const budget = 24 << 20
	r := newReader(budget)
	// Two stalled uploads: each sent 6 MiB and then nothing more.
	var stalled []*io.PipeWriter
	done := make(chan int, 2)
	for range 2 {
		pr, pw := io.Pipe()
		stalled = append(stalled, pw)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go func() {
			_, status, _ := read(t, r, ctx, pr)
			done <- status
		}()
		if _, err := pw.Write(bytes.Repeat([]byte("x"), 6<<20)); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.InFlight(); n < 12<<20 || n > budget {
		t.Fatalf("two stalled 6 MiB uploads reserve %d bytes, want between 12 MiB and the budget", n)
	}
	// A third body that needs more than what is left is refused at once.
	ctx, cancel := context.WithCancel(context.Background())
	_, status, rec := read(t, r, ctx, bytes.NewReader(bytes.Repeat([]byte("y"), 9<<20)))
	cancel()
	if status != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "2" {
		t.Errorf("past the budget: status %d, Retry-After %q; want 503 and 2", status, rec.Header().Get("Retry-After"))
	}
	for _, pw := range stalled {
		pw.CloseWithError(io.ErrUnexpectedEOF)
	}
	for range 2 {
		if s := <-done; s != http.StatusBadRequest {
			t.Errorf("a broken upload answered %d, want 400", s)
		}
	}
	noneReserved(t, r)
	// Once they are gone, the same body fits; it holds its bytes until its
	// request's context ends.
	ctx, cancel = context.WithCancel(context.Background())
	got, status, _ := read(t, r, ctx, bytes.NewReader(bytes.Repeat([]byte("y"), 9<<20)))
	if status != http.StatusOK || len(got) != 9<<20 {
		t.Fatalf("within the budget: status %d, %d bytes", status, len(got))
	}
	if n := r.InFlight(); n < 9<<20 {
		t.Errorf("a body being handled reserves %d bytes, want at least its 9 MiB", n)
	}
	cancel()
	noneReserved(t, r)
}

// noneReserved waits until every reservation is given back: the end of a
// request's context releases it from a goroutine of its own.
func noneReserved(t *testing.T, r *body.Reader) {
	t.Helper()
	resiliencetest.Eventually(t, 10*time.Second, func() (bool, string) {
		n := r.InFlight()
		return n == 0, fmt.Sprintf("%d bytes still reserved after every request ended", n)
	})
}

// Drain refuses new bodies with 503 at once and returns once the requests
// that were in progress ended.
func TestDrainWaitsForRequestsInProgress(t *testing.T) {
	r := newReader(64 << 20)
	ctx, endRequest := context.WithCancel(context.Background())
	if _, status, _ := read(t, r, ctx, bytes.NewReader([]byte(`{}`))); status != http.StatusOK {
		t.Fatalf("before draining: %d", status)
	}
	drained := make(chan error, 1)
	go func() { drained <- r.Drain(context.Background()) }()
	resiliencetest.Eventually(t, 10*time.Second, func() (bool, string) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, status, rec := read(t, r, ctx, bytes.NewReader([]byte(`{}`)))
		return status == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "2",
			fmt.Sprintf("a new request while draining answers %d, want 503 with Retry-After", status)
	})
	select {
	case err := <-drained:
		t.Fatalf("Drain returned %v while a request was in progress", err)
	default:
	}
	endRequest()
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	// A deadline bounds the wait.
	r2 := newReader(64 << 20)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	read(t, r2, ctx2, bytes.NewReader([]byte(`{}`)))
	short, cancel3 := context.WithCancel(context.Background())
	cancel3()
	if err := r2.Drain(short); err == nil || !strings.Contains(err.Error(), "1 ingest requests still in progress") {
		t.Errorf("Drain past its deadline: %v", err)
	}
}

// A zstd body reserves the window its frame declares, not the largest: a
// budget that holds two largest windows holds many small zstd bodies.
func TestSmallZstdBodiesReserveSmallWindows(t *testing.T) {
	r := newReader(2*maxBytes + 256<<10)
	small := zstded([]byte(`[{"level":"INFO","source":"api","message":"hello"}]`))
	for i := range 50 {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel) // every body stays reserved until the end
		if _, status, _ := read(t, r, ctx, bytes.NewReader(small), "Content-Encoding", "zstd"); status != http.StatusOK {
			t.Fatalf("small zstd body %d: status %d with %d bytes reserved", i, status, r.InFlight())
		}
	}
	if n := r.InFlight(); n > 50*(256<<10) {
		t.Errorf("50 small zstd bodies reserve %d bytes", n)
	}
}

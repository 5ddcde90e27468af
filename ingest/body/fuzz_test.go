package body_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/ingest/body"
	"github.com/prometheus/client_golang/prometheus"
)

// FuzzRead feeds any bytes as a body of each encoding: Read never panics,
// answers only the documented statuses, never returns more than the limit,
// returns a plain body as sent, and gives back every byte it reserved.
func FuzzRead(f *testing.F) {
	plain := []byte(`[{"level":"INFO","source":"api","message":"hello"}]`)
	for _, s := range [][]byte{plain, gzipped(plain), zstded(plain), gzipped(bytes.Repeat([]byte("a"), 5000)),
		zstded(bytes.Repeat([]byte("b"), 5000)), {}, {0x1f, 0x8b}, {0x28, 0xb5, 0x2f, 0xfd}} {
		for enc := range uint8(4) {
			f.Add(s, enc, false)
			f.Add(s, enc, true)
		}
	}
	const limit = 4096
	f.Fuzz(func(t *testing.T, data []byte, enc uint8, chunked bool) {
		r := body.NewReader(body.Limits{MaxBytes: limit, MaxInFlightBytes: 64 << 20, RetryAfter: time.Second}, prometheus.NewRegistry())
		encoding := [...]string{"", "gzip", "zstd", "br"}[enc%4]
		ctx, cancel := context.WithCancel(context.Background())
		var src io.Reader = bytes.NewReader(data)
		if chunked {
			src = io.MultiReader(src)
		}
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/", src)
		if chunked {
			req.ContentLength = -1
		}
		req.Header.Set("Content-Type", "application/json")
		if encoding != "" {
			req.Header.Set("Content-Encoding", encoding)
		}
		got, err := r.Read(echo.New().NewContext(req, httptest.NewRecorder()), echo.MIMEApplicationJSON)
		if err != nil {
			he, ok := err.(*echo.HTTPError)
			if !ok {
				t.Fatalf("error %T %v", err, err)
			}
			switch he.Code {
			case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			default:
				t.Fatalf("status %d: %v", he.Code, he.Message)
			}
			if encoding == "br" && he.Code != http.StatusUnsupportedMediaType {
				t.Fatalf("br answered %d", he.Code)
			}
			if encoding == "" && he.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("a plain body answered %d", he.Code)
			}
		} else {
			if len(got) > limit {
				t.Fatalf("%d bytes returned, over the limit of %d", len(got), limit)
			}
			if encoding == "" && !bytes.Equal(got, data) {
				t.Fatalf("plain body changed")
			}
		}
		cancel()
		for deadline := time.Now().Add(10 * time.Second); r.InFlight() != 0; {
			if time.Now().After(deadline) {
				t.Fatalf("%d bytes still reserved", r.InFlight())
			}
			time.Sleep(time.Millisecond)
		}
	})
}

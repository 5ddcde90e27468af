// Package body reads the request bodies of every ingest endpoint: one
// place checks the content type and encoding, decompresses gzip and zstd,
// applies the size limit to the decompressed bytes and bounds the memory
// that all bodies being read hold at once.
package body

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Limits bound what the bodies of ingest requests may hold.
type Limits struct {
	// MaxBytes is the largest body, counted after decompression.
	MaxBytes int64
	// MaxInFlightBytes bounds the memory of all bodies being read or
	// handled at once; past it a request gets 503 with Retry-After.
	MaxInFlightBytes int64
	// RetryAfter is the Retry-After of that 503.
	RetryAfter time.Duration
}

// zstdMaxWindow is the largest zstd window a body may declare: the 8 MiB
// every zstd decoder should support. The decoder holds a window's worth of
// history, so a zstd body reserves its window from the in-flight budget.
const zstdMaxWindow = 8 << 20

// zstdBlockBytes is the largest zstd block, which the decoder holds beside
// its window.
const zstdBlockBytes = 128 << 10

// DecoderReserve is the most a compressed body reserves for its decoder on
// top of its bytes (a single-segment zstd frame's window is its whole
// content); a budget below maxBytes plus this could refuse a lone body.
func DecoderReserve(maxBytes int64) int64 { return maxBytes + zstdBlockBytes }

// Reader reads request bodies within Limits. One Reader is shared by every
// ingest endpoint of a process, so they share one in-flight budget.
type Reader struct {
	lim      Limits
	inFlight atomic.Int64
	metrics  *metrics.Bodies

	// open counts the requests whose body is reserved; once stopped is
	// set, no request starts and idle is closed when open reaches 0.
	mu      sync.Mutex
	open    int
	stopped bool
	idle    chan struct{}
}

// NewReader builds a Reader and registers its metrics on reg.
func NewReader(lim Limits, reg prometheus.Registerer) *Reader {
	return &Reader{lim: lim, metrics: metrics.NewBodies(reg), idle: make(chan struct{})}
}

// Drain stops accepting bodies (every Read answers 503 from now on) and
// waits until the requests that were reading or handling one have ended,
// or ctx ends. Their events are then in Kafka or were refused.
func (r *Reader) Drain(ctx context.Context) error {
	r.mu.Lock()
	if !r.stopped {
		r.stopped = true
		if r.open == 0 {
			close(r.idle)
		}
	}
	r.mu.Unlock()
	select {
	case <-r.idle:
		return nil
	case <-ctx.Done():
		r.mu.Lock()
		defer r.mu.Unlock()
		return fmt.Errorf("%d ingest requests still in progress: %w", r.open, ctx.Err())
	}
}

// enter counts a request in, unless the reader is draining.
func (r *Reader) enter() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return false
	}
	r.open++
	return true
}

func (r *Reader) leave() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open--; r.open == 0 && r.stopped {
		close(r.idle)
	}
}

// Limits are the limits the reader applies.
func (r *Reader) Limits() Limits { return r.lim }

// InFlight is the number of bytes reserved right now.
func (r *Reader) InFlight() int64 { return r.inFlight.Load() }

// Read reads the body of c's request into memory and returns it
// decompressed. accept lists the media types the endpoint takes
// ("application/json" also takes any "+json" type); a request without a
// Content-Type, or with another, gets 415, as does a Content-Encoding other
// than gzip, zstd or identity. The error is always an *echo.HTTPError to
// answer with: 413 for a body larger than Limits.MaxBytes once
// decompressed, 503 with Retry-After while the bodies in flight hold
// Limits.MaxInFlightBytes, 408 for a body that did not arrive within the
// server's read timeout, 400 for a stream that cannot be decompressed.
//
// The memory the body takes is reserved, and the request counted as in
// progress for Drain, until the request's context ends, which net/http does
// when the handler returns. While draining, Read answers 503.
func (r *Reader) Read(c echo.Context, accept ...string) ([]byte, error) {
	req := c.Request()
	if err := checkContentType(req.Header.Get(echo.HeaderContentType), accept); err != nil {
		r.metrics.Refused.WithLabelValues("content_type").Inc()
		return nil, err
	}
	enc := strings.ToLower(strings.TrimSpace(req.Header.Get(echo.HeaderContentEncoding)))
	switch enc {
	case "", "identity", "gzip", "x-gzip", "zstd":
	default:
		r.metrics.Refused.WithLabelValues("encoding").Inc()
		return nil, echo.NewHTTPError(http.StatusUnsupportedMediaType,
			fmt.Sprintf("Content-Encoding %q is not supported; send gzip, zstd or an uncompressed body", req.Header.Get(echo.HeaderContentEncoding)))
	}
	if req.ContentLength > r.lim.MaxBytes {
		// The bytes on the wire count too: a compressed body is not larger
		// than what it expands to unless it is not worth compressing.
		return nil, r.tooLarge()
	}
	if !r.enter() {
		r.metrics.Refused.WithLabelValues("shutting_down").Inc()
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(r.lim.RetryAfter.Seconds()+0.5)))
		return nil, echo.NewHTTPError(http.StatusServiceUnavailable,
			"the producer is shutting down; nothing was accepted, retry later or at another producer")
	}
	res := &reservation{r: r}
	stop := context.AfterFunc(req.Context(), res.release)
	body, err := r.read(c, enc, res)
	if err != nil {
		// Nothing is kept: give the bytes back now.
		stop()
		res.release()
		return nil, err
	}
	r.metrics.Received.Add(float64(len(body)))
	return body, nil
}

// read reads and decompresses the body, reserving the memory it grows into.
func (r *Reader) read(c echo.Context, enc string, res *reservation) ([]byte, error) {
	req := c.Request()
	wire := &wireReader{r: req.Body, left: r.lim.MaxBytes + 1}
	var src io.Reader = wire
	switch enc {
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(wire)
		if err != nil {
			return nil, r.streamError(c, wire, "gzip", err)
		}
		defer zr.Close()
		src = zr
	case "zstd":
		// The decoder keeps a window of history: reserve what the first
		// frame declares (a small body's is its size) rather than the
		// largest, and hold later frames to it.
		br := bufio.NewReaderSize(wire, 64)
		head, _ := br.Peek(zstd.HeaderMaxSize)
		window := min(int64(zstdMaxWindow), r.lim.MaxBytes)
		var h zstd.Header
		if h.Decode(head) == nil && !h.Skippable {
			if h.SingleSegment {
				// The whole frame is the window; the decoder refuses one
				// larger than the body limit.
				window = int64(min(h.FrameContentSize, uint64(r.lim.MaxBytes)))
			} else {
				window = int64(min(h.WindowSize, uint64(window)))
			}
		}
		window = max(window, zstd.MinWindowSize)
		if !res.acquire(window + zstdBlockBytes) {
			return nil, r.busy(c)
		}
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(uint64(window)), zstd.WithDecoderMaxMemory(uint64(r.lim.MaxBytes)+1))
		if err != nil {
			return nil, r.streamError(c, wire, "zstd", err)
		}
		defer zr.Close()
		src = zr
	}
	size := int64(64 << 10)
	if enc == "" || enc == "identity" {
		if req.ContentLength >= 0 {
			size = req.ContentLength + 1 // room to see the end without growing
		}
	}
	size = max(min(size, r.lim.MaxBytes), 1)
	if !res.acquire(size) {
		return nil, r.busy(c)
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) >= r.lim.MaxBytes {
				// Full at the limit: one byte more means too large.
				var one [1]byte
				n, err := io.ReadFull(src, one[:])
				if n > 0 || wire.left <= 0 {
					return nil, r.tooLarge()
				}
				if err != nil && !errors.Is(err, io.EOF) {
					return nil, r.streamError(c, wire, enc, err)
				}
				return buf, nil
			}
			grown := min(2*int64(cap(buf)), r.lim.MaxBytes)
			if !res.acquire(grown - int64(cap(buf))) {
				return nil, r.busy(c)
			}
			next := make([]byte, len(buf), grown)
			copy(next, buf)
			buf = next
		}
		n, err := src.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > r.lim.MaxBytes || wire.left <= 0 {
			return nil, r.tooLarge()
		}
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, r.streamError(c, wire, enc, err)
		}
	}
}

// streamError is the answer to a failed read: the client's connection (a
// timeout), a body over the limit on the wire, or one that cannot be
// decompressed.
func (r *Reader) streamError(c echo.Context, wire *wireReader, enc string, err error) error {
	switch {
	case wire.left <= 0:
		return r.tooLarge()
	case errors.Is(wire.err, os.ErrDeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		r.metrics.Refused.WithLabelValues("timeout").Inc()
		return echo.NewHTTPError(http.StatusRequestTimeout,
			"the request body did not arrive within the server's read timeout; send it faster or in smaller batches")
	case wire.err != nil:
		r.metrics.Refused.WithLabelValues("malformed").Inc()
		return echo.NewHTTPError(http.StatusBadRequest, "could not read request body: "+wire.err.Error())
	case enc == "" || enc == "identity":
		r.metrics.Refused.WithLabelValues("malformed").Inc()
		return echo.NewHTTPError(http.StatusBadRequest, "could not read request body: "+err.Error())
	}
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return r.tooLarge() // the frame says it holds more than the limit
	}
	r.metrics.Refused.WithLabelValues("malformed").Inc()
	if errors.Is(err, zstd.ErrWindowSizeExceeded) {
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf(
			"the zstd body needs a window larger than its first frame's, or than %d bytes; send one frame with a smaller window",
			min(zstdMaxWindow, r.lim.MaxBytes)))
	}
	return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("the body is not valid %s: %v", enc, err))
}

func (r *Reader) tooLarge() error {
	r.metrics.Refused.WithLabelValues("too_large").Inc()
	return echo.NewHTTPError(http.StatusRequestEntityTooLarge,
		fmt.Sprintf("request body is larger than the limit of %d bytes (counted decompressed)", r.lim.MaxBytes))
}

func (r *Reader) busy(c echo.Context) error {
	r.metrics.Refused.WithLabelValues("in_flight").Inc()
	c.Response().Header().Set("Retry-After", strconv.Itoa(int(r.lim.RetryAfter.Seconds()+0.5)))
	return echo.NewHTTPError(http.StatusServiceUnavailable, fmt.Sprintf(
		"the request bodies being received hold the limit of %d bytes (--max-body-bytes-in-flight); nothing was accepted, retry later",
		r.lim.MaxInFlightBytes))
}

// checkContentType is nil when ct is one of accept (any when accept is
// empty); else the 415 to answer.
func checkContentType(ct string, accept []string) error {
	if len(accept) == 0 {
		return nil
	}
	want := strings.Join(accept, " or ")
	if strings.TrimSpace(ct) == "" {
		return echo.NewHTTPError(http.StatusUnsupportedMediaType,
			fmt.Sprintf("Content-Type is required: send Content-Type: %s", want))
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil {
		for _, a := range accept {
			if mt == a || (a == echo.MIMEApplicationJSON && strings.HasSuffix(mt, "+json")) {
				return nil
			}
		}
	}
	return echo.NewHTTPError(http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type must be %s, not %q", want, ct))
}

// reservation is what one request holds of the in-flight budget; release
// may come from the request context's end while the read still runs.
type reservation struct {
	r        *Reader
	mu       sync.Mutex
	held     int64
	released bool
}

func (res *reservation) acquire(n int64) bool {
	res.mu.Lock()
	defer res.mu.Unlock()
	if res.released {
		return false
	}
	if res.r.inFlight.Add(n) > res.r.lim.MaxInFlightBytes {
		res.r.inFlight.Add(-n)
		return false
	}
	res.r.metrics.InFlight.Add(float64(n))
	res.held += n
	return true
}

func (res *reservation) release() {
	res.mu.Lock()
	defer res.mu.Unlock()
	if !res.released {
		res.r.inFlight.Add(-res.held)
		res.r.metrics.InFlight.Add(-float64(res.held))
		res.held, res.released = 0, true
		res.r.leave()
	}
}

// wireReader stops reading the body as it is sent once it passes the
// limit, and keeps the connection's own error apart from a decoder's.
type wireReader struct {
	r    io.Reader
	left int64 // 0 or less once more than the limit was read
	err  error // the connection's error, not io.EOF
}

func (w *wireReader) Read(p []byte) (int, error) {
	if w.left <= 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > w.left {
		p = p[:w.left]
	}
	n, err := w.r.Read(p)
	w.left -= int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		w.err = err
	}
	return n, err
}

var errTooLarge = errors.New("request body larger than the limit")

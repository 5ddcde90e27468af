package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/resilience/resiliencetest"
)

// sseEvent is one Server-Sent Event, or a comment line.
type sseEvent struct {
	event, data string
	comment     bool
}

// sseStream reads a live tail answer event by event.
type sseStream struct {
	resp   *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

// openTail subscribes to the pipeline's live tail, waiting for the tail
// reader to be ready, and reads events in the background. client may set
// a transport (nil: the default).
// tinyWindowClient is an HTTP client whose connections have a 4 kB
// receive buffer: a client that does not read soon stops the server's
// writes.
func tinyWindowClient() *http.Client {
	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	return &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
}

func openTail(t *testing.T, p *pipeline, query string, client *http.Client, read bool) *sseStream {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var resp *http.Response
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.gateway+"/api/v1/logs/tail?"+query, nil)
		r, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if r.StatusCode == http.StatusServiceUnavailable {
			body, _ := io.ReadAll(r.Body)
			r.Body.Close()
			return false, "tail answers 503: " + string(body)
		}
		resp = r
		return true, ""
	})
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("tail answered %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q, want text/event-stream", ct)
	}
	s := &sseStream{resp: resp, events: make(chan sseEvent, 10000), cancel: cancel}
	if read {
		go s.read()
	}
	return s
}

// read parses the stream until it ends, then closes events.
func (s *sseStream) read() {
	defer close(s.events)
	sc := bufio.NewScanner(s.resp.Body)
	sc.Buffer(nil, 1<<20)
	var cur sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.event != "" || cur.data != "" {
				s.events <- cur
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, ":"):
			s.events <- sseEvent{comment: true, data: strings.TrimSpace(line[1:])}
		case strings.HasPrefix(line, "event: "):
			cur.event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			cur.data = line[len("data: "):]
		}
	}
}

// next returns the next event that is not a comment.
func (s *sseStream) next(t *testing.T) sseEvent {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				t.Fatal("the tail stream ended")
			}
			if !e.comment {
				return e
			}
		case <-timeout:
			t.Fatal("no event within 30 s")
		}
	}
}

func TestLiveTailSSE(t *testing.T) {
	p := startPipeline(t, func(c *configs.Config) { c.Tail.PingInterval = 50 * time.Millisecond })
	// Sent before the subscription: must not be shown.
	if r := postJSON(t, p.producer+"/api/v1/logs", map[string]any{"message": "before the tail", "level": "ERROR", "source": "checkout"}); r.status != 202 {
		t.Fatalf("post: %d %s", r.status, r.raw)
	}
	errors := openTail(t, p, "logLevel=error,fatal&source=checkout&meta.region=eu", nil, true)
	all := openTail(t, p, "", nil, true)

	batch := []map[string]any{
		{"message": "ignored: info", "level": "INFO", "source": "checkout", "metadata": map[string]any{"region": "eu"}},
		{"message": "ignored: other source", "level": "ERROR", "source": "billing", "metadata": map[string]any{"region": "eu"}},
		{"message": "ignored: other region", "level": "ERROR", "source": "checkout", "metadata": map[string]any{"region": "us"}},
		{"message": "Payment <declined>\nline two", "level": "ERROR", "source": "checkout", "metadata": map[string]any{"region": "eu", "amount": 12.5}, "traceId": "trace-1"},
	}
	if r := postJSON(t, p.producer+"/api/v1/logs/batch", batch); r.status != 202 {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}

	got := errors.next(t)
	if got.event != "log" {
		t.Fatalf("event = %q, want log", got.event)
	}
	// The data is the log exactly as a search answer's item shows it.
	p.waitRows(5)
	search := get(t, p.gateway+"/api/v1/logs?traceId=trace-1")
	var page struct{ Content []json.RawMessage }
	if err := json.Unmarshal(search.raw, &page); err != nil || len(page.Content) != 1 {
		t.Fatalf("search: %v %s", err, search.raw)
	}
	if got.data != string(page.Content[0]) {
		t.Errorf("tail data\n%s\nsearch item\n%s", got.data, page.Content[0])
	}
	// The unfiltered stream sees the four new logs, and not the old one.
	var messages []string
	for range 4 {
		e := all.next(t)
		var l struct{ Message string }
		if err := json.Unmarshal([]byte(e.data), &l); err != nil {
			t.Fatal(err)
		}
		messages = append(messages, l.Message)
	}
	for _, m := range messages {
		if m == "before the tail" {
			t.Errorf("the tail showed a log sent before it started: %v", messages)
		}
	}
	// Nothing else matched the filtered stream; pings keep it alive.
	pings := 0
	for pings < 3 {
		select {
		case e := <-errors.events:
			if !e.comment {
				t.Fatalf("unexpected event %+v", e)
			}
			if e.data == "ping" {
				pings++
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no ping")
		}
	}
	// A bad filter is refused as a search would refuse it.
	if r := get(t, p.gateway+"/api/v1/logs/tail?logLevel=LOUD"); r.status != 400 || !strings.Contains(r.body["error"].(string), "logLevel") {
		t.Errorf("bad level: %d %s", r.status, r.raw)
	}
}

func TestLiveTailDropsASlowClient(t *testing.T) {
	p := startPipeline(t, func(c *configs.Config) { c.Tail.Buffer = 2 })
	// A client with a tiny receive window that does not read: the server's
	// writes block, the events wait in the subscription's buffer, and it
	// overflows.
	s := openTail(t, p, "", tinyWindowClient(), false)
	// Modest logs: enough to fill the socket's buffers in a few hundred,
	// without flooding a loaded machine's pipeline with hundreds of MB.
	big := strings.Repeat("x", 8000)
	sent := 0
	resiliencetest.Eventually(t, 150*time.Second, func() (bool, string) {
		batch := make([]map[string]any, 20)
		for i := range batch {
			batch[i] = map[string]any{"message": fmt.Sprintf("%d %s", sent+i, big), "level": "INFO", "source": "flood"}
		}
		if r := postJSON(t, p.producer+"/api/v1/logs/batch", batch); r.status != 202 {
			t.Fatalf("batch: %d %s", r.status, r.raw)
		}
		sent += len(batch)
		dropped := p.metric("tail_dropped_total")
		return dropped >= 1, fmt.Sprintf("%d logs sent, the slow client was not dropped", sent)
	})
	// Now read: the logs written before the drop, then the final message,
	// then the end of the stream.
	go s.read()
	var logsSeen int
	var last sseEvent
	for e := range s.events {
		if e.comment {
			continue
		}
		last = e
		if e.event == "log" {
			logsSeen++
		}
	}
	if last.event != "dropped" {
		t.Fatalf("last event = %+v, want dropped", last)
	}
	var reason struct{ Reason string }
	if err := json.Unmarshal([]byte(last.data), &reason); err != nil || !strings.Contains(reason.Reason, "did not keep up") {
		t.Errorf("dropped data = %s (%v)", last.data, err)
	}
	if logsSeen >= sent {
		t.Errorf("the slow client got all %d logs: it was never behind", sent)
	}
	// A new, fast client is served.
	fast := openTail(t, p, "source=after", nil, true)
	if r := postJSON(t, p.producer+"/api/v1/logs", map[string]any{"message": "hello again", "level": "INFO", "source": "after"}); r.status != 202 {
		t.Fatal(r.status)
	}
	if e := fast.next(t); !strings.Contains(e.data, "hello again") {
		t.Errorf("fast client got %+v", e)
	}
}

// TestLiveTailOutlivesTheServerTimeouts: a stream stays open past the
// listener's read and write timeouts, which bound ordinary requests.
func TestLiveTailOutlivesTheServerTimeouts(t *testing.T) {
	p := startPipeline(t, func(c *configs.Config) {
		c.HTTP.ReadHeaderTimeout = 300 * time.Millisecond
		c.HTTP.ReadTimeout = 300 * time.Millisecond
		// The write timeout must exceed the read timeout plus the longest
		// wait of a request.
		c.Producer.Timeout, c.Gateway.QueryTimeout = 2*time.Second, 2*time.Second
		c.HTTP.WriteTimeout = 2500 * time.Millisecond
		c.Tail.PingInterval = 50 * time.Millisecond
	})
	s := openTail(t, p, "source=late", nil, true)
	// Pings for well past both timeouts.
	for pings := 0; pings < 60; {
		select {
		case e, ok := <-s.events:
			if !ok {
				t.Fatalf("the stream ended after %d pings", pings)
			}
			if e.comment {
				pings++
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no ping")
		}
	}
	if r := postJSON(t, p.producer+"/api/v1/logs", map[string]any{"message": "still here", "level": "INFO", "source": "late"}); r.status != 202 {
		t.Fatal(r.status)
	}
	if e := s.next(t); !strings.Contains(e.data, "still here") {
		t.Errorf("got %+v", e)
	}
}

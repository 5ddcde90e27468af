package syslog_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logengine/logengine/ingest"
	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/ingest/syslog"
	"github.com/logengine/logengine/resilience/resiliencetest"
	"github.com/prometheus/client_golang/prometheus"
)

// flakyIntake refuses the first refusals calls as Kafka would when down,
// then takes everything.
type flakyIntake struct {
	mu       sync.Mutex
	refusals int
	calls    int
	messages []string
}

func (f *flakyIntake) Accept(_ context.Context, _ string, drafts []event.Draft, _ string) (ingest.Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls <= f.refusals {
		return ingest.Outcome{}, &ingest.Unavailable{Message: "kafka is down", RetryAfter: time.Millisecond}
	}
	for _, d := range drafts {
		f.messages = append(f.messages, d.Message)
	}
	return ingest.Outcome{Accepted: len(drafts)}, nil
}

func (f *flakyIntake) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.messages...)
}

// Over TCP a batch Kafka refuses is retried, not dropped: the sender has
// no way to learn of the loss.
func TestTCPRetriesWhileKafkaRefuses(t *testing.T) {
	intake := &flakyIntake{refusals: 3}
	cfg := syslog.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	s, err := syslog.Listen(cfg, intake, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		s.Shutdown(context.Background())
	}()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	second := "<11>1 - h app - - - second"
	if _, err := io.WriteString(c, "<11>1 - h app - - - first\n"+strconv.Itoa(len(second))+" "+second); err != nil {
		t.Fatal(err)
	}
	resiliencetest.Eventually(t, 10*time.Second, func() (bool, string) {
		got := intake.got()
		return len(got) == 2 && got[0] == "first" && got[1] == "second", "accepted so far: " + strings.Join(got, "|")
	})
}

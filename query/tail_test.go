package query

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/logengine/logengine/store/logs"
	"github.com/prometheus/client_golang/prometheus"
)

// chanSource is a TailSource of one partition fed by a channel, ready
// when told; end is the offset its End reports.
type chanSource struct {
	ready   chan struct{}
	records chan []logs.Event
	offsets chan []logs.Position
	mu      sync.Mutex
	end     int64
}

func (s *chanSource) Tail(ctx context.Context, ready func(), deliver func([]logs.Event, []logs.Position)) error {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil
	}
	ready()
	for {
		select {
		case <-ctx.Done():
			return nil
		case es := <-s.records:
			deliver(es, <-s.offsets)
		}
	}
}

func (s *chanSource) End(context.Context) (map[int32]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[int32]int64{0: s.end}, nil
}

// send delivers events at the next offsets of partition 0.
func (s *chanSource) send(events ...logs.Event) {
	s.mu.Lock()
	pos := make([]logs.Position, len(events))
	for i := range events {
		pos[i] = logs.Position{Offset: s.end}
		s.end++
	}
	s.mu.Unlock()
	s.records <- events
	s.offsets <- pos
}

func next(t *testing.T, s *Subscription) *logs.Event {
	t.Helper()
	for {
		select {
		case it := <-s.Events():
			if e, ok := s.Event(it); ok {
				return e
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
		}
	}
}

func TestTailFanOutAndBounds(t *testing.T) {
	off := NewTail(DefaultTailConfig(), nil, slog.Default(), prometheus.NewRegistry())
	if _, err := off.Subscribe(context.Background(), "sse", nil); !errors.Is(err, ErrTailOff) {
		t.Fatalf("no source: %v, want ErrTailOff", err)
	}
	// Without a source, Run still lasts as long as the process: a loop
	// that returned would stop it.
	offCtx, offCancel := context.WithCancel(context.Background())
	offDone := make(chan struct{})
	go func() { _ = off.Run(offCtx); close(offDone) }()
	select {
	case <-offDone:
		t.Fatal("Run without a source returned before its context ended")
	case <-time.After(50 * time.Millisecond):
	}
	offCancel()
	<-offDone

	src := &chanSource{ready: make(chan struct{}), records: make(chan []logs.Event), offsets: make(chan []logs.Position)}
	cfg := DefaultTailConfig()
	cfg.MaxSubscribers, cfg.Buffer = 2, 2
	tl := NewTail(cfg, src, slog.Default(), prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = tl.Run(ctx) })
	defer wg.Wait()
	defer cancel()

	if _, err := tl.Subscribe(ctx, "sse", nil); !errors.Is(err, ErrTailStarting) {
		t.Fatalf("before ready: %v, want ErrTailStarting", err)
	}
	close(src.ready)
	var errs, all *Subscription
	for deadline := time.Now().Add(10 * time.Second); ; {
		var err error
		if errs, err = tl.Subscribe(ctx, "sse", func(e *logs.Event) bool { return e.Level == logs.LevelError }); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	all, err := tl.Subscribe(ctx, "sse", func(*logs.Event) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tl.Subscribe(ctx, "sse", func(*logs.Event) bool { return true }); !errors.Is(err, ErrTailFull) {
		t.Fatalf("third subscriber: %v, want ErrTailFull", err)
	}
	src.send(logs.Event{Level: logs.LevelInfo, Message: "a"}, logs.Event{Level: logs.LevelError, Message: "b"})
	if e := next(t, errs); e.Message != "b" {
		t.Errorf("filtered subscriber got %q", e.Message)
	}
	// all holds two events, its whole buffer; one more ends it, and
	// only it.
	src.send(logs.Event{Level: logs.LevelError, Message: "c"})
	<-all.Done()
	if all.Reason() == "" {
		t.Error("no reason")
	}
	if e := next(t, errs); e.Message != "c" {
		t.Errorf("the other subscriber got %q", e.Message)
	}
	select {
	case <-errs.Done():
		t.Fatal("the fast subscriber was ended too")
	default:
	}
	// A record acknowledged before a subscription began is not shown,
	// even when the reader delivers it after.
	src.mu.Lock()
	late := logs.Position{Offset: src.end}
	src.end++
	src.mu.Unlock()
	fresh, err := tl.Subscribe(ctx, "sse", func(*logs.Event) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	src.records <- []logs.Event{{Level: logs.LevelError, Message: "old"}}
	src.offsets <- []logs.Position{late}
	src.send(logs.Event{Level: logs.LevelInfo, Message: "new"})
	if e := next(t, fresh); e.Message != "new" {
		t.Errorf("a new subscriber got %q first, want new", e.Message)
	}
	if e := next(t, errs); e.Message != "old" {
		t.Errorf("an older subscriber got %q, want old", e.Message)
	}
	// Stopping ends every subscription with a reason.
	cancel()
	<-errs.Done()
	if errs.Reason() == "" {
		t.Error("no reason at shutdown")
	}
}

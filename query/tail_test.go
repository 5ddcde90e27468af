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

// chanSource is a TailSource fed by a channel, ready when told.
type chanSource struct {
	ready  chan struct{}
	events chan []logs.Event
}

func (s *chanSource) Tail(ctx context.Context, ready func(), deliver func([]logs.Event)) error {
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
		case evs := <-s.events:
			deliver(evs)
		}
	}
}

func TestTailFanOutAndBounds(t *testing.T) {
	off := NewTail(DefaultTailConfig(), nil, slog.Default(), prometheus.NewRegistry())
	if _, err := off.Subscribe("sse", nil); !errors.Is(err, ErrTailOff) {
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
	src := &chanSource{ready: make(chan struct{}), events: make(chan []logs.Event)}
	cfg := DefaultTailConfig()
	cfg.MaxSubscribers, cfg.Buffer = 2, 2
	tl := NewTail(cfg, src, slog.Default(), prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = tl.Run(ctx) })
	defer wg.Wait()
	defer cancel()

	if _, err := tl.Subscribe("sse", nil); !errors.Is(err, ErrTailStarting) {
		t.Fatalf("before ready: %v, want ErrTailStarting", err)
	}
	close(src.ready)
	var errs, all *Subscription
	for deadline := time.Now().Add(10 * time.Second); ; {
		var err error
		if errs, err = tl.Subscribe("sse", func(e *logs.Event) bool { return e.Level == logs.LevelError }); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	all, err := tl.Subscribe("sse", func(*logs.Event) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tl.Subscribe("sse", func(*logs.Event) bool { return true }); !errors.Is(err, ErrTailFull) {
		t.Fatalf("third subscriber: %v, want ErrTailFull", err)
	}
	src.events <- []logs.Event{{Level: logs.LevelInfo, Message: "a"}, {Level: logs.LevelError, Message: "b"}}
	if e := <-errs.Events(); e.Message != "b" {
		t.Errorf("filtered subscriber got %q", e.Message)
	}
	// all holds two events, its whole buffer; one more ends it, and
	// only it.
	src.events <- []logs.Event{{Level: logs.LevelError, Message: "c"}}
	<-all.Done()
	if all.Reason() == "" {
		t.Error("no reason")
	}
	if e := <-errs.Events(); e.Message != "c" {
		t.Errorf("the other subscriber got %q", e.Message)
	}
	select {
	case <-errs.Done():
		t.Fatal("the fast subscriber was ended too")
	default:
	}
	// A place was freed.
	again, err := tl.Subscribe("sse", func(*logs.Event) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
	// Stopping ends every subscription with a reason.
	cancel()
	<-errs.Done()
	if errs.Reason() == "" {
		t.Error("no reason at shutdown")
	}
}

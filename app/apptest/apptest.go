// Package apptest runs logengine in a test's process: every role, its own
// database, its own cache prefix and ephemeral ports, stopped at the end.
package apptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/logengine/logengine/app"
	"github.com/logengine/logengine/cache/cachetest"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/store/storetest"
	"go.uber.org/goleak"
)

// LeakOptions are what goleak must ignore in tests that run a pipeline:
// keep-alive connections of HTTP clients, and rueidis's reconnect back-off
// sleep, which ends after Close returned.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
	}
}

// Config is the default configuration made safe to run in parallel: a
// fresh database, a unique cache prefix (its keys deleted at the end),
// ephemeral ports and a short flush interval.
func Config(t testing.TB) configs.Config {
	t.Helper()
	cfg := configs.Default()
	cfg.Kafka.EmbeddedAddr = "127.0.0.1:0"
	cfg.Kafka.Partitions = 3
	cfg.HTTP.ProducerAddr = "127.0.0.1:0"
	cfg.HTTP.ConsumerAddr = "127.0.0.1:0"
	cfg.HTTP.GatewayAddr = "127.0.0.1:0"
	cfg.Postgres.URL = storetest.NewURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	cfg.Redis.Prefix = "logengine-test:" + hex.EncodeToString(b[:]) + ":"
	cfg.Consumer.FlushInterval = 50 * time.Millisecond
	cfg.Log.Level = "debug"
	cfg.Audit.Log = filepath.Join(t.TempDir(), "audit.log")
	t.Cleanup(func() { cachetest.DeleteKeys(t, cfg.Redis.Addr, cfg.Redis.Prefix) })
	return cfg
}

// Start runs cfg until the test ends; its logs go to logs, printed when
// the test failed.
func Start(t testing.TB, cfg configs.Config, logs *LockedBuffer, opts ...app.Option) *app.App {
	t.Helper()
	a, err := app.New(cfg, "test", slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), opts...)
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pipeline stopped with: %v", err)
		}
		if t.Failed() {
			t.Logf("pipeline logs:\n%s", logs.String())
		}
	})
	select {
	case <-a.Started():
	case err := <-done:
		done <- err
		t.Fatalf("pipeline failed to start: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("pipeline did not start within 60s\n%s", logs.String())
	}
	return a
}

// LockedBuffer collects logs from many goroutines.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/logengine/logengine/app"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/store/storetest"
	"github.com/redis/rueidis"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The keep-alive connections of http.DefaultTransport outlive tests.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		// rueidis ends its reconnect back-off sleep after Close returned.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
	)
}

// lockedBuffer collects a pipeline's logs; they are printed when a test fails.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// pipeline is logengine running in this process with every role, its own
// database, its own cache prefix and ephemeral ports.
type pipeline struct {
	t                           testing.TB
	app                         *app.App
	cfg                         configs.Config
	producer, consumer, gateway string // base URLs
	logs                        *lockedBuffer
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testConfig is the default configuration made safe to run in parallel.
func testConfig(t testing.TB) configs.Config {
	cfg := configs.Default()
	cfg.Kafka.EmbeddedAddr = "127.0.0.1:0"
	cfg.Kafka.Partitions = 3
	cfg.HTTP.ProducerAddr = "127.0.0.1:0"
	cfg.HTTP.ConsumerAddr = "127.0.0.1:0"
	cfg.HTTP.GatewayAddr = "127.0.0.1:0"
	cfg.Postgres.URL = storetest.NewURL(t)
	cfg.Redis.Prefix = "logengine-test:" + randomHex(6) + ":"
	cfg.Consumer.FlushInterval = 50 * time.Millisecond
	cfg.Log.Level = "debug"
	t.Cleanup(func() { deleteCacheKeys(t, cfg.Redis.Addr, cfg.Redis.Prefix) })
	return cfg
}

func startPipeline(t testing.TB, mutate func(*configs.Config), opts ...app.Option) *pipeline {
	t.Helper()
	cfg := testConfig(t)
	if mutate != nil {
		mutate(&cfg)
	}
	logs := &lockedBuffer{}
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
	return &pipeline{
		t: t, app: a, cfg: cfg, logs: logs,
		producer: "http://" + a.Addr(app.RoleProducer),
		consumer: "http://" + a.Addr(app.RoleConsumer),
		gateway:  "http://" + a.Addr(app.RoleGateway),
	}
}

func deleteCacheKeys(t testing.TB, addr, prefix string) {
	if addr == "" {
		return
	}
	cl, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		return // Redis pointed at a closed port on purpose
	}
	defer cl.Close()
	ctx := context.Background()
	var cursor uint64
	for {
		entry, err := cl.Do(ctx, cl.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			t.Logf("cache cleanup: %v", err)
			return
		}
		if len(entry.Elements) > 0 {
			cl.Do(ctx, cl.B().Del().Key(entry.Elements...).Build())
		}
		if cursor = entry.Cursor; cursor == 0 {
			return
		}
	}
}

// response is an HTTP answer with its JSON body decoded.
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func do(t testing.TB, method, url, contentType string, body []byte, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 && (raw[0] == '{') {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %v: %s", method, url, err, raw)
		}
	}
	return r
}

func postJSON(t testing.TB, url string, body any, headers ...string) response {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, http.MethodPost, url, "application/json", b, headers...)
}

func get(t testing.TB, url string) response {
	t.Helper()
	return do(t, http.MethodGet, url, "", nil)
}

// waitRows waits until the pipeline's database holds n logs.
func (p *pipeline) waitRows(n int) {
	p.t.Helper()
	waitRows(p.t, p.cfg.Postgres.URL, n)
}

func waitRows(t testing.TB, dbURL string, n int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	deadline := time.Now().Add(60 * time.Second)
	var got int
	for time.Now().Before(deadline) {
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM logs").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			if got > n {
				t.Fatalf("database holds %d logs, want %d", got, n)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("database holds %d logs after 60s, want %d", got, n)
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// waitProcessed waits until the consumer has finished n logs: stored,
// caches invalidated and offsets committed (waitRows only sees the rows).
func (p *pipeline) waitProcessed(n float64) {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		mfs, err := p.app.Registry().Gather()
		if err != nil {
			p.t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "logs_processed_total" && mf.GetMetric()[0].GetCounter().GetValue() >= n {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("the consumer did not finish %v logs within 60s", n)
}

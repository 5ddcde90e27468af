package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/logengine/logengine/app"
	"github.com/logengine/logengine/app/apptest"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/resilience/resiliencetest"
	"github.com/logengine/logengine/store/storetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, apptest.LeakOptions()...)
}

// lockedBuffer collects a pipeline's or a process's logs.
type lockedBuffer = apptest.LockedBuffer

// pipeline is logengine running in this process with every role, its own
// database, its own cache prefix and ephemeral ports.
type pipeline struct {
	t                           testing.TB
	app                         *app.App
	cfg                         configs.Config
	producer, consumer, gateway string // base URLs
	logs                        *lockedBuffer
}

// testConfig is the default configuration made safe to run in parallel.
func testConfig(t testing.TB) configs.Config { return apptest.Config(t) }

func startPipeline(t testing.TB, mutate func(*configs.Config), opts ...app.Option) *pipeline {
	t.Helper()
	cfg := testConfig(t)
	if mutate != nil {
		mutate(&cfg)
	}
	logs := &lockedBuffer{}
	a := apptest.Start(t, cfg, logs, opts...)
	return &pipeline{
		t: t, app: a, cfg: cfg, logs: logs,
		producer: "http://" + a.Addr(app.RoleProducer),
		consumer: "http://" + a.Addr(app.RoleConsumer),
		gateway:  "http://" + a.Addr(app.RoleGateway),
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
	resiliencetest.Eventually(t, 60*time.Second, func() (bool, string) {
		got := int(storetest.StoredCount(t, dbURL))
		if got > n {
			t.Fatalf("database holds %d logs, want %d", got, n)
		}
		return got == n, fmt.Sprintf("database holds %d logs, want %d", got, n)
	})
}

// freeAddr returns a loopback address with a port free right now.
//
// It picks below the kernel's ephemeral range (32768 and up on Linux): a
// port the kernel handed out and took back may be handed to another test's
// connection before the process binds it, one from below it is not.
func freeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue // in use
		}
		ln.Close()
		return addr
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}

// waitProcessed waits until the consumer has finished n logs: stored,
// caches invalidated and offsets committed (waitRows only sees the rows).
func (p *pipeline) waitProcessed(n float64) {
	p.t.Helper()
	resiliencetest.Eventually(p.t, 60*time.Second, func() (bool, string) {
		got := p.metric("logs_processed_total")
		return got >= n, fmt.Sprintf("the consumer finished %v logs, want %v", got, n)
	})
}

// metric is the sum of the samples of a counter or gauge in the
// pipeline's registry, 0 when it has none.
func (p *pipeline) metric(name string) float64 {
	p.t.Helper()
	mfs, err := p.app.Registry().Gather()
	if err != nil {
		p.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

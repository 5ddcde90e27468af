package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logengine/logengine/resilience/resiliencetest"
	"github.com/logengine/logengine/store/storetest"
)

// shutdownRun is one serve --role=all process on the embedded broker,
// reaching PostgreSQL through a proxy the test can cut.
type shutdownRun struct {
	proc             *process
	producer, direct string
	proxy            *resiliencetest.Proxy
}

func startShutdownRun(t *testing.T, flags ...string) *shutdownRun {
	t.Helper()
	cfg := testConfig(t)
	u, _ := url.Parse(cfg.Postgres.URL)
	proxy := resiliencetest.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	prod, cons, gw := freeAddr(t), freeAddr(t), freeAddr(t)
	args := append([]string{"serve", "--role=all", "--embedded-kafka-addr=" + freeAddr(t),
		"--producer-addr=" + prod, "--consumer-addr=" + cons, "--gateway-addr=" + gw,
		"--postgres-url=" + u.String(), "--cache-prefix=" + cfg.Redis.Prefix, "--partitions=3",
		"--flush-interval=50ms", "--write-timeout=2s"}, flags...)
	p := startProcess(t, buildBinary(t), "logengine", args...)
	waitReady(t, p, "http://"+prod)
	waitReady(t, p, "http://"+cons)
	return &shutdownRun{proc: p, producer: "http://" + prod, direct: cfg.Postgres.URL, proxy: proxy}
}

// sendAcknowledged posts batches of new events until the producer stops
// taking them, and returns the ids it acknowledged with 202.
func sendAcknowledged(t *testing.T, producer string, stop <-chan struct{}) (wait func() []string) {
	var (
		mu    sync.Mutex
		acked []string
		done  = make(chan struct{})
	)
	client := &http.Client{Timeout: 30 * time.Second}
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			events := chaosEvents(50, fmt.Sprintf("shutdown-%d", i))
			body, _ := json.Marshal(events)
			resp, err := client.Post(producer+"/api/v1/logs/batch", "application/json", bytes.NewReader(body))
			if err != nil {
				time.Sleep(20 * time.Millisecond) // shutting down: the listener closed
				continue
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted {
				mu.Lock()
				for _, e := range events {
					acked = append(acked, e["id"].(string))
				}
				mu.Unlock()
				continue
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return func() []string { <-done; mu.Lock(); defer mu.Unlock(); return acked }
}

// SIGTERM while logs flow and the consumer is behind: ingest turns 503,
// the process stores everything the embedded broker holds before it
// stops, and every acknowledged log is stored exactly once.
func TestChaosSigtermDrainsEmbeddedBroker(t *testing.T) {
	t.Parallel()
	r := startShutdownRun(t, "--shutdown-timeout=60s")
	stopSending := make(chan struct{})
	stop := sync.OnceFunc(func() { close(stopSending) })
	wait := sendAcknowledged(t, r.producer, stopSending)
	t.Cleanup(func() { stop(); wait() })
	// PostgreSQL is cut, so accepted logs pile up in the broker.
	r.proxy.Cut()
	var atRisk float64
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		v := scrape(t, r.producer, "kafka_embedded_unstored_records")
		if len(v) == 1 {
			atRisk = v[0]
		}
		return atRisk >= 500, fmt.Sprintf("kafka_embedded_unstored_records is %v, want 500 logs at risk", v)
	})
	_ = r.proc.cmd.Process.Signal(syscall.SIGTERM)
	// The fault bit: the process is draining with logs unstored, and
	// refuses new ones meanwhile.
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		return strings.Contains(r.proc.logs.String(), "draining the embedded broker"), "the process never said it was draining"
	})
	resp := do(t, http.MethodPost, r.producer+"/api/v1/logs", "application/json", []byte(`{"message":"late","level":"INFO","source":"shutdown"}`))
	if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" || !strings.Contains(string(resp.raw), "shutting down") {
		t.Errorf("ingest while draining: %d %q %s; want 503 with Retry-After", resp.status, resp.header.Get("Retry-After"), resp.raw)
	}
	if got := get(t, r.producer+"/readyz"); got.status != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %d, want 503", got.status)
	}
	r.proxy.Restore()
	select {
	case err := <-r.proc.done:
		r.proc.done <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("the process did not exit within 90s of SIGTERM")
	}
	stop()
	acked := wait()
	o := settleNow(t, r.direct, acked)
	t.Logf("CHAOS %-22s accepted=%-6d stored=%-6d duplicates=%-3d lost=%-3d at-risk=%v", "sigterm-embedded-broker",
		o.accepted, o.stored, o.duplicates, o.lost, atRisk)
	if o.accepted == 0 || o.lost != 0 || o.duplicates != 0 {
		t.Errorf("accepted %d, stored %d, duplicates %d, lost %d", o.accepted, o.stored, o.duplicates, o.lost)
	}
	if !strings.Contains(r.proc.logs.String(), "embedded broker drained") {
		t.Errorf("the process did not log that it drained the broker")
	}
}

// With PostgreSQL gone for good, the drain gives up after
// --shutdown-timeout and says how many accepted logs are lost.
func TestChaosSigtermDrainIsBounded(t *testing.T) {
	t.Parallel()
	r := startShutdownRun(t, "--shutdown-timeout=3s")
	body := []byte(`[{"message":"one","level":"INFO","source":"shutdown"},{"message":"two","level":"INFO","source":"shutdown"}]`)
	r.proxy.Cut()
	if resp := do(t, http.MethodPost, r.producer+"/api/v1/logs/batch", "application/json", body); resp.status != http.StatusAccepted {
		t.Fatalf("batch: %d %s", resp.status, resp.raw)
	}
	_ = r.proc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.proc.done:
		r.proc.done <- err
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the process did not exit within 60s of SIGTERM with --shutdown-timeout=3s")
	}
	logs := r.proc.logs.String()
	if !strings.Contains(logs, "shutdown timeout: accepted logs the embedded broker holds are not stored") || !strings.Contains(logs, `"unstored_records":2`) {
		t.Errorf("the process did not report the 2 lost logs:\n%s", logs)
	}
}

// settleNow counts the acknowledged ids in the store of a pipeline that
// has stopped: nothing more will arrive.
func settleNow(t *testing.T, dbURL string, accepted []string) outcome {
	t.Helper()
	o := outcome{accepted: len(accepted)}
	counts := map[string]int{}
	for _, e := range storetest.StoredLogs(t, dbURL) {
		counts[e.ID.String()]++
	}
	for _, id := range accepted {
		switch n := counts[id]; n {
		case 0:
			o.lost++
		default:
			o.stored++
			o.duplicates += n - 1
		}
	}
	return o
}

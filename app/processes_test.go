package app_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/logengine/logengine/resilience/resiliencetest"
)

// buildBinary builds logengine into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	bin := filepath.Join(t.TempDir(), "logengine")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type process struct {
	name string
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan error
}

func startProcess(t *testing.T, bin, name string, args ...string) *process {
	t.Helper()
	p := &process{name: name, logs: &lockedBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	// Only the flags given: no LOGENGINE_* variable of the caller leaks in.
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s logs:\n%s", name, p.logs.String())
		}
	})
	return p
}

// waitReady polls /readyz until it answers 200; the process's logs are
// printed at the end of a failed test.
func waitReady(t *testing.T, p *process, base string) {
	t.Helper()
	resiliencetest.Eventually(t, 60*time.Second, func() (bool, string) {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("%s exited: %v", p.name, err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, fmt.Sprintf("%s not ready: %v", p.name, err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("%s not ready: /readyz answers %d", p.name, resp.StatusCode)
	})
}

// stop sends SIGTERM and expects a clean exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Errorf("%s exited with %v after SIGTERM\n%s", p.name, err, p.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not exit within 30s of SIGTERM", p.name)
	}
}

// TestRolesAsSeparateProcesses runs the documented three-process layout:
// the producer hosts the embedded broker, the consumer and the gateway join it.
func TestRolesAsSeparateProcesses(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	cfg := testConfig(t)
	kafka := freeAddr(t)
	prodAddr, consAddr, gwAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	common := []string{"--postgres-url=" + cfg.Postgres.URL, "--cache-prefix=" + cfg.Redis.Prefix,
		"--partitions=3", "--flush-interval=50ms"}

	producer := startProcess(t, bin, "producer", append([]string{"serve", "--role=producer",
		"--kafka-brokers=embedded", "--embedded-kafka-addr=" + kafka, "--producer-addr=" + prodAddr}, common...)...)
	waitReady(t, producer, "http://"+prodAddr)
	consumer := startProcess(t, bin, "consumer", append([]string{"serve", "--role=consumer",
		"--kafka-brokers=" + kafka, "--consumer-addr=" + consAddr}, common...)...)
	gateway := startProcess(t, bin, "gateway", append([]string{"serve", "--role=gateway",
		"--gateway-addr=" + gwAddr}, common...)...)
	waitReady(t, consumer, "http://"+consAddr)
	waitReady(t, gateway, "http://"+gwAddr)

	p := &pipeline{t: t, cfg: cfg, producer: "http://" + prodAddr, consumer: "http://" + consAddr, gateway: "http://" + gwAddr}
	f := ingestFixture(t, p)
	r := get(t, p.gateway+"/api/v1/logs?"+f.window()+"&logLevel=ERROR")
	if r.status != 200 || r.body["totalElements"] != 2.0 {
		t.Errorf("gateway process: %d %s", r.status, r.raw)
	}
	r = get(t, p.gateway+"/api/v1/logs/stats?"+f.window())
	if r.body["totalCount"] != 8.0 {
		t.Errorf("stats: %s", r.raw)
	}
	for _, proc := range []*process{gateway, consumer, producer} {
		proc.stop(t)
	}
	if !bytes.Contains([]byte(producer.logs.String()), []byte("embedded in-memory Kafka broker")) {
		t.Errorf("the producer did not warn that the embedded broker keeps data in memory")
	}
}

func TestRoleWithoutBrokersFailsClearly(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	out, err := exec.Command(bin, "serve", "--role=consumer", "--consumer-addr=127.0.0.1:0").CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("--kafka-brokers")) {
		t.Errorf("consumer without brokers: err=%v, output:\n%s", err, out)
	}
}

package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/logengine/logengine/cache/cachetest"
	"github.com/logengine/logengine/store/storetest"
)

// TestRunConsumers runs the scaling benchmark small, with one and two
// consumer processes: each run stores every log, the consumers' counts
// add up, CPU is measured, and no process or database is left behind.
func TestRunConsumers(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(t.TempDir(), "logengine")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	base := storetest.NewURL(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	prefix := strings.Trim(u.Path, "/")
	var b [6]byte
	_, _ = rand.Read(b[:])
	cfg := DefaultConsumersConfig()
	cfg.Binary, cfg.PostgresURL = bin, base
	cfg.CachePrefix = "logengine-test:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() { cachetest.DeleteKeys(t, cfg.RedisAddr, cfg.CachePrefix) })
	cfg.Logs, cfg.Consumers, cfg.Partitions, cfg.Timeout = 5000, []int{1, 2}, 2, 2*time.Minute

	var out bytes.Buffer
	results, err := RunConsumers(context.Background(), cfg, &out)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 {
		t.Fatalf("%d results, want 2", len(results))
	}
	loopback := u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost"
	for i, r := range results {
		k := cfg.Consumers[i]
		if r.Consumers != k || len(r.Processed) != k {
			t.Errorf("run %d: %d consumers, %d counts, want %d", i, r.Consumers, len(r.Processed), k)
		}
		var processed int64
		for _, n := range r.Processed {
			processed += n
		}
		// Redelivery after a rebalance counts twice, but never stores twice.
		if processed < int64(cfg.Logs) {
			t.Errorf("%d consumers processed %v logs in all, want at least %d", k, r.Processed, cfg.Logs)
		}
		if r.FirstStored <= 0 || r.AllStored < r.FirstStored || r.AtFirst < 1 {
			t.Errorf("%d consumers: first stored %s (%d logs), all %s", k, r.FirstStored, r.AtFirst, r.AllStored)
		}
		if r.ConsumerCPU <= 0 || r.ProducerCPU <= 0 || r.Send <= 0 {
			t.Errorf("%d consumers: consumer CPU %v s, producer CPU %v s, send %s", k, r.ConsumerCPU, r.ProducerCPU, r.Send)
		}
		if r.WAL <= 0 || r.Database <= 0 {
			t.Errorf("%d consumers: %d bytes of WAL, a database of %d bytes", k, r.WAL, r.Database)
		}
		// The server is on this machine: its processes' CPU is read.
		if loopback && (math.IsNaN(r.PostgresCPU) || r.PostgresCPU < 0) {
			t.Errorf("%d consumers: PostgreSQL CPU %v", k, r.PostgresCPU)
		}
		if !strings.Contains(out.String(), fmt.Sprintf("\n%-9d ", k)) {
			t.Errorf("no line for %d consumers", k)
		}
	}

	conn, err := pgx.Connect(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var left []string
	rows, _ := conn.Query(context.Background(), "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", prefix+"_")
	left, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(left) > 0 {
		t.Errorf("databases left: %v (%v)", left, err)
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		cmdline, err := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmdline, []byte(prefix+"_")) {
			t.Errorf("process %s left running: %s", p.Name(), bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		}
	}
}

func TestServesDatabase(t *testing.T) {
	for _, c := range []struct {
		title string
		want  bool
	}{
		{"postgres: 15/main: postgres bench_1 127.0.0.1(51234) idle ", true},
		{"postgres: 15/main: postgres bench_12 127.0.0.1(51234) idle ", false},
		{"postgres: postgres bench_1 [local] COPY", true},
		{"postgres: 15/main: postgres other 127.0.0.1(40000) INSERT", false},
		{"postgres: 15/main: walwriter ", true},
		{"postgres: 15/main: checkpointer ", true},
	} {
		if got := servesDatabase(c.title, "bench_1"); got != c.want {
			t.Errorf("servesDatabase(%q) = %v, want %v", c.title, got, c.want)
		}
	}
}

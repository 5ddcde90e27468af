package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/rueidis"
)

// ConsumersConfig is one consumer scaling run: for each count k of
// Consumers, a fresh database and a producer process hosting the embedded
// broker take Logs logs while no consumer runs; then k consumer processes
// start at once and are timed until the database holds every log.
type ConsumersConfig struct {
	// Binary is the logengine executable whose roles run as processes.
	Binary string
	// PostgresURL names the server and, by its database name, the prefix
	// of the databases: run k uses <name>_<k>, created and dropped.
	PostgresURL string
	// RedisAddr and CachePrefix are the consumers' cache (they bump its
	// invalidation epochs); the prefix's keys are deleted after each run.
	RedisAddr, CachePrefix string
	Logs                   int
	Consumers              []int
	// Partitions of the log topic: at most that many consumers get work.
	Partitions  int
	BatchSize   int
	Concurrency int
	Seed        uint64
	// Timeout bounds each wait: a process ready, every log stored.
	Timeout time.Duration
	// ServeFlags are more flags for every serve process.
	ServeFlags []string
}

// DefaultConsumersConfig is the scaling run of make bench-consumers.
func DefaultConsumersConfig() ConsumersConfig {
	return ConsumersConfig{
		PostgresURL: "postgres://postgres@127.0.0.1:5432/logengine_bench_consumers?sslmode=disable",
		RedisAddr:   "127.0.0.1:6379", CachePrefix: "logengine-bench-consumers:",
		Logs: 2_000_000, Consumers: []int{1, 2, 3}, Partitions: 6,
		BatchSize: 1000, Concurrency: 4, Seed: 1, Timeout: 10 * time.Minute,
	}
}

// ConsumersResult is what one consumer count measured. CPU figures are
// seconds of user plus system time; PostgresCPU is NaN when PostgreSQL's
// processes are not on this machine.
type ConsumersResult struct {
	Consumers int
	// The send phase: Logs accepted by the producer in Send, and the CPU
	// of the producer process (the embedded broker included) meanwhile.
	Send        time.Duration
	ProducerCPU float64
	// The consume phase, from the consumers' start: the first log stored
	// after FirstStored, every log after AllStored.
	FirstStored, AllStored time.Duration
	// AtFirst is how many logs were stored when the first was seen.
	AtFirst     int64
	ConsumerCPU float64
	// Processed is each consumer's logs_processed_total at the end.
	Processed []int64
	// BrokerCPU is the producer process's CPU in the consume phase: the
	// embedded broker serving fetches.
	BrokerCPU   float64
	PostgresCPU float64
	// WAL is the bytes of WAL the server wrote in the consume phase (all
	// its databases'), Database the database's size at its end.
	WAL, Database int64
}

// StoredPerSecond is the stored rate from the consumers' start.
func (r ConsumersResult) StoredPerSecond(logs int) float64 {
	return float64(logs) / r.AllStored.Seconds()
}

// SteadyPerSecond is the stored rate after the first log was seen stored,
// without the consumers' start-up and group join; 0 when every log was
// seen at once.
func (r ConsumersResult) SteadyPerSecond(logs int) float64 {
	if int64(logs) <= r.AtFirst || r.AllStored <= r.FirstStored {
		return 0
	}
	return float64(int64(logs)-r.AtFirst) / (r.AllStored - r.FirstStored).Seconds()
}

// RunConsumers runs cfg and writes one line per consumer count to out.
func RunConsumers(ctx context.Context, cfg ConsumersConfig, out io.Writer) ([]ConsumersResult, error) {
	if cfg.Binary == "" || cfg.Logs < 1 || len(cfg.Consumers) == 0 || cfg.Partitions < 1 {
		return nil, fmt.Errorf("bench consumers: a binary, logs, consumer counts and partitions are needed")
	}
	for _, k := range cfg.Consumers {
		if k < 1 {
			return nil, fmt.Errorf("bench consumers: %d consumers", k)
		}
	}
	server, err := url.Parse(cfg.PostgresURL)
	if err != nil || strings.Trim(server.Path, "/") == "" {
		return nil, fmt.Errorf("--postgres-url %q: want a postgres:// URL with a database name", cfg.PostgresURL)
	}
	now := time.Now().UTC().Truncate(time.Second)
	fmt.Fprintf(out, "generating %d logs over the 7 days before %s\n", cfg.Logs, now.Format(time.RFC3339))
	data := generate(cfg.Logs, cfg.Seed, now)
	fmt.Fprintf(out, "each run: a fresh database, one producer process with the embedded broker (%d partitions) takes every log,\n"+
		"then the consumer processes start at once and are timed until PostgreSQL holds every log; CPU is user+system seconds\n"+
		"(PostgreSQL: this database's backends and the server's own processes; broker: the producer process while consumed);\n"+
		"WAL is what the server wrote while consumed, DB the database's size when every log is stored, both per log\n\n", cfg.Partitions)
	fmt.Fprintf(out, "%-9s %12s %11s %10s %12s %14s %12s %10s | %10s %14s | %9s %8s | %s\n",
		"consumers", "stored log/s", "after first", "first at", "consumer CPU", "log/cons-CPU-s", "PostgreSQL", "broker", "sent log/s", "log/prod-CPU-s", "WAL B/log", "DB B/log", "stored by each")
	var results []ConsumersResult
	for _, k := range cfg.Consumers {
		r, err := runConsumers(ctx, cfg, server, data, k)
		if err != nil {
			return results, fmt.Errorf("%d consumers: %w", k, err)
		}
		results = append(results, r)
		pg := "n/a"
		if !math.IsNaN(r.PostgresCPU) {
			pg = fmt.Sprintf("%.1f s", r.PostgresCPU)
		}
		each := make([]string, len(r.Processed))
		for i, p := range r.Processed {
			each[i] = strconv.FormatInt(p, 10)
		}
		steady := "-" // every log was seen stored at once
		if v := r.SteadyPerSecond(cfg.Logs); v > 0 {
			steady = strconv.FormatFloat(v, 'f', 0, 64)
		}
		n := float64(cfg.Logs)
		fmt.Fprintf(out, "%-9d %12.0f %11s %9.1fs %10.1f s %14.0f %12s %8.1f s | %10.0f %14.0f | %9.0f %8.0f | %s\n", k,
			r.StoredPerSecond(cfg.Logs), steady, r.FirstStored.Seconds(),
			r.ConsumerCPU, n/r.ConsumerCPU, pg, r.BrokerCPU, n/r.Send.Seconds(), n/r.ProducerCPU,
			float64(r.WAL)/n, float64(r.Database)/n, strings.Join(each, "/"))
	}
	return results, nil
}

func runConsumers(ctx context.Context, cfg ConsumersConfig, server *url.URL, data *dataset, k int) (res ConsumersResult, err error) {
	res = ConsumersResult{Consumers: k, PostgresCPU: math.NaN()}
	dbName := fmt.Sprintf("%s_%d", strings.Trim(server.Path, "/"), k)
	dbURL := *server
	dbURL.Path = "/" + dbName
	if err := adminExec(ctx, server, "DROP DATABASE IF EXISTS "+pgx.Identifier{dbName}.Sanitize()+" WITH (FORCE)"); err != nil {
		return res, err
	}
	defer func() {
		// A fresh context: the run's may be cancelled already.
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = errors.Join(err, adminExec(dctx, server, "DROP DATABASE IF EXISTS "+pgx.Identifier{dbName}.Sanitize()+" WITH (FORCE)"))
		if cfg.RedisAddr != "" {
			err = errors.Join(err, deleteKeys(dctx, cfg.RedisAddr, cfg.CachePrefix))
		}
	}()
	// The schema before the clock starts: the consumers only open it.
	migrate := exec.CommandContext(ctx, cfg.Binary, "migrate", "--postgres-url="+dbURL.String(), "--log-level=warn")
	migrate.Env = childEnv()
	if outp, err := migrate.CombinedOutput(); err != nil {
		return res, fmt.Errorf("migrate: %w: %s", err, outp)
	}

	common := append([]string{"serve", "--postgres-url=" + dbURL.String(), "--redis-addr=" + cfg.RedisAddr,
		"--cache-prefix=" + cfg.CachePrefix, "--partitions=" + strconv.Itoa(cfg.Partitions),
		// The week of logs is neither refused nor dropped while measured.
		"--retention=8d", "--log-level=warn", "--shutdown-timeout=20s"}, cfg.ServeFlags...)
	kafkaAddr, prodAddr := freeAddr(), freeAddr()
	var procs []*child
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			err = errors.Join(err, procs[i].stop())
		}
	}()
	producer, err := startChild(cfg.Binary, "producer", prodAddr, slices.Concat(common, []string{"--role=producer",
		"--kafka-brokers=embedded", "--embedded-kafka-addr=" + kafkaAddr, "--producer-addr=" + prodAddr}))
	if err != nil {
		return res, err
	}
	procs = append(procs, producer)
	if err := waitReady(ctx, producer, "http://"+prodAddr, cfg.Timeout); err != nil {
		return res, err
	}

	cpu0, err := producer.cpu()
	if err != nil {
		return res, err
	}
	start := time.Now()
	sendCfg := Config{ProducerURL: "http://" + prodAddr, BatchSize: cfg.BatchSize, Concurrency: cfg.Concurrency}
	if err := send(ctx, &http.Client{Timeout: 2 * time.Minute}, sendCfg, data); err != nil {
		return res, fmt.Errorf("send: %w", err)
	}
	res.Send = time.Since(start)
	cpu1, err := producer.cpu()
	if err != nil {
		return res, err
	}
	res.ProducerCPU = cpu1 - cpu0

	db, err := pgx.Connect(ctx, dbURL.String())
	if err != nil {
		return res, err
	}
	defer db.Close(context.Background())
	var pollPID int
	if err := db.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pollPID); err != nil {
		return res, err
	}
	var walStart string
	if err := db.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&walStart); err != nil {
		return res, err
	}
	pg0 := postgresCPU(dbName, pollPID)

	var consumers []*child
	start = time.Now()
	for i := range k {
		addr := freeAddr()
		c, err := startChild(cfg.Binary, fmt.Sprintf("consumer %d", i+1), addr, slices.Concat(common, []string{"--role=consumer",
			"--kafka-brokers=" + kafkaAddr, "--consumer-addr=" + addr}))
		if err != nil {
			return res, err
		}
		procs = append(procs, c)
		consumers = append(consumers, c)
	}
	for {
		var stored int64
		if err := db.QueryRow(ctx, "SELECT coalesce(sum(row_count), 0) FROM all_blocks").Scan(&stored); err != nil {
			return res, err
		}
		if stored > 0 && res.FirstStored == 0 {
			res.FirstStored, res.AtFirst = time.Since(start), stored
		}
		if stored == int64(cfg.Logs) {
			res.AllStored = time.Since(start)
			break
		}
		if stored > int64(cfg.Logs) {
			return res, fmt.Errorf("%d logs stored, %d sent: duplicates", stored, cfg.Logs)
		}
		for _, c := range append(consumers, producer) {
			if err := c.exited(); err != nil {
				return res, err
			}
		}
		if time.Since(start) > cfg.Timeout {
			return res, fmt.Errorf("after %s %d of %d logs are stored", cfg.Timeout, stored, cfg.Logs)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	// The CPU figures at the moment the last log was seen stored.
	if pg1 := postgresCPU(dbName, pollPID); pg0 != nil && pg1 != nil {
		res.PostgresCPU = pg1.since(pg0)
	}
	if err := db.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint, pg_database_size(current_database())`,
		walStart).Scan(&res.WAL, &res.Database); err != nil {
		return res, err
	}
	cpu2, err := producer.cpu()
	if err != nil {
		return res, err
	}
	res.BrokerCPU = cpu2 - cpu1
	for _, c := range consumers {
		s, err := c.cpu()
		if err != nil {
			return res, err
		}
		res.ConsumerCPU += s
		n, err := scrapeProcessed(ctx, "http://"+c.addr)
		if err != nil {
			return res, fmt.Errorf("%s: %w", c.name, err)
		}
		res.Processed = append(res.Processed, n)
	}
	return res, nil
}

// child is a logengine serve process; its output is kept for errors.
type child struct {
	name string
	addr string // its role's listener
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{}
	err  error // once done is closed
}

func startChild(bin, name, addr string, args []string) (*child, error) {
	c := &child{name: name, addr: addr, out: &tailBuffer{max: 16 << 10}, done: make(chan struct{})}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Env = childEnv()
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// childEnv leaves the caller's LOGENGINE_* variables (an API key, another
// database) out of the processes: only the flags given configure them.
func childEnv() []string { return []string{"PATH=" + os.Getenv("PATH")} }

// exited is an error once the process ended, with the end of its output.
func (c *child) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("%s exited: %v\n%s", c.name, c.err, c.out.String())
	default:
		return nil
	}
}

// stop sends SIGTERM, waits for a clean exit, and kills after a minute.
func (c *child) stop() error {
	select {
	case <-c.done:
		return nil // exited already; that was reported when it was seen
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		if c.err != nil {
			return fmt.Errorf("%s exited with %v after SIGTERM\n%s", c.name, c.err, c.out.String())
		}
		return nil
	case <-time.After(time.Minute):
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("%s did not exit within a minute of SIGTERM\n%s", c.name, c.out.String())
	}
}

// cpu is the user plus system CPU seconds the process has used.
func (c *child) cpu() (float64, error) {
	ticks, err := procTicks(c.cmd.Process.Pid)
	return float64(ticks) / clockTicks, err
}

// clockTicks is Linux's USER_HZ, the unit of /proc/<pid>/stat's times: 100
// on every architecture Go supports (reading it needs cgo's sysconf).
const clockTicks = 100

// procTicks reads utime + stime of /proc/<pid>/stat.
func procTicks(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing one (state is field 3, utime 14, stime 15).
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	return utime + stime, errors.Join(err1, err2)
}

// pgSnapshot is the CPU ticks of PostgreSQL's processes that serve a
// database, or the whole server, by pid.
type pgSnapshot map[int]int64

// postgresCPU reads the ticks of the backends of database db (but the
// benchmark's own, skip) and of the server's own processes (WAL writer,
// checkpointer, background writer…); nil when no PostgreSQL process is
// visible here (a remote server).
func postgresCPU(db string, skip int) pgSnapshot {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	s := pgSnapshot{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == skip {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		if !servesDatabase(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})), db) {
			continue
		}
		if t, err := procTicks(pid); err == nil {
			s[pid] = t
		}
	}
	if len(s) == 0 {
		return nil
	}
	return s
}

// servesDatabase tells whether a PostgreSQL process of this title works
// for database db: a backend's title is "postgres: [cluster: ]user
// database host(port) state", and the server's own processes (WAL writer,
// checkpointer…), which name no client, work for every database.
func servesDatabase(title, db string) bool {
	client := strings.Contains(title, "(") || strings.Contains(title, "[local]")
	return !client || strings.Contains(" "+title+" ", " "+db+" ")
}

// since is the CPU seconds used between earlier and s: in full for the
// processes started in between; those that ended are not counted.
func (s pgSnapshot) since(earlier pgSnapshot) float64 {
	var ticks int64
	for pid, t := range s {
		ticks += t - earlier[pid]
	}
	return float64(ticks) / clockTicks
}

// scrapeProcessed reads logs_processed_total from a consumer's /metrics.
func scrapeProcessed(ctx context.Context, base string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "logs_processed_total "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f), err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no logs_processed_total in %s/metrics", base)
}

// waitReady polls base/readyz until it answers 200.
func waitReady(ctx context.Context, c *child, base string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := c.exited(); err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s\n%s", c.name, timeout, c.out.String())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freeAddr is a loopback address nothing listens on now.
func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer ln.Close()
	return ln.Addr().String()
}

// adminExec runs sql on the server's postgres database (CREATE and DROP
// DATABASE cannot run inside the database they name).
func adminExec(ctx context.Context, server *url.URL, sql string) error {
	admin := *server
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// deleteKeys removes the keys under prefix, which the consumers created.
func deleteKeys(ctx context.Context, addr, prefix string) error {
	cl, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	defer cl.Close()
	var cursor uint64
	for {
		entry, err := cl.Do(ctx, cl.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		if len(entry.Elements) > 0 {
			if err := cl.Do(ctx, cl.B().Del().Key(entry.Elements...).Build()).Error(); err != nil {
				return fmt.Errorf("redis: %w", err)
			}
		}
		if cursor = entry.Cursor; cursor == 0 {
			return nil
		}
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

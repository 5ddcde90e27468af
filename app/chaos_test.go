package app_test

// Chaos scenarios break Kafka, PostgreSQL, Redis and the processes on
// purpose while logs flow, check that the fault really bit (a scenario
// whose fault never happened proves nothing), then check the store: every
// accepted log stored exactly once, every rejected one absent or in the
// DLQ. Each prints one "CHAOS" line; `make chaos` runs them alone and
// shows those lines.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/ingest"
	"github.com/logengine/logengine/resilience/resiliencetest"
	"github.com/logengine/logengine/store/storetest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// chaosEvents are logs with client-chosen ids, so a client may retry a
// refused batch without creating duplicates.
func chaosEvents(n int, run string) []map[string]any {
	levels := []string{"INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG"}
	now := time.Now().UTC()
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = map[string]any{
			"id": uuid.NewString(), "timestamp": now.Add(-time.Duration(n-i) * time.Millisecond).Format(time.RFC3339Nano),
			"level": levels[i%len(levels)], "source": fmt.Sprintf("chaos-%d", i%7),
			"message": fmt.Sprintf("chaos run %s event %d", run, i),
		}
	}
	return out
}

// loader sends batches like a well-behaved client: a batch refused with 503
// or lost to a connection error is sent again, with the same ids, until it
// is accepted or the load's deadline passes.
type loader struct {
	urls     []string // producers, tried in turn
	next     int      // index of the next producer to try; only the sending goroutine uses it
	accepted sync.Map // id → true
	count    atomic.Int64
	refusals atomic.Int64
	client   *http.Client
}

func newLoader(urls ...string) *loader {
	return &loader{urls: urls, client: &http.Client{Timeout: 15 * time.Second}}
}

func (l *loader) send(ctx context.Context, events []map[string]any, batch int, pause time.Duration) {
	for start := 0; start < len(events) && ctx.Err() == nil; start += batch {
		part := events[start:min(start+batch, len(events))]
		body, _ := json.Marshal(part)
		for ctx.Err() == nil {
			u := l.urls[l.next%len(l.urls)] + "/api/v1/logs/batch"
			l.next++
			resp, err := l.client.Post(u, "application/json", bytes.NewReader(body))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					for _, e := range part {
						l.accepted.Store(e["id"], true)
					}
					l.count.Add(int64(len(part)))
					break
				}
			}
			l.refusals.Add(1)
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(pause)
	}
}

// sendInBackground sends while the scenario breaks things; wait returns
// once every batch was accepted or the limit passed. A test that fails
// before calling wait stops the load at its end.
func (l *loader) sendInBackground(t *testing.T, events []map[string]any, batch int, pause, limit time.Duration) (wait func()) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.send(ctx, events, batch, pause)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() { <-done }
}

// sendUntilStopped sends batches of new events until stop is called, so a
// scenario can break things while logs are sure to be flowing. stop waits
// until the batch in flight is accepted (or limit passes), so that every
// log sent was accepted.
func (l *loader) sendUntilStopped(t *testing.T, run string, batch int, pause, limit time.Duration) (stop func()) {
	stopping, stopNow := context.WithCancel(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; stopping.Err() == nil && ctx.Err() == nil; i++ {
			l.send(ctx, chaosEvents(batch, fmt.Sprintf("%s-%d", run, i)), batch, pause)
		}
	}()
	stop = sync.OnceFunc(func() { stopNow(); <-done; cancel() })
	t.Cleanup(func() { cancel(); stop() })
	return stop
}

func (l *loader) ids() []string {
	var out []string
	l.accepted.Range(func(k, _ any) bool { out = append(out, k.(string)); return true })
	return out
}

// outcome is what the store holds of the accepted logs.
type outcome struct {
	accepted, stored, duplicates, lost, dlq int
}

// settle waits until every accepted log is stored (failing after 90 s)
// and counts.
func settle(t *testing.T, dbURL string, accepted []string, brokers []string, dlqTopic string) outcome {
	t.Helper()
	o := outcome{accepted: len(accepted)}
	resiliencetest.Eventually(t, 90*time.Second, func() (bool, string) {
		counts := map[string]int{}
		for _, e := range storetest.StoredLogs(t, dbURL) {
			counts[e.ID.String()]++
		}
		o.stored, o.duplicates, o.lost = 0, 0, 0
		for _, id := range accepted {
			switch n := counts[id]; {
			case n == 0:
				o.lost++
			default:
				o.stored++
				o.duplicates += n - 1
			}
		}
		return o.lost == 0, fmt.Sprintf("accepted %d, stored %d, duplicates %d, lost %d", o.accepted, o.stored, o.duplicates, o.lost)
	})
	o.dlq = countTopic(t, brokers, dlqTopic)
	return o
}

func countTopic(t *testing.T, brokers []string, topic string) int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	ends.Each(func(o kadm.ListedOffset) { total += int(o.Offset) })
	return total
}

// report prints the scenario's line and fails on any loss or duplicate.
func report(t *testing.T, scenario string, o outcome, wantDLQ int) {
	t.Helper()
	t.Logf("CHAOS %-22s accepted=%-6d stored=%-6d duplicates=%-3d lost=%-3d dlq=%d",
		scenario, o.accepted, o.stored, o.duplicates, o.lost, o.dlq)
	if o.accepted == 0 || o.lost != 0 || o.duplicates != 0 || o.stored != o.accepted {
		t.Errorf("%s: accepted %d, stored %d, duplicates %d, lost %d", scenario, o.accepted, o.stored, o.duplicates, o.lost)
	}
	if o.dlq != wantDLQ {
		t.Errorf("%s: %d records in the DLQ, want %d", scenario, o.dlq, wantDLQ)
	}
}

func TestChaosKafkaProduceFailures(t *testing.T) {
	t.Parallel()
	// A broker of the test's own, so it can make Kafka fail on purpose.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	p := startPipeline(t, func(c *configs.Config) {
		c.Producer.Timeout = time.Second
		c.Kafka.Brokers = cluster.ListenAddrs()
	})
	var failing atomic.Bool
	var failed atomic.Int64
	// While failing, every produce is answered NOT_ENOUGH_REPLICAS, as a
	// cluster that lost its in-sync replicas answers acks=all.
	cluster.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if !failing.Load() {
			return nil, nil, false
		}
		failed.Add(1)
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			st.TopicID = rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotEnoughReplicas.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	l := newLoader(p.producer)
	wait := l.sendInBackground(t, chaosEvents(6000, "kafka"), 50, 20*time.Millisecond, 90*time.Second)
	time.Sleep(300 * time.Millisecond)
	failing.Store(true)
	time.Sleep(3 * time.Second)
	// While Kafka refuses records the producer says so, and is not ready.
	if r := get(t, p.producer+"/readyz"); r.status != http.StatusServiceUnavailable {
		t.Errorf("producer /readyz during Kafka failures: %d %s (failed %d refusals %d accepted %d)", r.status, r.raw, failed.Load(), l.refusals.Load(), l.count.Load())
	}
	failing.Store(false)
	wait()
	if failed.Load() == 0 || l.refusals.Load() == 0 {
		t.Errorf("the fault never bit: %d failed produce requests, %d refused batches", failed.Load(), l.refusals.Load())
	}
	report(t, "kafka-produce-failures", settle(t, p.cfg.Postgres.URL, l.ids(), p.app.KafkaBrokers(), p.cfg.Kafka.DLQTopic), 0)
}

func TestChaosPostgresOutage(t *testing.T) {
	t.Parallel()
	var proxy *resiliencetest.Proxy
	var direct string
	p := startPipeline(t, func(c *configs.Config) {
		u, _ := url.Parse(c.Postgres.URL)
		direct = c.Postgres.URL
		proxy = resiliencetest.NewProxy(t, u.Host)
		u.Host = proxy.Addr()
		c.Postgres.URL = u.String()
		c.Consumer.WriteTimeout = 2 * time.Second
	})
	l := newLoader(p.producer)
	wait := l.sendInBackground(t, chaosEvents(3000, "pg"), 50, 30*time.Millisecond, 90*time.Second)
	time.Sleep(500 * time.Millisecond)
	proxy.Cut()
	outageEnds := time.After(10 * time.Second)
	resiliencetest.Eventually(t, 10*time.Second, func() (bool, string) {
		r := get(t, p.consumer+"/readyz")
		h := get(t, p.consumer+"/healthz")
		return r.status == http.StatusServiceUnavailable && h.status == http.StatusServiceUnavailable,
			fmt.Sprintf("the consumer never reported PostgreSQL down: /readyz %d, /healthz %d", r.status, h.status)
	})
	// The fault bit: the consumer's writes failed and were retried.
	resiliencetest.Eventually(t, 10*time.Second, func() (bool, string) {
		return p.metric("consumer_write_retries_total") > 0, "no consumer write failed while PostgreSQL was cut"
	})
	<-outageEnds
	proxy.Restore()
	wait()
	report(t, "postgres-outage-10s", settle(t, direct, l.ids(), p.app.KafkaBrokers(), p.cfg.Kafka.DLQTopic), 0)
}

func TestChaosPoisonRecords(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, nil)
	l := newLoader(p.producer)
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.app.KafkaBrokers()...), kgo.DefaultProduceTopic(p.cfg.Kafka.Topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	wait := l.sendInBackground(t, chaosEvents(1000, "poison"), 50, 5*time.Millisecond, 90*time.Second)
	// Poison straight into the topic while valid logs flow: not JSON, an
	// unknown level, and a NUL in a source, which PostgreSQL refuses.
	now := time.Now().UTC().Format(time.RFC3339Nano)
	poison := [][]byte{
		[]byte("definitely not json"),
		[]byte(`{"id":"` + uuid.NewString() + `","timestamp":"` + now + `","level":"LOUD","source":"x","message":"m"}`),
		[]byte(`{"id":"` + uuid.NewString() + `","timestamp":"` + now + `","level":"INFO","source":"x\u0000y","message":"nul in the source"}`),
	}
	for _, v := range poison {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Key: []byte("chaos-1"), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// And an invalid event inside a client batch: the producer's DLQ path.
	r := postJSON(t, p.producer+"/api/v1/logs/batch", []map[string]any{
		{"id": uuid.NewString(), "level": "INFO", "source": "x", "message": "fine"}, {"level": "INFO", "message": "no source"}})
	if r.status != http.StatusAccepted {
		t.Fatalf("mixed batch: %d %s", r.status, r.raw)
	}
	var fine []string
	for _, id := range r.body["ids"].([]any) {
		fine = append(fine, id.(string))
	}
	wait()
	o := settle(t, p.cfg.Postgres.URL, append(l.ids(), fine...), p.app.KafkaBrokers(), p.cfg.Kafka.DLQTopic)
	// The fault bit: the consumer met the three poison records and set each
	// aside, rather than the DLQ filling some other way.
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := p.metric("logs_processing_failed_total")
		return n >= 3, fmt.Sprintf("the consumer set aside %v records, want the 3 poison ones", n)
	})
	if n := p.metric("logs_processing_failed_total"); n != 3 {
		t.Errorf("the consumer set aside %v records, want the 3 poison ones", n)
	}
	report(t, "poison-records", o, 4)
}

func TestChaosRedisOutage(t *testing.T) {
	t.Parallel()
	var proxy *resiliencetest.Proxy
	p := startPipeline(t, func(c *configs.Config) {
		proxy = resiliencetest.NewProxy(t, c.Redis.Addr)
		c.Redis.Addr = proxy.Addr()
	})
	l := newLoader(p.producer)
	l.send(context.Background(), chaosEvents(200, "redis"), 50, 0)
	o := settle(t, p.cfg.Postgres.URL, l.ids(), p.app.KafkaBrokers(), p.cfg.Kafka.DLQTopic)
	query := p.gateway + "/api/v1/logs?logLevel=ERROR&startTime=" + url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	get(t, query)
	errorsBefore := p.metric("cache_errors_total")
	proxy.Cut()
	failures := 0
	for i := 0; i < 50; i++ {
		r := get(t, query+"&size="+fmt.Sprint(1+i%5))
		if r.status != http.StatusOK {
			failures++
		}
	}
	if failures > 0 {
		t.Errorf("%d of 50 queries failed while Redis was down", failures)
	}
	// The fault bit: the queries tried Redis and counted the failures.
	if errs := p.metric("cache_errors_total"); errs <= errorsBefore {
		t.Errorf("cache_errors_total went from %v to %v while Redis was down: the outage was never seen", errorsBefore, errs)
	}
	h := get(t, p.gateway+"/actuator/health")
	if h.status != http.StatusOK || h.body["components"].(map[string]any)["redis"].(map[string]any)["status"] != "DOWN" {
		t.Errorf("health while Redis is down: %d %s", h.status, h.raw)
	}
	proxy.Restore()
	report(t, "redis-outage", o, 0)
}

// cluster is the roles as processes of the built binary around a broker
// that lives in the test, so any role can die and come back.
type cluster struct {
	t       *testing.T
	bin     string
	brokers []string
	cfg     configs.Config
	addrs   map[string]string
	procs   map[string]*process
}

func newCluster(t *testing.T) *cluster {
	b, err := ingest.StartEmbeddedBroker("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return &cluster{t: t, bin: buildBinary(t), brokers: b.Addrs(), cfg: testConfig(t), addrs: map[string]string{}, procs: map[string]*process{}}
}

// start runs a role under a name (consumer-2 is a second consumer), with
// more flags if given.
func (c *cluster) start(name, role string, flags ...string) {
	c.t.Helper()
	if c.addrs[name] == "" {
		c.addrs[name] = freeAddr(c.t)
	}
	args := append([]string{"serve", "--role=" + role, "--kafka-brokers=" + c.brokers[0],
		"--" + role + "-addr=" + c.addrs[name], "--postgres-url=" + c.cfg.Postgres.URL, "--cache-prefix=" + c.cfg.Redis.Prefix,
		"--partitions=6", "--flush-interval=50ms", "--produce-timeout=3s", "--log-level=warn"}, flags...)
	p := startProcess(c.t, c.bin, name, args...)
	c.procs[name] = p
	waitReady(c.t, p, c.url(name))
}

func (c *cluster) url(name string) string { return "http://" + c.addrs[name] }

func (c *cluster) stop(name string) { c.procs[name].stop(c.t) }

// kill sends SIGKILL and returns how the process ended.
func (c *cluster) kill(name string) error {
	p := c.procs[name]
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	err := <-p.done
	p.done <- err
	return err
}

// scrape returns the value of each series of a counter or gauge on a
// process's /metrics.
func scrape(t *testing.T, base, name string) []float64 {
	t.Helper()
	r := get(t, base+"/metrics")
	if r.status != http.StatusOK {
		t.Fatalf("GET %s/metrics: %d", base, r.status)
	}
	var values []float64
	for _, line := range strings.Split(string(r.raw), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("%s/metrics: %q: %v", base, line, err)
		}
		values = append(values, v)
	}
	return values
}

func (c *cluster) settle(l *loader) outcome {
	return settle(c.t, c.cfg.Postgres.URL, l.ids(), c.brokers, c.cfg.Kafka.DLQTopic)
}

func TestChaosConsumerKilledMidBatch(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.start("producer", "producer")
	c.start("consumer", "consumer")
	l := newLoader(c.url("producer"))
	stop := l.sendUntilStopped(t, "kill", 100, 5*time.Millisecond, 90*time.Second)
	// Kill once the consumer has committed, so that its successor must
	// resume from those commits.
	resiliencetest.Eventually(t, 60*time.Second, func() (bool, string) {
		offsets := scrape(t, c.url("consumer"), "consumer_committed_offset")
		return slices.ContainsFunc(offsets, func(o float64) bool { return o >= 0 }), fmt.Sprintf("committed offsets %v", offsets)
	})
	err := c.kill("consumer")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !exit.Sys().(syscall.WaitStatus).Signaled() || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the consumer did not die of SIGKILL: %v", err)
	}
	// Logs keep coming while no consumer runs.
	before := l.count.Load()
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := l.count.Load() - before
		return n >= 500, fmt.Sprintf("%d logs accepted since the kill, want 500", n)
	})
	stop()
	c.start("consumer", "consumer")
	o := c.settle(l)
	// The restart resumed: it stored what came after the kill, and did not
	// start again from the beginning of the topic. Its counter moves once
	// the batch's offsets are committed, after the rows settle saw.
	var processed float64
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		processed = slices.Max(append(scrape(t, c.url("consumer"), "logs_processed_total"), 0))
		return processed > 0, "the restarted consumer has processed nothing"
	})
	if records := countTopic(t, c.brokers, c.cfg.Kafka.Topic); processed == 0 || processed >= float64(records) {
		t.Errorf("the restarted consumer stored %v of the topic's %d records: want those sent after the kill, and fewer than all",
			processed, records)
	}
	report(t, "consumer-sigkill", o, 0)
}

// A consumer killed while it merges blocks: the merge is one transaction,
// so nothing is lost or doubled, and the next consumer merges again.
func TestChaosConsumerKilledDuringMerge(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.start("producer", "producer")
	// Merges wait long enough for many fresh blocks, so one takes a while;
	// batches below half a merged block are written fresh, for the merger.
	c.start("consumer", "consumer", "--merge-interval=3s", "--batch-size=1000")
	l := newLoader(c.url("producer"))
	stop := l.sendUntilStopped(t, "merge-kill", 100, 2*time.Millisecond, 90*time.Second)
	conn, err := pgx.Connect(context.Background(), c.cfg.Postgres.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// The merge lock ("log" + 4 as a bigint) is held while a merge runs.
	merging := func() bool {
		var n int
		err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND granted AND classid = 108 AND objid = 1869021188`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	resiliencetest.Eventually(t, 60*time.Second, func() (bool, string) {
		return merging(), "no merge has started"
	})
	err = c.kill("consumer")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the consumer did not die of SIGKILL: %v", err)
	}
	stop()
	c.start("consumer", "consumer", "--merge-interval=100ms", "--batch-size=1000")
	o := c.settle(l)
	resiliencetest.Eventually(t, 60*time.Second, func() (bool, string) {
		var fresh int
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM log_blocks_fresh").Scan(&fresh); err != nil {
			t.Fatal(err)
		}
		return fresh == 0, fmt.Sprintf("%d fresh blocks not merged", fresh)
	})
	if merged := slices.Max(append(scrape(t, c.url("consumer"), "store_blocks_merged_total"), 0)); merged == 0 {
		t.Error("the restarted consumer merged nothing")
	}
	report(t, "consumer-sigkill-during-merge", o, 0)
}

func TestChaosConsumerJoinsAndLeaves(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.start("producer", "producer")
	c.start("consumer", "consumer")
	l := newLoader(c.url("producer"))
	stop := l.sendUntilStopped(t, "join", 50, 10*time.Millisecond, 90*time.Second)
	c.start("consumer-2", "consumer")
	// The fault bit: the group rebalanced and the newcomer took a share.
	resiliencetest.Eventually(t, 60*time.Second, func() (bool, string) {
		n := slices.Max(append(scrape(t, c.url("consumer-2"), "logs_processed_total"), 0))
		return n > 0, "the second consumer stored nothing: it never got partitions"
	})
	c.stop("consumer-2")
	// Logs keep coming after it left; the first consumer must take them.
	before := l.count.Load()
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		n := l.count.Load() - before
		return n >= 500, fmt.Sprintf("%d logs accepted since the second consumer left, want 500", n)
	})
	stop()
	report(t, "consumer-join-leave", c.settle(l), 0)
}

func TestChaosRollingRestart(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.start("producer", "producer")
	c.start("producer-2", "producer")
	c.start("consumer", "consumer")
	c.start("gateway", "gateway")
	// Two producers behind the client, as behind a load balancer.
	l := newLoader(c.url("producer"), c.url("producer-2"))
	stop := l.sendUntilStopped(t, "rolling", 50, 15*time.Millisecond, 120*time.Second)
	// What a restarted role must have done before the next one restarts.
	works := map[string]string{"producer": "logs_sent_total", "consumer": "logs_processed_total"}
	for _, r := range []struct{ name, role string }{{"producer", "producer"}, {"producer-2", "producer"}, {"consumer", "consumer"}, {"gateway", "gateway"}} {
		c.stop(r.name)
		c.start(r.name, r.role)
		// The fault bit: the new process took its share of the load.
		if metric, ok := works[r.role]; ok {
			resiliencetest.Eventually(t, 60*time.Second, func() (bool, string) {
				n := slices.Max(append(scrape(t, c.url(r.name), metric), 0))
				return n > 0, fmt.Sprintf("restarted %s: %s = %v", r.name, metric, n)
			})
		}
	}
	stop()
	o := c.settle(l)
	if r := get(t, c.url("gateway")+"/api/v1/logs/stats"); r.status != http.StatusOK || r.body["totalCount"] != float64(o.stored) {
		t.Errorf("gateway after restarts: %d %s (stored %d)", r.status, r.raw, o.stored)
	}
	report(t, "rolling-restart", o, 0)
}

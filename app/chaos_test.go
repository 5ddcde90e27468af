package app_test

// Chaos scenarios break Kafka, PostgreSQL, Redis and the processes on
// purpose while logs flow, then check the store: every accepted log stored
// exactly once, every rejected one absent or in the DLQ. Each prints one
// "CHAOS" line; `make chaos` runs them alone and shows those lines.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
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
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
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
	accepted sync.Map // id → true
	count    atomic.Int64
	refusals atomic.Int64
	client   *http.Client
}

func newLoader(urls ...string) *loader {
	return &loader{urls: urls, client: &http.Client{Timeout: 15 * time.Second}}
}

func (l *loader) send(ctx context.Context, events []map[string]any, batch int, pause time.Duration) {
	next := 0
	for start := 0; start < len(events); start += batch {
		part := events[start:min(start+batch, len(events))]
		body, _ := json.Marshal(part)
		for ctx.Err() == nil {
			u := l.urls[next%len(l.urls)] + "/api/v1/logs/batch"
			next++
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
// once every batch was accepted or the limit passed.
func (l *loader) sendInBackground(events []map[string]any, batch int, pause, limit time.Duration) (wait func()) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		l.send(ctx, events, batch, pause)
	}()
	return func() { <-done }
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

// settle waits until every accepted log is stored (or 90 s pass) and counts.
func settle(t *testing.T, dbURL string, accepted []string, brokers []string, dlqTopic string) outcome {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	o := outcome{accepted: len(accepted)}
	deadline := time.Now().Add(90 * time.Second)
	for {
		counts := map[string]int{}
		rows, err := conn.Query(ctx, "SELECT id::text, count(*) FROM logs GROUP BY id")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			var n int
			if err := rows.Scan(&id, &n); err != nil {
				t.Fatal(err)
			}
			counts[id] = n
		}
		rows.Close()
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
		if o.lost == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
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
	p := startPipeline(t, func(c *configs.Config) { c.Producer.Timeout = time.Second })
	cluster := p.app.EmbeddedBroker().Cluster()
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
	wait := l.sendInBackground(chaosEvents(6000, "kafka"), 50, 20*time.Millisecond, 90*time.Second)
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
	wait := l.sendInBackground(chaosEvents(3000, "pg"), 50, 30*time.Millisecond, 90*time.Second)
	time.Sleep(500 * time.Millisecond)
	proxy.Cut()
	sawDown := false
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		r := get(t, p.consumer+"/readyz")
		h := get(t, p.consumer+"/healthz")
		if r.status == http.StatusServiceUnavailable && h.status == http.StatusServiceUnavailable {
			sawDown = true
		}
	}
	if !sawDown {
		t.Errorf("the consumer never reported PostgreSQL down during a 10 s outage")
	}
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
	wait := l.sendInBackground(chaosEvents(1000, "poison"), 50, 5*time.Millisecond, 90*time.Second)
	// Poison straight into the topic while valid logs flow: not JSON, an
	// unknown level, and a NUL that PostgreSQL refuses.
	now := time.Now().UTC().Format(time.RFC3339Nano)
	poison := [][]byte{
		[]byte("definitely not json"),
		[]byte(`{"id":"` + uuid.NewString() + `","timestamp":"` + now + `","level":"LOUD","source":"x","message":"m"}`),
		[]byte(`{"id":"` + uuid.NewString() + `","timestamp":"` + now + `","level":"INFO","source":"x","message":"nul \u0000 here"}`),
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
	report(t, "poison-records", settle(t, p.cfg.Postgres.URL, append(l.ids(), fine...), p.app.KafkaBrokers(), p.cfg.Kafka.DLQTopic), 4)
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

// start runs a role under a name (consumer-2 is a second consumer).
func (c *cluster) start(name, role string) {
	c.t.Helper()
	if c.addrs[name] == "" {
		c.addrs[name] = freeAddr(c.t)
	}
	p := startProcess(c.t, c.bin, name, "serve", "--role="+role, "--kafka-brokers="+c.brokers[0],
		"--"+role+"-addr="+c.addrs[name], "--postgres-url="+c.cfg.Postgres.URL, "--cache-prefix="+c.cfg.Redis.Prefix,
		"--partitions=6", "--flush-interval=50ms", "--produce-timeout=3s", "--log-level=warn")
	c.procs[name] = p
	waitReady(c.t, p, c.url(name))
}

func (c *cluster) url(name string) string { return "http://" + c.addrs[name] }

func (c *cluster) stop(name string) { c.procs[name].stop(c.t) }

func (c *cluster) kill(name string) {
	p := c.procs[name]
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	err := <-p.done
	p.done <- err
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
	wait := l.sendInBackground(chaosEvents(4000, "kill"), 100, 5*time.Millisecond, 90*time.Second)
	time.Sleep(time.Second)
	c.kill("consumer")
	time.Sleep(500 * time.Millisecond)
	c.start("consumer", "consumer")
	wait()
	report(t, "consumer-sigkill", c.settle(l), 0)
}

func TestChaosConsumerJoinsAndLeaves(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.start("producer", "producer")
	c.start("consumer", "consumer")
	l := newLoader(c.url("producer"))
	wait := l.sendInBackground(chaosEvents(4000, "join"), 50, 10*time.Millisecond, 90*time.Second)
	time.Sleep(500 * time.Millisecond)
	c.start("consumer-2", "consumer")
	time.Sleep(1500 * time.Millisecond)
	c.stop("consumer-2")
	wait()
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
	wait := l.sendInBackground(chaosEvents(4000, "rolling"), 50, 15*time.Millisecond, 120*time.Second)
	for _, name := range []string{"producer", "producer-2", "consumer", "gateway"} {
		time.Sleep(300 * time.Millisecond)
		role := map[string]string{"producer": "producer", "producer-2": "producer", "consumer": "consumer", "gateway": "gateway"}[name]
		c.stop(name)
		c.start(name, role)
	}
	wait()
	o := c.settle(l)
	if r := get(t, c.url("gateway")+"/api/v1/logs/stats"); r.status != http.StatusOK || r.body["totalCount"] != float64(o.stored) {
		t.Errorf("gateway after restarts: %d %s (stored %d)", r.status, r.raw, o.stored)
	}
	report(t, "rolling-restart", o, 0)
}

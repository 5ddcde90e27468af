package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/ingest"
	"github.com/logengine/logengine/ingest/event"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// durableTopics is a three-broker cluster whose topics (3 partitions)
// were created with replication factor 3 and min.insync.replicas 2, with
// an admin client, the configuration and a test's context.
func durableTopics(t *testing.T) (*kfake.Cluster, *kadm.Client, ingest.KafkaConfig, context.Context) {
	t.Helper()
	c, adm := threeBrokers(t)
	kc := ingest.KafkaConfig{Brokers: c.ListenAddrs(), Topic: "logs", DLQTopic: "logs-dlq", Partitions: 3,
		ReplicationFactor: 3, MinInsyncReplicas: 2}
	ctx := dlqContext(t)
	if err := ingest.EnsureTopics(ctx, kc, dlqTestLogger()); err != nil {
		t.Fatal(err)
	}
	return c, adm, kc, ctx
}

// threeBrokers is an in-process Kafka cluster of three brokers, and an
// admin client on it.
func threeBrokers(t *testing.T) (*kfake.Cluster, *kadm.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return c, kadm.NewClient(cl)
}

// logRecords collects what a logger writes, as JSON objects.
type logRecords struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logRecords) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logRecords) all(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(l.buf.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// topicState is what a topic is made of, read back from the cluster.
type topicState struct {
	partitions, replicas int
	minInsync            string
	minInsyncSource      kmsg.ConfigSource
	distinctReplicas     bool
}

func readTopics(t *testing.T, adm *kadm.Client, topics ...string) map[string]topicState {
	t.Helper()
	ctx := dlqContext(t)
	details, err := adm.ListTopics(ctx, topics...)
	if err == nil {
		err = details.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	configs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]topicState{}
	for _, name := range topics {
		d := details[name]
		st := topicState{partitions: len(d.Partitions), replicas: d.Partitions.NumReplicas(), distinctReplicas: true}
		for _, p := range d.Partitions {
			seen := map[int32]bool{}
			for _, r := range p.Replicas {
				st.distinctReplicas = st.distinctReplicas && !seen[r]
				seen[r] = true
			}
			if len(p.Replicas) != st.replicas {
				t.Errorf("%s partition %d has %d replicas, partition 0 has %d", name, p.Partition, len(p.Replicas), st.replicas)
			}
		}
		rc, err := configs.On(name, nil)
		if err == nil {
			err = rc.Err
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range rc.Configs {
			if c.Key == "min.insync.replicas" {
				st.minInsync, st.minInsyncSource = c.MaybeValue(), c.Source
			}
		}
		out[name] = st
	}
	return out
}

// The log and DLQ topics are created with the replication factor and
// min.insync.replicas asked for, on a cluster of three brokers; topics
// that exist already are not changed, and each setting of theirs that
// differs is logged as a warning.
func TestEnsureTopicsAppliesReplicationAndMinInsync(t *testing.T) {
	t.Parallel()
	c, adm := threeBrokers(t)
	kc := ingest.KafkaConfig{Brokers: c.ListenAddrs(), Topic: "logs", DLQTopic: "logs-dlq", Partitions: 6,
		ReplicationFactor: 3, MinInsyncReplicas: 2}
	if err := kc.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs logRecords
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	if err := ingest.EnsureTopics(dlqContext(t), kc, logger); err != nil {
		t.Fatal(err)
	}
	want := topicState{partitions: 6, replicas: 3, minInsync: "2", minInsyncSource: kmsg.ConfigSourceDynamicTopicConfig, distinctReplicas: true}
	for name, got := range readTopics(t, adm, kc.Topic, kc.DLQTopic) {
		if got != want {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
	}
	for _, r := range logs.all(t) {
		if r["level"] != "INFO" || r["msg"] != "created kafka topic" {
			t.Errorf("unexpected log %v", r)
		}
	}

	// Again, with other settings: nothing changes, every difference is
	// named. The broker default (-1, 0) is no difference.
	logs.buf.Reset()
	other := kc
	other.Partitions, other.ReplicationFactor, other.MinInsyncReplicas = 8, 2, 1
	if err := ingest.EnsureTopics(dlqContext(t), other, logger); err != nil {
		t.Fatal(err)
	}
	for name, got := range readTopics(t, adm, kc.Topic, kc.DLQTopic) {
		if got != want {
			t.Errorf("%s changed: %+v, want %+v", name, got, want)
		}
	}
	warned := map[string]bool{}
	for _, r := range logs.all(t) {
		if r["level"] != "WARN" {
			t.Errorf("unexpected log %v", r)
			continue
		}
		warned[r["topic"].(string)+" "+r["setting"].(string)] = true
		if r["hint"] == "" {
			t.Errorf("warning without a hint: %v", r)
		}
	}
	for _, topic := range []string{kc.Topic, kc.DLQTopic} {
		for _, setting := range []string{"partitions", "replication factor", "min.insync.replicas"} {
			if !warned[topic+" "+setting] {
				t.Errorf("no warning that %s has another %s; warnings: %v", topic, setting, warned)
			}
		}
	}

	logs.buf.Reset()
	same := kc
	same.ReplicationFactor, same.MinInsyncReplicas = -1, 0
	if err := ingest.EnsureTopics(dlqContext(t), same, logger); err != nil {
		t.Fatal(err)
	}
	if got := logs.all(t); len(got) != 0 {
		t.Errorf("existing topics as configured (broker defaults): logs %v, want none", got)
	}
}

func TestKafkaConfigValidatesMinInsyncReplicas(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		embedded      bool
		rf, minInsync int
		problem       string
	}{
		{rf: -1, minInsync: 0},
		{rf: 3, minInsync: 2},
		{rf: 3, minInsync: 3},
		{rf: -1, minInsync: 2}, // the broker's default factor is unknown here
		{rf: 3, minInsync: 4, problem: "must not exceed --replication-factor (3)"},
		{rf: 1, minInsync: -1, problem: "min-insync-replicas: must be 0 (broker default) or at least 1"},
		{embedded: true, rf: -1, minInsync: 1},
		{embedded: true, rf: -1, minInsync: 2, problem: "the embedded broker is one broker"},
	} {
		kc := ingest.DefaultKafkaConfig()
		if !tc.embedded {
			kc.Brokers = []string{"kafka-1:9092", "kafka-2:9092", "kafka-3:9092"}
		}
		kc.ReplicationFactor, kc.MinInsyncReplicas = tc.rf, tc.minInsync
		err := kc.Validate()
		switch {
		case tc.problem == "" && err != nil:
			t.Errorf("rf %d, min.insync %d: %v", tc.rf, tc.minInsync, err)
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("rf %d, min.insync %d: %v, want %q", tc.rf, tc.minInsync, err, tc.problem)
		}
	}
}

// refuseProduce makes the cluster answer every produce request with code
// while refuse is set, and counts the requests it refused.
func refuseProduce(c *kfake.Cluster, code int16, refuse *atomic.Bool, refused *atomic.Int64) {
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !refuse.Load() {
			return nil, nil, false
		}
		refused.Add(1)
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID // by name or, from v13, by id
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
}

// When Kafka refuses writes with NOT_ENOUGH_REPLICAS (fewer replicas in
// sync than min.insync.replicas: two of three brokers down), the producer
// answers 503 with Retry-After and says why; the log is not counted as
// accepted and is not written later; once the replicas are back, the
// retried request is accepted and written once.
func TestIngestAnswers503WhileKafkaHasNotEnoughReplicas(t *testing.T) {
	t.Parallel()
	c, adm, kc, ctx := durableTopics(t)
	var refuse atomic.Bool
	var refused atomic.Int64
	refuse.Store(true)
	refuseProduce(c, kerr.NotEnoughReplicas.Code, &refuse, &refused)

	reg := prometheus.NewRegistry()
	p, err := ingest.NewProducer(ingest.ProducerConfig{Timeout: time.Second, MaxBufferedRecords: 1000, MaxBufferedBytes: 1 << 20},
		kc, dlqTestLogger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Close(ctx)
	})
	h := ingest.NewHandler(ingest.DefaultHandlerConfig(), p, dlqTestLogger(), reg)
	e := echo.New()
	h.Register(e)
	post := func(id string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/logs",
			strings.NewReader(`{"id":"`+id+`","level":"ERROR","source":"payments","message":"card declined"}`))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	const refusedID, acceptedID = "0190b4c6-1d2e-7a3b-8c4d-5e6f70819201", "0190b4c6-1d2e-7a3b-8c4d-5e6f70819202"

	rec := post(refusedID)
	var answer struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
		t.Fatalf("503 body %q: %v", rec.Body, err)
	}
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("with not enough replicas: %d, Retry-After %q, %s; want 503 with Retry-After 1", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	for _, want := range []string{"NOT_ENOUGH_REPLICAS", "min.insync.replicas", "not accepted", "retry later"} {
		if !strings.Contains(answer.Error, want) {
			t.Errorf("the 503's error %q does not say %q", answer.Error, want)
		}
	}
	if refused.Load() == 0 {
		t.Fatal("no produce request reached the cluster")
	}
	if sent, failed := counter(t, reg, "logs_sent_total"), counter(t, reg, "logs_failed_total"); sent != 0 || failed != 1 {
		t.Errorf("logs_sent_total %v, logs_failed_total %v; want 0 and 1", sent, failed)
	}

	// The refused record leaves the producer without being written (its
	// request's deadline fails it at its next retry); only then do the
	// replicas come back, so a late retry of it could not hide here.
	for p.Buffered() > 0 {
		if ctx.Err() != nil {
			t.Fatalf("the refused record is still buffered: %v", ctx.Err())
		}
		time.Sleep(50 * time.Millisecond)
	}
	refuse.Store(false)
	if rec := post(acceptedID); rec.Code != http.StatusAccepted {
		t.Fatalf("with the replicas back: %d %s", rec.Code, rec.Body)
	}
	ends, err := adm.ListEndOffsets(ctx, kc.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	var written int64
	ends.Each(func(o kadm.ListedOffset) { written += o.Offset })
	if written != 1 {
		t.Fatalf("%d records in %s, want 1: the accepted one only", written, kc.Topic)
	}
	got := consumeOne(t, kc)
	if ev, err := event.Decode(got.Value); err != nil || ev.ID.String() != acceptedID {
		t.Errorf("the record written is %s (%v), want the accepted event %s", got.Value, err, acceptedID)
	}
	if sent := counter(t, reg, "logs_sent_total"); sent != 1 {
		t.Errorf("logs_sent_total %v, want 1", sent)
	}
}

// counter is the value of a counter of reg by name.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// consumeOne reads the first record of the log topic.
func consumeOne(t *testing.T, kc ingest.KafkaConfig) *kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.Brokers...), kgo.ConsumeTopics(kc.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := dlqContext(t)
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("no record in %s: %v", kc.Topic, err)
		}
		if recs := fs.Records(); len(recs) > 0 {
			return recs[0]
		}
	}
}

// Every client of logengine that produces writes with acks=all and as an
// idempotent producer: the producer (log events and the producer's and
// consumer's dead letters) and the DLQ replay. Checked on the wire: the
// produce requests' acks and their batches' producer ids.
func TestEveryProducerWritesWithAcksAllAndIdempotence(t *testing.T) {
	t.Parallel()
	c, adm, kc, ctx := durableTopics(t)
	details, err := adm.ListTopics(ctx, kc.Topic, kc.DLQTopic)
	if err != nil {
		t.Fatal(err)
	}
	names := map[[16]byte]string{}
	for _, d := range details {
		names[d.ID] = d.Topic
	}
	var (
		mu     sync.Mutex
		topics = map[string]int{} // topic → produce requests seen
		bad    []string
	)
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		mu.Lock()
		defer mu.Unlock()
		if req.Acks != -1 {
			bad = append(bad, fmt.Sprintf("acks=%d", req.Acks))
		}
		for _, rt := range req.Topics {
			name := rt.Topic
			if name == "" { // from v13, topics by id
				name = names[rt.TopicID]
			}
			topics[name]++
			for _, rp := range rt.Partitions {
				var b kmsg.RecordBatch
				if err := b.ReadFrom(rp.Records); err != nil || b.ProducerID < 0 {
					bad = append(bad, rt.Topic+": a batch without producer id (not idempotent)")
				}
			}
		}
		return nil, nil, false
	})
	p, err := ingest.NewProducer(ingest.ProducerConfig{Timeout: 10 * time.Second, MaxBufferedRecords: 1000, MaxBufferedBytes: 1 << 20},
		kc, dlqTestLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if err := p.Publish(ctx, events(3), []ingest.DeadLetter{{Value: []byte(`{"level":"INFO","source":"web","message":"replay me"}`),
		Reason: ingest.ReasonValidation, Err: "invalid event: message: too long", Stage: "producer"}}, "cid"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	before := topics[kc.Topic]
	mu.Unlock()
	res, err := ingest.ReplayDLQ(ctx, kc.Brokers, kc.DLQTopic, kc.Topic, ingest.DLQFilter{}, event.DefaultLimits(), dlqTestLogger())
	if err != nil || res.Replayed != 1 {
		t.Fatalf("replay: %+v, %v; want one replayed", res, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if topics[kc.Topic] == before || topics[kc.DLQTopic] == 0 {
		t.Fatalf("produce requests by topic %v (log topic before the replay: %d): some writer was not seen", topics, before)
	}
	if len(bad) > 0 {
		t.Errorf("produce requests not durable: %v", bad)
	}
}

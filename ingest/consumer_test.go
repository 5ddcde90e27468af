package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/ingest"
	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/resilience"
	"github.com/logengine/logengine/resilience/resiliencetest"
	"github.com/logengine/logengine/store"
	"github.com/logengine/logengine/store/logs"
	"github.com/logengine/logengine/store/storetest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// rig is a broker, its topics, a real database and a producer.
type rig struct {
	t        *testing.T
	kafka    ingest.KafkaConfig
	store    *store.Store
	dbURL    string
	producer *ingest.Producer
}

func newRig(t *testing.T) *rig {
	t.Helper()
	b, err := ingest.StartEmbeddedBroker("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	kc := ingest.KafkaConfig{Brokers: b.Addrs(), Topic: "logs", DLQTopic: "logs-dlq", Partitions: 3, ReplicationFactor: -1}
	ctx := context.Background()
	if err := ingest.EnsureTopics(ctx, kc, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	dbURL := storetest.NewURL(t)
	s, err := store.Open(ctx, store.Config{URL: dbURL, MaxConns: 4}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	p, err := ingest.NewProducer(ingest.ProducerConfig{Timeout: 10 * time.Second, MaxBufferedRecords: 10000}, kc,
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return &rig{t: t, kafka: kc, store: s, dbURL: dbURL, producer: p}
}

func events(n int) []logs.Event {
	now := time.Now().UTC().Truncate(time.Microsecond)
	out := make([]logs.Event, n)
	for i := range out {
		out[i] = logs.Event{
			ID: uuid.Must(uuid.NewV7()), Timestamp: now.Add(-time.Duration(i) * time.Millisecond),
			Level: logs.LevelInfo, Source: fmt.Sprintf("svc-%d", i%5), Message: fmt.Sprintf("message %d", i), ReceivedAt: now,
		}
	}
	return out
}

// consumer runs a consumer of group until the test ends or stop is called.
type runningConsumer struct {
	reg  *prometheus.Registry
	stop func()
}

func (r *rig) consume(group string, st ingest.Store, opts ...func(*ingest.ConsumerConfig)) *runningConsumer {
	r.t.Helper()
	reg := prometheus.NewRegistry()
	cfg := ingest.ConsumerConfig{
		Group: group, BatchSize: 50, FlushInterval: 20 * time.Millisecond, WriteTimeout: 30 * time.Second,
		IsDataError: store.IsDataError, Retry: resilience.RetryConfig{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		ShutdownTimeout: 10 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := ingest.NewConsumer(cfg, r.kafka, st, r.producer, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				r.t.Errorf("consumer: %v", err)
			}
		})
	}
	r.t.Cleanup(stop)
	return &runningConsumer{reg: reg, stop: stop}
}

// counter reads a counter of the consumer's registry.
func (c *runningConsumer) counter(name string) float64 {
	mfs, _ := c.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	return 0
}

func (c *runningConsumer) waitCounter(t *testing.T, name string, want float64) {
	t.Helper()
	resiliencetest.Eventually(t, 60*time.Second, func() (bool, string) {
		got := c.counter(name)
		return got >= want, fmt.Sprintf("%s = %v, want %v", name, got, want)
	})
}

func (r *rig) rows() (total, distinct int) {
	r.t.Helper()
	ids := map[uuid.UUID]bool{}
	for _, e := range storetest.StoredLogs(r.t, r.dbURL) {
		ids[e.ID] = true
		total++
	}
	return total, len(ids)
}

// A consumer resumes from the offsets stored with the logs, not from its
// group's: a new group (no commits at all) stores only what is new.
func TestConsumerResumesFromTheStore(t *testing.T) {
	r := newRig(t)
	if err := r.producer.Publish(context.Background(), events(300), nil, ""); err != nil {
		t.Fatal(err)
	}
	first := r.consume("group-a", r.store)
	first.waitCounter(t, "logs_processed_total", 300)
	first.stop()
	if err := r.producer.Publish(context.Background(), events(50), nil, ""); err != nil {
		t.Fatal(err)
	}
	second := r.consume("group-b", r.store)
	second.waitCounter(t, "logs_processed_total", 50)
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		total, distinct := r.rows()
		return total == 350 && distinct == 350, fmt.Sprintf("%d rows, %d distinct ids; want 350 and 350", total, distinct)
	})
	second.stop()
	if got := second.counter("logs_processed_total"); got != 50 {
		t.Errorf("the new group stored %v logs, want only the 50 new ones", got)
	}
}

// lostAck stores the first batch and then reports failure, as when the
// connection drops after COMMIT: the consumer retries the same batch.
type lostAck struct {
	ingest.Store
	failed atomic.Bool
}

func (l *lostAck) Write(ctx context.Context, b store.Batch) (int64, error) {
	n, err := l.Store.Write(ctx, b)
	if err == nil && l.failed.CompareAndSwap(false, true) {
		return 0, errors.New("connection reset after commit")
	}
	return n, err
}

func TestRetryAfterLostAcknowledgementStoresOnce(t *testing.T) {
	r := newRig(t)
	if err := r.producer.Publish(context.Background(), events(120), nil, ""); err != nil {
		t.Fatal(err)
	}
	c := r.consume("group", &lostAck{Store: r.store})
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		total, _ := r.rows()
		return total >= 120, fmt.Sprintf("%d rows, want 120", total)
	})
	c.stop()
	if got := c.counter("consumer_write_retries_total"); got != 1 {
		t.Errorf("retries = %v, want 1", got)
	}
	if total, distinct := r.rows(); total != 120 || distinct != 120 {
		t.Errorf("%d rows, %d distinct ids; want 120 and 120", total, distinct)
	}
}

// With DeleteStored, the broker keeps only what is not stored yet.
func TestConsumerDeletesStoredRecords(t *testing.T) {
	r := newRig(t)
	if err := r.producer.Publish(context.Background(), events(300), nil, ""); err != nil {
		t.Fatal(err)
	}
	c := r.consume("group", r.store, func(cfg *ingest.ConsumerConfig) { cfg.DeleteStored = true })
	c.waitCounter(t, "logs_processed_total", 300)
	c.waitCounter(t, "consumer_records_deleted_total", 300)
	c.stop()
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.kafka.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(context.Background(), r.kafka.Topic)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(context.Background(), r.kafka.Topic)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(end kadm.ListedOffset) {
		start, _ := starts.Lookup(end.Topic, end.Partition)
		if start.Offset != end.Offset {
			t.Errorf("partition %d keeps offsets %d..%d, all stored", end.Partition, start.Offset, end.Offset)
		}
	})
}

// crashAfterStore stores the first batch, then fails every write, as a
// consumer dying between its transaction and its group commit would.
type crashAfterStore struct {
	ingest.Store
	stored atomic.Int64
}

func (c *crashAfterStore) Write(ctx context.Context, b store.Batch) (int64, error) {
	if c.stored.Load() > 0 {
		return 0, errors.New("crashed")
	}
	n, err := c.Store.Write(ctx, b)
	c.stored.Add(n)
	if err == nil {
		err = errors.New("crashed after commit")
	}
	return n, err
}

func TestRestartBeforeCommitStoresOnce(t *testing.T) {
	r := newRig(t)
	evs := events(200)
	if err := r.producer.Publish(context.Background(), evs, nil, ""); err != nil {
		t.Fatal(err)
	}
	// A consumer that stores a batch and dies before committing it to the
	// group.
	dying := &crashAfterStore{Store: r.store}
	first := r.consume("group", dying)
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		return dying.stored.Load() > 0, "nothing stored yet"
	})
	first.stop()
	c := r.consume("group", r.store)
	resiliencetest.Eventually(t, 30*time.Second, func() (bool, string) {
		total, _ := r.rows()
		return total >= 200, fmt.Sprintf("%d rows, want 200", total)
	})
	c.stop()
	if total, distinct := r.rows(); total != 200 || distinct != 200 {
		t.Errorf("%d rows, %d distinct ids; want 200 and 200", total, distinct)
	}
}

func TestPoisonRecordsGoToTheDLQ(t *testing.T) {
	r := newRig(t)
	good := events(10)
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.kafka.Brokers...), kgo.DefaultProduceTopic(r.kafka.Topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var records []*kgo.Record
	for i := range good {
		v, _ := event.Encode(&good[i])
		records = append(records, &kgo.Record{Key: []byte("k"), Value: v})
		if i == 4 {
			records = append(records, &kgo.Record{Key: []byte("k"), Value: []byte("not json at all")})
			// Valid JSON, but PostgreSQL refuses a NUL in a source.
			nul := fmt.Sprintf(`{"id":%q,"timestamp":%q,"level":"INFO","source":"s\u0000vc","message":"bad source"}`,
				uuid.NewString(), time.Now().UTC().Format(time.RFC3339Nano))
			records = append(records, &kgo.Record{Key: []byte("k"), Value: []byte(nul)})
		}
	}
	if err := cl.ProduceSync(context.Background(), records...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c := r.consume("group", r.store)
	c.waitCounter(t, "logs_processing_failed_total", 2)
	c.waitCounter(t, "logs_processed_total", 10)
	c.stop()
	if total, _ := r.rows(); total != 10 {
		t.Errorf("stored %d rows, want the 10 good ones", total)
	}

	dlq, err := kgo.NewClient(kgo.SeedBrokers(r.kafka.Brokers...), kgo.ConsumeTopics(r.kafka.DLQTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reasons := map[string]map[string]string{}
	for len(reasons) < 2 && ctx.Err() == nil {
		dlq.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
			h := map[string]string{}
			for _, kv := range rec.Headers {
				h[kv.Key] = string(kv.Value)
			}
			reasons[h[ingest.HeaderReason]] = h
		})
	}
	for _, reason := range []string{ingest.ReasonDecode, ingest.ReasonStore} {
		h, ok := reasons[reason]
		if !ok {
			t.Errorf("no DLQ record with reason %q (got %v)", reason, reasons)
			continue
		}
		if h[ingest.HeaderOrigTopic] != r.kafka.Topic || h[ingest.HeaderOrigOffset] == "" || h[ingest.HeaderOrigPartition] == "" || h[ingest.HeaderError] == "" {
			t.Errorf("DLQ record %q lacks its origin: %v", reason, h)
		}
	}
}

// TestRebalanceIsNotBlockedByAnOutage: a member whose PostgreSQL is gone
// keeps retrying its batch, yet a member joining the group gets its share
// of partitions and stores it, and nothing is lost or doubled at the end.
func TestRebalanceIsNotBlockedByAnOutage(t *testing.T) {
	r := newRig(t)
	u, err := url.Parse(r.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := resiliencetest.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	cut, err := store.Open(context.Background(), store.Config{URL: u.String(), MaxConns: 2},
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cut.Close)
	proxy.Cut()

	first := r.consume("group", cut)
	if err := r.producer.Publish(context.Background(), events(600), nil, ""); err != nil {
		t.Fatal(err)
	}
	first.waitCounter(t, "consumer_write_retries_total", 1)
	second := r.consume("group", r.store)
	second.waitCounter(t, "logs_processed_total", 1) // it got partitions despite the retrying member
	proxy.Restore()
	resiliencetest.Eventually(t, 60*time.Second, func() (bool, string) {
		total, distinct := r.rows()
		if total > 600 {
			t.Fatalf("%d rows, %d distinct ids; want 600 and 600", total, distinct)
		}
		return total == 600 && distinct == 600, fmt.Sprintf("%d rows, %d distinct ids; want 600 and 600", total, distinct)
	})
	first.stop()
	second.stop()
}

// heldStore holds every write until released, honouring its context as a
// slow database write would.
type heldStore struct {
	ingest.Store
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (h *heldStore) Write(ctx context.Context, b store.Batch) (int64, error) {
	h.once.Do(func() { close(h.entered) })
	select {
	case <-h.release:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return h.Store.Write(ctx, b)
}

// Stopping the consumer while a batch is being written finishes that write
// (within the shutdown grace period) instead of cancelling it: the batch is
// stored and committed, not left for redelivery.
func TestShutdownFinishesTheWriteInProgress(t *testing.T) {
	r := newRig(t)
	if err := r.producer.Publish(context.Background(), events(20), nil, ""); err != nil {
		t.Fatal(err)
	}
	held := &heldStore{Store: r.store, entered: make(chan struct{}), release: make(chan struct{})}
	c := r.consume("grace", held)
	select {
	case <-held.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the consumer never wrote")
	}
	stopped := make(chan struct{})
	go func() { c.stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("the consumer stopped with a write in progress")
	case <-time.After(200 * time.Millisecond): // still writing: the stop waits for it
	}
	close(held.release)
	<-stopped
	if total, _ := r.rows(); total != 20 {
		t.Errorf("%d rows after stopping during the write, want the batch's 20", total)
	}
	if got := c.counter("logs_processed_total"); got != 20 {
		t.Errorf("logs_processed_total %v, want 20", got)
	}
}

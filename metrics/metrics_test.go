package metrics_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/logengine/logengine/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// families gathers g and returns the families by name.
func families(t *testing.T, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func TestNewRegistryHasRuntimeAndProcessMetrics(t *testing.T) {
	got := families(t, metrics.NewRegistry())
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if got[name] == nil {
			t.Errorf("NewRegistry lacks %s", name)
		}
	}
	for name := range got {
		if !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("NewRegistry has %s: a fresh registry holds only the runtime and process collectors", name)
		}
	}
}

// everything registers every component's metrics on reg and gives each
// labelled family one series, so that all of them are gathered.
func everything(reg prometheus.Registerer) {
	metrics.NewProducer(reg).Rejected.WithLabelValues("invalid").Inc()
	metrics.NewProducer(reg).ProtocolEvents.WithLabelValues("otlp", "accepted").Inc()
	metrics.NewSyslog(reg).Dropped.WithLabelValues("udp", "queue_full").Inc()
	c := metrics.NewConsumer(reg)
	c.CommittedOffset.WithLabelValues("logs", "0").Set(-1)
	c.Lag.WithLabelValues("logs", "0").Set(0)
	metrics.NewDLQ(reg).Records.WithLabelValues("invalid").Inc()
	q := metrics.NewQuery(reg)
	q.Queries.WithLabelValues("search").Inc()
	q.Duration.WithLabelValues("search").Observe(0.01)
	ca := metrics.NewCache(reg)
	ca.Hits.WithLabelValues("local").Inc()
	ca.Misses.WithLabelValues("hot").Inc()
	ca.Duration.WithLabelValues("get").Observe(0.001)
	ca.Refusals.WithLabelValues("budget").Inc()
	b := metrics.NewBreaker(reg)
	b.State.WithLabelValues("postgres").Set(0)
	b.Transitions.WithLabelValues("postgres", "open").Inc()
	h := metrics.NewHTTP(reg)
	h.Requests.WithLabelValues("gateway", "/api/v1/logs", "200").Inc()
	h.Duration.WithLabelValues("gateway", "/api/v1/logs").Observe(0.01)
	tl := metrics.NewTail(reg)
	tl.Sent.WithLabelValues("sse").Inc()
	tl.Dropped.WithLabelValues("slow").Inc()
}

func TestConstructorsRegisterWhatTheyExport(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	everything(reg)
	want := []string{
		"logs_received_total", "logs_sent_total", "logs_failed_total", "logs_rejected_total",
		"logs_received_bytes_total", "logs_accept_duration_seconds", "logs_protocol_events_total", "syslog_dropped_total",
		"logs_processed_total", "logs_processing_failed_total", "consumer_batch_size",
		"consumer_flush_duration_seconds", "consumer_write_retries_total", "consumer_commit_failures_total", "consumer_records_deleted_total", "consumer_skipped_total",
		"logs_end_to_end_seconds", "consumer_committed_offset", "consumer_lag_records",
		"dlq_records_total",
		"log_queries_total", "log_query_duration_seconds",
		"cache_hits_total", "cache_misses_total", "cache_errors_total", "cache_local_bytes",
		"cache_local_entries", "cache_operation_duration_seconds",
		"cache_redis_bytes", "cache_evictions_total", "cache_refusals_total",
		"breaker_state", "breaker_transitions_total",
		"http_requests_total", "http_request_duration_seconds",
		"tail_subscribers", "tail_events_total", "tail_events_sent_total", "tail_dropped_total",
	}
	var got []string
	for name := range families(t, reg) {
		got = append(got, name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("registered families:\n got %v\nwant %v", got, want)
	}
}

// TestMetricsPassTheLinter runs promlint, the linter behind `promtool check
// metrics`, over every metric logengine defines.
func TestMetricsPassTheLinter(t *testing.T) {
	reg := metrics.NewRegistry()
	everything(reg)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestComponentsShareOneRegistry: the producer and the consumer of one
// process both register dlq_records_total (and every component the breaker
// and HTTP metrics); the second registration gets the first's collectors
// instead of a panic, so both count on the same series.
func TestComponentsShareOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	d1, d2 := metrics.NewDLQ(reg), metrics.NewDLQ(reg)
	d1.Records.WithLabelValues("invalid").Inc()
	d2.Records.WithLabelValues("invalid").Inc()
	if got := testutil.ToFloat64(d1.Records.WithLabelValues("invalid")); got != 2 {
		t.Errorf("dlq_records_total after one increment through each of two registrations = %v, want 2", got)
	}
	p1, p2 := metrics.NewProducer(reg), metrics.NewProducer(reg)
	p1.Received.Inc()
	p2.Received.Inc()
	if got := testutil.ToFloat64(p2.Received); got != 2 {
		t.Errorf("logs_received_total = %v, want 2", got)
	}
	metrics.NewBreaker(reg)
	metrics.NewBreaker(reg)
	metrics.NewHTTP(reg)
	metrics.NewHTTP(reg)
	if n := testutil.CollectAndCount(reg, "logs_received_total"); n != 1 {
		t.Errorf("%d logs_received_total series, want 1", n)
	}
}

// TestConflictingDefinitionPanics: a metric registered twice under one name
// but with different labels is a programming error, not a shared metric.
func TestConflictingDefinitionPanics(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dlq_records_total", Help: "Records written to the dead-letter topic, by reason."}, []string{"topic"}))
	defer func() {
		if recover() == nil {
			t.Error("NewDLQ on a registry where dlq_records_total has other labels did not panic")
		}
	}()
	metrics.NewDLQ(reg)
}

// TestNilRegistererRegistersNothing: constructors take a nil registerer
// (metrics unused) and give working collectors.
func TestNilRegistererRegistersNothing(t *testing.T) {
	p := metrics.NewProducer(nil)
	p.Received.Inc()
	if got := testutil.ToFloat64(p.Received); got != 1 {
		t.Errorf("unregistered counter = %v, want 1", got)
	}
}

// gauge returns the value of name's series labelled client_id=id, and
// whether there is one.
func gauge(t *testing.T, g prometheus.Gatherer, name, id string) (float64, bool) {
	t.Helper()
	mf := families(t, g)[name]
	for _, m := range mf.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "client_id" && lp.GetValue() == id {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

// TestKafkaBufferedGaugesAreRenamed: kprom names its buffered-record
// gauges ..._total; KafkaHooks exports them without the suffix, with their
// values and client labels, and drops them when the client closes.
func TestKafkaBufferedGaugesAreRenamed(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	// Port 1 refuses connections: a produced record stays buffered.
	newClient := func(id string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"), kgo.ClientID(id),
			kgo.DefaultProduceTopic("logs"), kgo.WithHooks(metrics.KafkaHooks(reg)))
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	producer, consumer := newClient("producer"), newClient("consumer")
	defer consumer.Close()
	done := make(chan error, 1)
	producer.Produce(context.Background(), &kgo.Record{Value: []byte("x")}, func(_ *kgo.Record, err error) { done <- err })

	got := families(t, reg)
	for _, name := range []string{"kafka_buffered_produce_records_total", "kafka_buffered_fetch_records_total"} {
		if got[name] != nil {
			t.Errorf("%s is still exported", name)
		}
	}
	if v, ok := gauge(t, reg, "kafka_buffered_produce_records", "producer"); !ok || v != 1 {
		t.Errorf("kafka_buffered_produce_records{client_id=producer} = %v (present %v), want 1", v, ok)
	}
	if v, ok := gauge(t, reg, "kafka_buffered_produce_records", "consumer"); !ok || v != 0 {
		t.Errorf("kafka_buffered_produce_records{client_id=consumer} = %v (present %v), want 0", v, ok)
	}
	if _, ok := gauge(t, reg, "kafka_buffered_fetch_records", "consumer"); !ok {
		t.Error("kafka_buffered_fetch_records{client_id=consumer} missing")
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}

	producer.Close()
	if err := <-done; err == nil {
		t.Error("a record buffered at Close was reported produced")
	}
	if _, ok := gauge(t, reg, "kafka_buffered_produce_records", "producer"); ok {
		t.Error("the closed client's kafka_buffered_produce_records is still exported")
	}
	if _, ok := gauge(t, reg, "kafka_buffered_produce_records", "consumer"); !ok {
		t.Error("closing one client removed the other's kafka_buffered_produce_records")
	}
}

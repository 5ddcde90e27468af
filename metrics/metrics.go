// Package metrics defines every Prometheus metric logengine exports. Each
// process builds one registry and hands it to the constructors here; nothing
// is global, so tests can run many pipelines in one process.
package metrics

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// register adds c to reg, or returns the collector already registered under
// the same description: the producer and the consumer of one process share
// metrics such as dlq_records_total.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing
			}
		}
		panic(err) // a conflicting definition is a programming error
	}
	return c
}

func counter(reg prometheus.Registerer, name, help string) prometheus.Counter {
	return register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
}

func counterVec(reg prometheus.Registerer, name, help string, labels ...string) *prometheus.CounterVec {
	return register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
}

func histogram(reg prometheus.Registerer, name, help string, buckets []float64) prometheus.Histogram {
	return register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}))
}

// LatencyBuckets span 0.5 ms to 10 s.
func LatencyBuckets() []float64 {
	return []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
}

// Tenant label values that are not a tenant's name.
const (
	// TenantOther counts the tenants no key names (a tenant an admin's
	// X-Scope-OrgID chose): the label's values stay as many as the keys
	// file's tenants, whatever clients send.
	TenantOther = "_other"
	// TenantMany counts the queries across several tenants.
	TenantMany = "_many"
)

type tenantLabelKey struct{}

// WithTenantLabel returns ctx carrying the tenant label value its
// request's metrics use (see TenantOther).
func WithTenantLabel(ctx context.Context, label string) context.Context {
	return context.WithValue(ctx, tenantLabelKey{}, label)
}

// TenantLabel is the tenant label value ctx carries, or tenant when it
// carries none (a request not through the API keys' check, such as the
// syslog listener's, whose tenant is configured, so bounded).
func TenantLabel(ctx context.Context, tenant string) string {
	if l, ok := ctx.Value(tenantLabelKey{}).(string); ok && l != "" {
		return l
	}
	return tenant
}

// Producer holds the ingest metrics, with the tutorial's names.
type Producer struct {
	Received       prometheus.Counter     // events in valid requests
	Sent           prometheus.Counter     // events acknowledged by Kafka
	Failed         prometheus.Counter     // events Kafka did not take (503)
	Rejected       *prometheus.CounterVec // invalid events, by reason
	ReceivedBytes  prometheus.Counter
	AcceptDuration prometheus.Histogram
	// ProtocolEvents counts the events of the ingest protocols (otlp,
	// loki, elastic, jsonl, syslog) by outcome: accepted, rejected (to
	// the DLQ) or failed (Kafka did not take them).
	ProtocolEvents *prometheus.CounterVec
	// TenantEvents counts the events by tenant (a bounded label, see
	// TenantLabel) and outcome: accepted, rejected or failed.
	TenantEvents *prometheus.CounterVec
}

// NewProducer registers the producer's metrics.
func NewProducer(reg prometheus.Registerer) *Producer {
	p := &Producer{
		Received:       counter(reg, "logs_received_total", "Log events received by the producer."),
		Sent:           counter(reg, "logs_sent_total", "Log events acknowledged by Kafka."),
		Failed:         counter(reg, "logs_failed_total", "Log events the producer could not hand to Kafka (answered 503)."),
		Rejected:       counterVec(reg, "logs_rejected_total", "Invalid log events, by reason.", "reason"),
		ReceivedBytes:  counter(reg, "logs_received_bytes_total", "Request body bytes received by the producer."),
		AcceptDuration: histogram(reg, "logs_accept_duration_seconds", "Time from request to Kafka acknowledgement.", LatencyBuckets()),
		ProtocolEvents: counterVec(reg, "logs_protocol_events_total",
			"Log events of the ingest protocols (otlp, loki, elastic, jsonl, syslog), by protocol and outcome (accepted, rejected, failed).",
			"protocol", "outcome"),
		TenantEvents: counterVec(reg, "logs_tenant_events_total",
			"Log events by tenant (the keys' tenants by name, others as _other) and outcome (accepted, rejected, failed).",
			"tenant", "outcome"),
	}
	// Every series exists from the start: a protocol nobody used yet
	// reads 0, not "no data", and rate() sees its first events.
	for _, protocol := range []string{"otlp", "loki", "elastic", "jsonl", "syslog"} {
		for _, outcome := range []string{"accepted", "rejected", "failed"} {
			p.ProtocolEvents.WithLabelValues(protocol, outcome)
		}
	}
	// The syslog listener's losses are exported by every producer, so
	// dashboards and alerts read 0 rather than nothing where it is off.
	NewSyslog(reg)
	return p
}

// Syslog holds the syslog listener's own metrics; what it accepts is in
// logs_protocol_events_total{protocol="syslog"}.
type Syslog struct {
	Dropped *prometheus.CounterVec // by transport and reason
}

// NewSyslog registers the syslog listener's metrics.
func NewSyslog(reg prometheus.Registerer) *Syslog {
	s := &Syslog{Dropped: counterVec(reg, "syslog_dropped_total",
		"Syslog messages or connections lost before Kafka, by transport (tcp, udp) and reason (queue_full, unavailable, framing, shutdown).",
		"transport", "reason")}
	for _, r := range [][2]string{{"udp", "queue_full"}, {"udp", "unavailable"}, {"tcp", "framing"}, {"tcp", "unavailable"}, {"tcp", "shutdown"}} {
		s.Dropped.WithLabelValues(r[0], r[1])
	}
	return s
}

// Bodies holds the metrics of the reader of ingest request bodies.
type Bodies struct {
	InFlight prometheus.Gauge       // bytes reserved by bodies being read or handled
	Refused  *prometheus.CounterVec // bodies refused before parsing, by reason
	Received prometheus.Counter     // body bytes received (decompressed)
}

// NewBodies registers the body reader's metrics.
func NewBodies(reg prometheus.Registerer) *Bodies {
	return &Bodies{
		InFlight: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "ingest_body_bytes_in_flight",
			Help: "Bytes reserved by ingest request bodies being read or handled (bounded by --max-body-bytes-in-flight)."})),
		Refused: counterVec(reg, "ingest_bodies_refused_total",
			"Ingest request bodies refused before parsing, by reason (content_type, encoding, too_large, in_flight, timeout, malformed, shutting_down).", "reason"),
		// The producer's own counter, shared (same definition).
		Received: counter(reg, "logs_received_bytes_total", "Request body bytes received by the producer."),
	}
}

// RegisterEmbeddedUnstored exports what the embedded broker holds that is
// not stored yet: the logs a SIGKILL of the process hosting it would lose.
func RegisterEmbeddedUnstored(reg prometheus.Registerer, unstored func() float64) {
	register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kafka_embedded_unstored_records",
		Help: "Records the embedded (in-memory) Kafka broker holds that are not stored in PostgreSQL yet: lost if the process is killed.",
	}, unstored))
}

// Consumer holds the consumer loop's metrics.
type Consumer struct {
	Processed        prometheus.Counter // events stored (new or already present)
	ProcessingFailed prometheus.Counter // events sent to the DLQ by the consumer
	BatchSize        prometheus.Histogram
	FlushDuration    prometheus.Histogram
	WriteRetries     prometheus.Counter
	CommitFailures   prometheus.Counter
	RecordsDeleted   prometheus.Counter
	Skipped          prometheus.Counter
	EndToEnd         prometheus.Histogram
	// Per partition: the last committed offset (-1 before the first
	// commit, as 0 is a valid offset) and the records behind the end.
	CommittedOffset *prometheus.GaugeVec
	Lag             *prometheus.GaugeVec
}

// NewConsumer registers the consumer's metrics.
func NewConsumer(reg prometheus.Registerer) *Consumer {
	return &Consumer{
		Processed:        counter(reg, "logs_processed_total", "Log events stored in PostgreSQL by the consumer."),
		ProcessingFailed: counter(reg, "logs_processing_failed_total", "Log events the consumer could not store (sent to the DLQ)."),
		BatchSize: histogram(reg, "consumer_batch_size", "Records in one consumer batch.",
			[]float64{1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 25000}),
		FlushDuration:  histogram(reg, "consumer_flush_duration_seconds", "Time to store and commit one batch.", LatencyBuckets()),
		WriteRetries:   counter(reg, "consumer_write_retries_total", "Retried batch writes after a PostgreSQL error."),
		CommitFailures: counter(reg, "consumer_commit_failures_total", "Failed Kafka offset commits (the batch is redelivered)."),
		RecordsDeleted: counter(reg, "consumer_records_deleted_total", "Stored records deleted from the embedded broker, which keeps records in memory."),
		Skipped:        counter(reg, "consumer_skipped_total", "Events the store held already and skipped: redeliveries, and ids a client sent again."),
		EndToEnd:       histogram(reg, "logs_end_to_end_seconds", "Time from acceptance by the producer to commit in PostgreSQL.", LatencyBuckets()),
		CommittedOffset: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "consumer_committed_offset", Help: "Offset of the last record this consumer committed, by partition (-1 from assignment until the first commit).",
		}, []string{"topic", "partition"})),
		Lag: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "consumer_lag_records", Help: "Records between this consumer's last commit and the end of the partition.",
		}, []string{"topic", "partition"})),
	}
}

// DLQ counts records written to the dead-letter topic.
type DLQ struct {
	Records *prometheus.CounterVec
}

// NewDLQ registers the DLQ metric.
func NewDLQ(reg prometheus.Registerer) *DLQ {
	return &DLQ{Records: counterVec(reg, "dlq_records_total", "Records written to the dead-letter topic, by reason.", "reason")}
}

// Query holds the gateway's query metrics, with the tutorial's names.
type Query struct {
	Queries  *prometheus.CounterVec // by endpoint
	Duration *prometheus.HistogramVec
	// TenantQueries counts the queries by tenant (a bounded label, see
	// TenantLabel) and endpoint.
	TenantQueries *prometheus.CounterVec
}

// NewQuery registers the query metrics.
func NewQuery(reg prometheus.Registerer) *Query {
	return &Query{
		Queries: counterVec(reg, "log_queries_total", "Log queries served, by endpoint.", "endpoint"),
		Duration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "log_query_duration_seconds", Help: "Time to answer a log query, by endpoint.", Buckets: LatencyBuckets(),
		}, []string{"endpoint"})),
		TenantQueries: counterVec(reg, "log_tenant_queries_total",
			"Log queries by tenant (the keys' tenants by name, others as _other, several as _many) and endpoint.", "tenant", "endpoint"),
	}
}

// Tail holds the live tail's metrics.
type Tail struct {
	Subscribers prometheus.Gauge
	Events      prometheus.Counter     // events read from Kafka by the tail reader
	Sent        *prometheus.CounterVec // events handed to subscribers, by protocol
	Dropped     *prometheus.CounterVec // subscribers dropped, by reason
}

// NewTail registers the live tail's metrics.
func NewTail(reg prometheus.Registerer) *Tail {
	return &Tail{
		Subscribers: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tail_subscribers", Help: "Live tail clients connected to this gateway.",
		})),
		Events:  counter(reg, "tail_events_total", "Events the gateway's tail reader read from Kafka."),
		Sent:    counterVec(reg, "tail_events_sent_total", "Events queued for live tail clients, by protocol.", "protocol"),
		Dropped: counterVec(reg, "tail_dropped_total", "Live tail clients disconnected by the gateway, by reason.", "reason"),
	}
}

// Cache holds the cache metrics, with the tutorial's names.
type Cache struct {
	Hits     *prometheus.CounterVec // by tier: local, hot, closed, stale
	Misses   *prometheus.CounterVec
	Errors   prometheus.Counter
	Duration *prometheus.HistogramVec // by operation
	// The local (in-process) tier's size, summed over connections.
	LocalBytes   prometheus.Gauge
	LocalEntries prometheus.Gauge
	// The Redis byte budget: bytes it counts (as of this process's last
	// write), entries evicted to make room, and answers not stored.
	Bytes     prometheus.Gauge
	Evictions prometheus.Counter
	Refusals  *prometheus.CounterVec // by reason: too_large, budget
}

// NewCache registers the cache metrics.
func NewCache(reg prometheus.Registerer) *Cache {
	return &Cache{
		Hits:         counterVec(reg, "cache_hits_total", "Query cache hits, by tier.", "tier"),
		Misses:       counterVec(reg, "cache_misses_total", "Query cache misses, by tier.", "tier"),
		Errors:       counter(reg, "cache_errors_total", "Cache operations that failed (Redis down or slow)."),
		LocalBytes:   register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "cache_local_bytes", Help: "Approximate bytes held by the in-process cache tier."})),
		LocalEntries: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "cache_local_entries", Help: "Entries held by the in-process cache tier."})),
		Bytes: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "cache_redis_bytes",
			Help: "Bytes of cached answers in Redis the cache's byte budget counts, as of this process's last write."})),
		Evictions: counter(reg, "cache_evictions_total", "Cached answers evicted from Redis, oldest first, to keep within the byte budget."),
		Refusals:  counterVec(reg, "cache_refusals_total", "Answers not cached, by reason: too_large (over --cache-max-entry-bytes) or budget (no room could be made).", "reason"),
		Duration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cache_operation_duration_seconds", Help: "Time of one cache operation, local tier included, by operation.",
			Buckets: []float64{.00001, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		}, []string{"op"})),
	}
}

// Breaker exposes circuit breaker states.
type Breaker struct {
	State       *prometheus.GaugeVec // 0 closed, 1 half-open, 2 open
	Transitions *prometheus.CounterVec
}

// NewBreaker registers the breaker metrics.
func NewBreaker(reg prometheus.Registerer) *Breaker {
	return &Breaker{
		State: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "breaker_state", Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
		}, []string{"name"})),
		Transitions: counterVec(reg, "breaker_transitions_total", "Circuit breaker state changes, by new state.", "name", "state"),
	}
}

// HTTP holds per-route request metrics of every listener.
type HTTP struct {
	Requests *prometheus.CounterVec
	Duration *prometheus.HistogramVec
}

// NewHTTP registers the HTTP metrics.
func NewHTTP(reg prometheus.Registerer) *HTTP {
	return &HTTP{
		Requests: counterVec(reg, "http_requests_total", "HTTP requests, by role, route and status code.", "role", "route", "code"),
		Duration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "HTTP request duration, by role and route.", Buckets: LatencyBuckets(),
		}, []string{"role", "route"})),
	}
}

// KafkaHooks reports a Kafka client's own metrics (franz-go's kprom:
// connections, bytes, records, request latency, buffered records) on reg,
// labelled with the client id, so producer and consumer can share reg.
func KafkaHooks(reg prometheus.Registerer) kgo.Hook {
	if reg != nil {
		reg = &kafkaRegisterer{Registerer: reg, renamed: map[prometheus.Collector]prometheus.Collector{}}
	}
	return kprom.NewMetrics("kafka",
		kprom.Registerer(reg),
		kprom.WithClientLabel(),
		kprom.Histograms(kprom.RequestDurationE2E),
		kprom.Buckets(LatencyBuckets()),
		kprom.FetchAndProduceDetail(kprom.ByTopic, kprom.Records, kprom.Batches, kprom.UncompressedBytes, kprom.ConsistentNaming),
	)
}

// kafkaGaugeName renames kprom's buffered-record gauges: kprom ends their
// names in _total, which the naming convention (and promtool) keeps for
// counters, and has no option to change them. The names follow its
// buffered-bytes gauges (kafka_buffered_produce_bytes).
func kafkaGaugeName(name string) (newName, help string, ok bool) {
	switch name {
	case "kafka_buffered_produce_records_total":
		return "kafka_buffered_produce_records", "Records buffered within the Kafka client, not yet acknowledged by the brokers.", true
	case "kafka_buffered_fetch_records_total":
		return "kafka_buffered_fetch_records", "Records fetched by the Kafka client, not yet polled by the application.", true
	}
	return "", "", false
}

// kafkaRegisterer registers kprom's collectors on the registerer it wraps,
// the buffered-record gauges under their new names. kprom registers a
// client's collectors when the client starts and unregisters the same
// values when it closes, so the replacements are remembered until then.
type kafkaRegisterer struct {
	prometheus.Registerer
	mu      sync.Mutex
	renamed map[prometheus.Collector]prometheus.Collector // kprom's → registered
}

func (r *kafkaRegisterer) Register(c prometheus.Collector) error {
	g, ok := c.(prometheus.GaugeFunc)
	if !ok {
		return r.Registerer.Register(c)
	}
	name, help, ok := kafkaGaugeName(fqName(g.Desc()))
	if !ok {
		return r.Registerer.Register(c)
	}
	// A GaugeFunc's labels are all constant (kprom's client_id): read them
	// once to give the replacement the same.
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		return err
	}
	labels := prometheus.Labels{}
	for _, lp := range m.GetLabel() {
		labels[lp.GetName()] = lp.GetValue()
	}
	renamed := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, func() float64 {
		var m dto.Metric
		if g.Write(&m) != nil {
			return 0
		}
		return m.GetGauge().GetValue()
	})
	if err := r.Registerer.Register(renamed); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.renamed[c] = renamed
	return nil
}

func (r *kafkaRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *kafkaRegisterer) Unregister(c prometheus.Collector) bool {
	r.mu.Lock()
	if renamed, ok := r.renamed[c]; ok {
		delete(r.renamed, c)
		c = renamed
	}
	r.mu.Unlock()
	return r.Registerer.Unregister(c)
}

// fqName is a descriptor's metric name. Desc keeps it unexported; its
// String form is the only way to it.
func fqName(d *prometheus.Desc) string {
	s := d.String()
	const start = `fqName: "`
	i := strings.Index(s, start)
	if i < 0 {
		return ""
	}
	s = s[i+len(start):]
	name, _, _ := strings.Cut(s, `"`)
	return name
}

package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/metrics"
	"github.com/logengine/logengine/store/logs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ProducerConfig shapes the Kafka producer.
type ProducerConfig struct {
	// Timeout bounds the wait for Kafka's acknowledgement of one request.
	Timeout time.Duration
	// MaxBufferedRecords and MaxBufferedBytes bound what waits for Kafka;
	// past them a request is refused at once instead of queueing.
	MaxBufferedRecords int
	MaxBufferedBytes   int
	// Tracer records a span per produce and puts its context in the
	// records' headers; nil records nothing. Set by the caller, not a flag.
	Tracer trace.TracerProvider
}

// DefaultProducerConfig is the configuration with nothing set.
func DefaultProducerConfig() ProducerConfig {
	return ProducerConfig{Timeout: 10 * time.Second, MaxBufferedRecords: 100000, MaxBufferedBytes: 64 << 20}
}

// RegisterFlags binds the settings to flags whose defaults are c's values.
func (c *ProducerConfig) RegisterFlags(fs *pflag.FlagSet) {
	fs.DurationVar(&c.Timeout, "produce-timeout", c.Timeout, "how long a request waits for Kafka's acknowledgement before 503")
	fs.IntVar(&c.MaxBufferedRecords, "max-buffered-records", c.MaxBufferedRecords, "records waiting for Kafka's acknowledgement at most; requests past it get 503 at once")
	fs.IntVar(&c.MaxBufferedBytes, "max-buffered-bytes", c.MaxBufferedBytes, "bytes waiting for Kafka's acknowledgement at most; requests past it get 503 at once")
}

// Validate reports every setting that cannot work, naming its flag.
func (c *ProducerConfig) Validate() error {
	var p flagvalue.Problems
	p.AtLeast1(map[string]int64{"max-buffered-records": int64(c.MaxBufferedRecords), "max-buffered-bytes": int64(c.MaxBufferedBytes)})
	p.Positive(map[string]time.Duration{"produce-timeout": c.Timeout})
	return p.Err()
}

// ErrBufferFull means the producer already holds as much as it may.
var ErrBufferFull = errors.New("the producer's buffer for Kafka is full")

// Producer writes accepted events to the log topic and rejected ones to
// the DLQ topic, and returns only when Kafka acknowledged every record.
type Producer struct {
	cfg    ProducerConfig
	kafka  KafkaConfig
	cl     *kgo.Client
	dlq    *metrics.DLQ
	logger *slog.Logger
	tracer trace.Tracer
	// lastFailure is when Kafka last failed to take records (unix nanos, 0
	// once it took some again): it makes the role unready while it lasts.
	lastFailure atomic.Int64
}

// NewProducer builds an idempotent, acks=all producer.
func NewProducer(cfg ProducerConfig, kafka KafkaConfig, logger *slog.Logger, reg prometheus.Registerer) (*Producer, error) {
	opts, err := kafka.ClientOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()), // the default, stated: 202 means replicated
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		kgo.MaxBufferedBytes(cfg.MaxBufferedBytes),
		kgo.ProducerLinger(5*time.Millisecond),
		// Records that Kafka does not take give up after a while, so an
		// outage does not keep the buffer full of records nobody waits for.
		kgo.RecordDeliveryTimeout(2*cfg.Timeout),
		kgo.WithLogger(kgoLogger{logger}),
		kgo.ClientID("logengine-producer"),
		kgo.WithHooks(metrics.KafkaHooks(reg)),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	return &Producer{cfg: cfg, kafka: kafka, cl: cl, dlq: metrics.NewDLQ(reg), logger: logger, tracer: tracerOf(cfg.Tracer, "logengine/ingest")}, nil
}

// Publish produces the events (keyed by source, so one source keeps its
// order) and the dead letters, and waits for all acknowledgements. The
// events are one request's, so one tenant's. An error means some records
// may not be stored: the caller must not report success.
func (p *Producer) Publish(ctx context.Context, events []logs.Event, letters []DeadLetter, correlationID string) error {
	if len(events) == 0 && len(letters) == 0 {
		return nil
	}
	ctx, span := p.tracer.Start(ctx, "kafka.produce "+p.kafka.Topic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.Int("messaging.batch.message_count", len(events)), attribute.Int("dlq.letters", len(letters))))
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	records := make([]*kgo.Record, 0, len(events)+len(letters))
	if len(events) > 0 {
		var err error
		if records, err = p.eventRecords(ctx, records, events, correlationID); err != nil {
			return err
		}
	}
	now := time.Now()
	for _, l := range letters {
		records = append(records, l.record(p.kafka.DLQTopic, now))
	}
	if err := p.produce(ctx, records); err != nil {
		p.lastFailure.Store(time.Now().UnixNano())
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	p.lastFailure.Store(0)
	for _, l := range letters {
		p.dlq.Records.WithLabelValues(l.Reason).Inc()
	}
	return nil
}

// eventRecords appends the log-topic records of the events, keyed by
// source. A request's records share a few allocations, not a few each:
// one buffer holds every key and value, one slice every record, one every
// header. They stay untouched until Kafka acknowledged them.
func (p *Producer) eventRecords(ctx context.Context, records []*kgo.Record, events []logs.Event, correlationID string) ([]*kgo.Record, error) {
	// The headers are the same for every record of the request: the
	// tenant, the correlation id and the trace context, injected once.
	var proto kgo.Record
	proto.Headers = []kgo.RecordHeader{{Key: HeaderTenant, Value: []byte(logs.TenantOrDefault(events[0].Tenant))}}
	if correlationID != "" {
		proto.Headers = append(proto.Headers, kgo.RecordHeader{Key: HeaderCorrelationID, Value: []byte(correlationID)})
	}
	propagation.TraceContext{}.Inject(ctx, recordCarrier{&proto})
	nh := len(proto.Headers)
	headers := make([]kgo.RecordHeader, len(events)*nh)
	recs := make([]kgo.Record, len(events))
	size := 0
	for i := range events {
		e := &events[i]
		size += 2*len(e.Source) + len(e.Message) + len(e.Metadata) + len(e.TraceID) + 200
	}
	buf := make([]byte, 0, size)
	for i := range events {
		start := len(buf)
		buf = append(buf, events[i].Source...)
		mid := len(buf)
		var err error
		if buf, err = event.AppendEncode(buf, &events[i]); err != nil {
			return records, fmt.Errorf("encode event: %w", err)
		}
		// A full slice expression each, so nothing appended to one record
		// can reach the next.
		h := headers[i*nh : (i+1)*nh : (i+1)*nh]
		copy(h, proto.Headers)
		recs[i] = kgo.Record{Topic: p.kafka.Topic, Key: buf[start:mid:mid], Value: buf[mid:len(buf):len(buf)], Headers: h}
		records = append(records, &recs[i])
	}
	return records, nil
}

// produce buffers every record without waiting for room (a full buffer is
// refused at once: queueing requests would only grow memory and latency)
// and waits until Kafka acknowledged each one or ctx ended.
func (p *Producer) produce(ctx context.Context, records []*kgo.Record) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	wg.Add(len(records))
	for _, r := range records {
		p.cl.TryProduce(ctx, r, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if firstErr == nil {
				firstErr = err
			}
		})
	}
	acked := make(chan struct{})
	go func() { wg.Wait(); close(acked) }()
	select {
	case <-acked:
	case <-ctx.Done():
		// Records already sent cannot be recalled: Kafka may still store
		// them, which is why clients retry with their own ids.
		return fmt.Errorf("kafka did not acknowledge in time: %w", ctx.Err())
	}
	mu.Lock()
	defer mu.Unlock()
	switch {
	case firstErr == nil:
		return nil
	case errors.Is(firstErr, kgo.ErrMaxBuffered):
		return ErrBufferFull
	default:
		return fmt.Errorf("kafka did not acknowledge: %w", firstErr)
	}
}

// Healthy is false while Kafka is failing to take records: since the last
// failed publish, for at least a few seconds, until one succeeds.
func (p *Producer) Healthy(ctx context.Context) error {
	if t := p.lastFailure.Load(); t != 0 && time.Since(time.Unix(0, t)) < 5*time.Second {
		return errors.New("kafka did not acknowledge recent records")
	}
	return p.cl.Ping(ctx)
}

// Ping checks that a broker answers.
func (p *Producer) Ping(ctx context.Context) error { return p.cl.Ping(ctx) }

// Close flushes what is buffered (bounded by ctx) and closes the client.
// Config is the configuration the producer runs with.
func (p *Producer) Config() ProducerConfig { return p.cfg }

// Kafka is where the producer writes.
func (p *Producer) Kafka() KafkaConfig { return p.kafka }

// WriteDeadLetters produces letters to the DLQ topic and waits for Kafka.
func (p *Producer) WriteDeadLetters(ctx context.Context, letters []DeadLetter) error {
	return p.Publish(ctx, nil, letters, "")
}

func (p *Producer) Close(ctx context.Context) {
	if err := p.cl.Flush(ctx); err != nil {
		p.logger.Warn("kafka producer flush on close", "err", err)
	}
	p.cl.Close()
}

package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/metrics"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ProducerConfig shapes the Kafka producer.
type ProducerConfig struct {
	Kafka KafkaConfig
	// Timeout bounds the wait for Kafka's acknowledgement of one request.
	Timeout            time.Duration
	MaxBufferedRecords int
}

// Producer writes accepted events to the log topic and rejected ones to
// the DLQ topic, and returns only when Kafka acknowledged every record.
type Producer struct {
	cfg    ProducerConfig
	cl     *kgo.Client
	dlq    *metrics.DLQ
	logger *slog.Logger
}

// NewProducer builds an idempotent, acks=all producer.
func NewProducer(cfg ProducerConfig, logger *slog.Logger, reg metricsRegisterer) (*Producer, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Kafka.Brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()), // the default, stated: 202 means replicated
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.MaxBufferedRecords(cfg.MaxBufferedRecords),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.WithLogger(kgoLogger{logger}),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	return &Producer{cfg: cfg, cl: cl, dlq: metrics.NewDLQ(reg), logger: logger}, nil
}

// Publish produces the events (keyed by source, so one source keeps its
// order) and the dead letters, and waits for all acknowledgements. An error
// means some records may not be stored: the caller must not report success.
func (p *Producer) Publish(ctx context.Context, events []event.Event, letters []DeadLetter, correlationID string) error {
	if len(events) == 0 && len(letters) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	records := make([]*kgo.Record, 0, len(events)+len(letters))
	var headers []kgo.RecordHeader
	if correlationID != "" {
		headers = []kgo.RecordHeader{{Key: HeaderCorrelationID, Value: []byte(correlationID)}}
	}
	for i := range events {
		value, err := events[i].Marshal()
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		records = append(records, &kgo.Record{
			Topic: p.cfg.Kafka.Topic, Key: []byte(events[i].Source), Value: value, Headers: headers,
		})
	}
	now := time.Now()
	for _, l := range letters {
		records = append(records, l.record(p.cfg.Kafka.DLQTopic, now))
	}
	if err := p.cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
		return fmt.Errorf("kafka did not acknowledge: %w", err)
	}
	for _, l := range letters {
		p.dlq.Records.WithLabelValues(l.Reason).Inc()
	}
	return nil
}

// Ping checks that a broker answers.
func (p *Producer) Ping(ctx context.Context) error { return p.cl.Ping(ctx) }

// Close flushes what is buffered (bounded by ctx) and closes the client.
func (p *Producer) Close(ctx context.Context) {
	if err := p.cl.Flush(ctx); err != nil {
		p.logger.Warn("kafka producer flush on close", "err", err)
	}
	p.cl.Close()
}

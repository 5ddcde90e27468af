package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/metrics"
	"github.com/logengine/logengine/resilience"
	"github.com/logengine/logengine/store/logs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Store is where the consumer writes batches. WriteBatch must be idempotent
// on the event id and atomic: all of the batch or nothing.
type Store interface {
	WriteBatch(ctx context.Context, events []logs.Event) (inserted int64, err error)
}

// ConsumerConfig shapes the consumer loop.
type ConsumerConfig struct {
	Group         string
	BatchSize     int
	FlushInterval time.Duration
	// WriteTimeout bounds one attempt to write a batch, so a stalled
	// connection is retried instead of waited on forever.
	WriteTimeout time.Duration

	// The fields below are set by the caller, not by flags.

	// IsDataError tells a record PostgreSQL refuses (it goes to the DLQ)
	// from an outage (the batch is retried).
	IsDataError func(error) bool
	// Retry shapes the retries of a batch write while PostgreSQL fails.
	Retry resilience.RetryConfig
	// ShutdownTimeout bounds writing and committing the last batch.
	ShutdownTimeout time.Duration
	// Invalidate, when set, is told the timestamps of each stored batch
	// after its transaction committed, so cached answers covering them are
	// not served again. Its failure does not hold the pipeline.
	Invalidate func(ctx context.Context, times []time.Time) error
	// Tracer records a consume span per record, child of the producer's
	// span found in the record headers, and a write span per batch.
	Tracer trace.TracerProvider
}

// DefaultConsumerConfig is the configuration with nothing set.
func DefaultConsumerConfig() ConsumerConfig {
	return ConsumerConfig{
		Group:           "log-consumer-group",
		BatchSize:       5000,
		FlushInterval:   200 * time.Millisecond,
		WriteTimeout:    30 * time.Second,
		Retry:           resilience.RetryConfig{Initial: 100 * time.Millisecond, Max: 5 * time.Second},
		ShutdownTimeout: 20 * time.Second,
	}
}

// RegisterFlags binds the settings to flags whose defaults are c's values.
func (c *ConsumerConfig) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Group, "consumer-group", c.Group, "Kafka consumer group of the consumer role")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "most events the consumer writes in one transaction")
	fs.DurationVar(&c.FlushInterval, "flush-interval", c.FlushInterval, "longest wait to fill a batch once its first event arrived")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "deadline of one attempt to write a batch to PostgreSQL (then it is retried)")
}

// Validate reports every setting that cannot work, naming its flag.
func (c *ConsumerConfig) Validate() error {
	var p flagvalue.Problems
	if c.Group == "" {
		p.Add("consumer-group", "must not be empty")
	}
	p.AtLeast1(map[string]int64{"batch-size": int64(c.BatchSize)})
	p.Positive(map[string]time.Duration{"flush-interval": c.FlushInterval, "write-timeout": c.WriteTimeout})
	return p.Err()
}

// DeadLetterWriter takes the records the store refuses; the Kafka
// producer is one.
type DeadLetterWriter interface {
	WriteDeadLetters(ctx context.Context, letters []DeadLetter) error
}

// errRebalance stops the retries of a batch when the group wants to
// rebalance: the batch is left unstored and uncommitted, and read again.
var errRebalance = errors.New("batch abandoned for a rebalance")

// Consumer reads the log topic as a group member and stores batches. Offsets
// are committed only after the batch's transaction committed, so a crash
// redelivers, and the idempotent store turns redelivery into no change.
type Consumer struct {
	cfg     ConsumerConfig
	cl      *kgo.Client
	kafka   KafkaConfig
	dlqPub  DeadLetterWriter
	store   Store
	logger  *slog.Logger
	metrics *metrics.Consumer
	dlq     *metrics.DLQ
	healthy atomic.Bool // false while the last write attempt failed
	// rebalancing is set when the group waits for this member to let a
	// rebalance through; retries stop so the wait stays short.
	rebalancing atomic.Bool
	// For the lag metric, per partition: the end of the partition at the
	// last fetch, and the next offset to commit. Group callbacks touch
	// them too, hence the mutex.
	lagMu          sync.Mutex
	highWatermarks map[int32]int64
	positions      map[int32]int64
	tracer         trace.Tracer
}

// NewConsumer joins the consumer group. dlq produces the dead letters.
func NewConsumer(cfg ConsumerConfig, kafka KafkaConfig, store Store, dlq DeadLetterWriter, logger *slog.Logger, reg prometheus.Registerer) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.IsDataError == nil {
		cfg.IsDataError = func(error) bool { return false }
	}
	c := &Consumer{cfg: cfg, kafka: kafka, store: store, dlqPub: dlq, logger: logger, metrics: metrics.NewConsumer(reg), dlq: metrics.NewDLQ(reg),
		highWatermarks: map[int32]int64{}, positions: map[int32]int64{}, tracer: tracerOf(cfg.Tracer, "logengine/ingest")}
	c.healthy.Store(true)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(kafka.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(kafka.Topic),
		kgo.DisableAutoCommit(),
		// Rebalances wait until the polled batch is stored and committed, so
		// no partition changes hands with work in flight.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) { c.rebalancing.Store(true) }),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, assigned map[string][]int32) { c.trackPartitions(assigned, true) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, revoked map[string][]int32) { c.trackPartitions(revoked, false) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) { c.trackPartitions(lost, false) }),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(cfg.FlushInterval),
		kgo.WithLogger(kgoLogger{logger}),
		kgo.ClientID("logengine-consumer"),
		kgo.WithHooks(metrics.KafkaHooks(reg)),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka consumer: %w", err)
	}
	c.cl = cl
	return c, nil
}

// Healthy is false while writes to the store are failing.
func (c *Consumer) Healthy() bool { return c.healthy.Load() }

// Config is the configuration the consumer runs with.
func (c *Consumer) Config() ConsumerConfig { return c.cfg }

// Ping checks that a broker answers.
func (c *Consumer) Ping(ctx context.Context) error { return c.cl.Ping(ctx) }

// Run consumes until ctx ends, then stores and commits the batch in hand
// and leaves the group.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.cl.CloseAllowingRebalance()
	for {
		records, err := c.poll(ctx)
		if len(records) > 0 {
			// The last batch is finished even when ctx ended while polling:
			// a fresh context bounds it by the shutdown grace period.
			wctx, cancel := ctx, context.CancelFunc(func() {})
			if ctx.Err() != nil {
				wctx, cancel = context.WithTimeout(context.Background(), c.cfg.ShutdownTimeout)
			}
			perr := c.process(wctx, records)
			cancel()
			if errors.Is(perr, errRebalance) {
				// Read the batch again from its first record; if the
				// partitions move, their new owner starts from the commit.
				c.rewind(records)
				c.logger.Warn("batch left unstored for a rebalance; it will be read again", "records", len(records))
				perr = nil
			}
			if perr != nil {
				if ctx.Err() != nil {
					// Shutting down with the batch unstored: it stays
					// uncommitted and is redelivered to the next member.
					c.logger.Warn("batch left uncommitted at shutdown", "records", len(records), "err", perr)
					return nil
				}
				return perr
			}
		}
		c.rebalancing.Store(false)
		c.cl.AllowRebalance()
		if err != nil || ctx.Err() != nil {
			return err
		}
	}
}

// poll collects up to BatchSize records: it waits for the first, then at
// most FlushInterval for the rest.
func (c *Consumer) poll(ctx context.Context) ([]*kgo.Record, error) {
	var records []*kgo.Record
	pctx := ctx
	for len(records) < c.cfg.BatchSize {
		fetches := c.cl.PollRecords(pctx, c.cfg.BatchSize-len(records))
		if fetches.IsClientClosed() {
			return records, errors.New("kafka client closed")
		}
		for _, fe := range fetches.Errors() {
			if !errors.Is(fe.Err, context.Canceled) && !errors.Is(fe.Err, context.DeadlineExceeded) {
				c.logger.Warn("kafka fetch error", "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
			}
		}
		records = append(records, fetches.Records()...)
		c.observeFetches(fetches)
		if pctx.Err() != nil {
			return records, nil // shutting down, or the flush interval is over
		}
		if len(records) > 0 && pctx == ctx {
			var cancel context.CancelFunc
			pctx, cancel = context.WithTimeout(ctx, c.cfg.FlushInterval)
			defer cancel()
		}
	}
	return records, nil
}

// rewind moves fetching back to the first record of each partition of an
// abandoned batch. It runs before AllowRebalance, while no revoke can run.
func (c *Consumer) rewind(records []*kgo.Record) {
	first := map[string]map[int32]kgo.EpochOffset{}
	for _, r := range records {
		parts := first[r.Topic]
		if parts == nil {
			parts = map[int32]kgo.EpochOffset{}
			first[r.Topic] = parts
		}
		if eo, ok := parts[r.Partition]; !ok || r.Offset < eo.Offset {
			parts[r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset}
		}
	}
	c.cl.SetOffsets(first)
}

// process decodes, stores and commits one batch. Records that are not
// events, or that PostgreSQL refuses, go to the DLQ before the commit, so
// no record is skipped silently and none blocks its partition.
func (c *Consumer) process(ctx context.Context, records []*kgo.Record) error {
	start := time.Now()
	events := make([]logs.Event, 0, len(records))
	origin := make([]*kgo.Record, 0, len(records))
	var letters []DeadLetter
	for _, r := range records {
		ev, err := event.Decode(r.Value)
		if err != nil {
			letters = append(letters, letterFrom(r, ReasonDecode, err))
			continue
		}
		events = append(events, ev)
		origin = append(origin, r)
	}
	wctx, endSpans := c.traceBatch(ctx, origin)
	refused, err := c.storeIsolating(wctx, events)
	endSpans(err)
	if err != nil {
		return err
	}
	if c.cfg.Invalidate != nil && len(events) > len(refused) {
		times := make([]time.Time, len(events))
		for i := range events {
			times[i] = events[i].Timestamp
		}
		if err := c.cfg.Invalidate(ctx, times); err != nil {
			c.logger.Debug("cache invalidation failed; it is caught up later", "err", err)
		}
	}
	for _, i := range refused {
		letters = append(letters, letterFrom(origin[i.index], ReasonStore, i.err))
	}
	if len(letters) > 0 {
		err := resilience.Retry(ctx, c.cfg.Retry, func(error) bool { return !c.rebalancing.Load() }, func(attempt int, err error) {
			c.logger.Warn("retrying DLQ write", "attempt", attempt, "err", err)
		}, func(ctx context.Context) error {
			return c.dlqPub.WriteDeadLetters(ctx, letters)
		})
		if err != nil && c.rebalancing.Load() && ctx.Err() == nil {
			return errRebalance
		}
		if err != nil {
			return fmt.Errorf("write %d records to the DLQ: %w", len(letters), err)
		}
		c.metrics.ProcessingFailed.Add(float64(len(letters)))
	}
	if err := c.cl.CommitRecords(ctx, records...); err != nil {
		// The batch is stored; redelivery will insert nothing twice.
		c.metrics.CommitFailures.Inc()
		c.logger.Warn("offset commit failed; the batch will be redelivered", "err", err)
	} else {
		c.reportCommitted(records)
	}
	now := time.Now()
	stored := len(events) - len(refused)
	c.metrics.Processed.Add(float64(stored))
	c.metrics.BatchSize.Observe(float64(len(records)))
	c.metrics.FlushDuration.Observe(now.Sub(start).Seconds())
	for i := range events {
		if !events[i].ReceivedAt.IsZero() {
			c.metrics.EndToEnd.Observe(now.Sub(events[i].ReceivedAt).Seconds())
		}
	}
	c.logger.Info("batch stored", "records", len(records), "stored", stored, "dlq", len(letters),
		"correlation_ids", correlationIDs(records, 10), "duration_ms", float64(now.Sub(start).Microseconds())/1000)
	return nil
}

type refusal struct {
	index int
	err   error
}

// storeIsolating writes the events, retrying while the store is down. When
// PostgreSQL refuses the data itself, it splits the batch in halves until
// the refused events are alone, stores the rest, and returns the refused.
func (c *Consumer) storeIsolating(ctx context.Context, events []logs.Event) ([]refusal, error) {
	if len(events) == 0 {
		return nil, nil
	}
	var refused []refusal
	var write func(lo, hi int) error
	write = func(lo, hi int) error {
		retryable := func(err error) bool { return !c.cfg.IsDataError(err) && !c.rebalancing.Load() }
		err := resilience.Retry(ctx, c.cfg.Retry, retryable,
			func(attempt int, err error) {
				c.healthy.Store(false)
				c.metrics.WriteRetries.Inc()
				c.logger.Warn("store write failed; retrying", "attempt", attempt, "events", hi-lo, "err", err)
			},
			func(ctx context.Context) error {
				ctx, cancel := context.WithTimeout(ctx, c.cfg.WriteTimeout)
				defer cancel()
				_, err := c.store.WriteBatch(ctx, events[lo:hi])
				return err
			})
		switch {
		case err == nil:
			c.healthy.Store(true)
			return nil
		case !c.cfg.IsDataError(err) && c.rebalancing.Load() && ctx.Err() == nil:
			return errRebalance
		case !c.cfg.IsDataError(err):
			return err
		case hi-lo == 1:
			refused = append(refused, refusal{index: lo, err: err})
			return nil
		}
		mid := lo + (hi-lo)/2
		if err := write(lo, mid); err != nil {
			return err
		}
		return write(mid, hi)
	}
	if err := write(0, len(events)); err != nil {
		return nil, err
	}
	return refused, nil
}

// trackPartitions starts or stops the per-partition series: an assigned
// partition reports -1 until its first commit, a partition that moved to
// another member stops reporting.
func (c *Consumer) trackPartitions(parts map[string][]int32, assigned bool) {
	c.lagMu.Lock()
	defer c.lagMu.Unlock()
	for topic, ps := range parts {
		for _, p := range ps {
			label := strconv.Itoa(int(p))
			if assigned {
				c.metrics.CommittedOffset.WithLabelValues(topic, label).Set(-1)
				continue
			}
			c.metrics.CommittedOffset.DeleteLabelValues(topic, label)
			c.metrics.Lag.DeleteLabelValues(topic, label)
			delete(c.highWatermarks, p)
			delete(c.positions, p)
		}
	}
}

// observeFetches updates the lag after every poll, so it keeps growing
// while the consumer cannot store (the moment it matters).
func (c *Consumer) observeFetches(fetches kgo.Fetches) {
	c.lagMu.Lock()
	defer c.lagMu.Unlock()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		c.highWatermarks[p.Partition] = p.HighWatermark
		if _, ok := c.positions[p.Partition]; !ok && len(p.Records) > 0 {
			c.positions[p.Partition] = p.Records[0].Offset
		}
		if pos, ok := c.positions[p.Partition]; ok {
			c.metrics.Lag.WithLabelValues(p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(max(p.HighWatermark-pos, 0)))
		}
	})
}

// reportCommitted updates the committed offset and lag of each partition of
// a committed batch.
func (c *Consumer) reportCommitted(records []*kgo.Record) {
	next := map[int32]int64{}
	for _, r := range records {
		next[r.Partition] = max(next[r.Partition], r.Offset+1)
	}
	c.lagMu.Lock()
	defer c.lagMu.Unlock()
	for p, off := range next {
		label := strconv.Itoa(int(p))
		c.positions[p] = off
		c.metrics.CommittedOffset.WithLabelValues(c.kafka.Topic, label).Set(float64(off - 1))
		if hwm, ok := c.highWatermarks[p]; ok {
			c.metrics.Lag.WithLabelValues(c.kafka.Topic, label).Set(float64(max(hwm-off, 0)))
		}
	}
}

// correlationIDs lists the distinct correlation ids of records, at most max,
// so a request can be followed into the consumer's logs.
func correlationIDs(records []*kgo.Record, max int) []string {
	var ids []string
	for _, r := range records {
		if id := header(r, HeaderCorrelationID); id != "" && !slices.Contains(ids, id) {
			if ids = append(ids, id); len(ids) == max {
				break
			}
		}
	}
	return ids
}

// maxSpanLinks bounds the links of one batch span to the records' traces.
const maxSpanLinks = 128

// traceBatch starts a consume span per record, child of the producer span
// in its headers, and a write span for the batch: child of the first
// record's consume span (so a lone log's trace runs from its HTTP request
// to the database write) and linked to the others.
func (c *Consumer) traceBatch(ctx context.Context, records []*kgo.Record) (context.Context, func(error)) {
	consumes := make([]trace.Span, 0, len(records))
	var links []trace.Link
	parent := ctx
	for i, r := range records {
		rctx := propagation.TraceContext{}.Extract(ctx, recordCarrier{r})
		if !trace.SpanContextFromContext(rctx).IsValid() {
			continue
		}
		rctx, span := c.tracer.Start(rctx, "kafka.consume "+r.Topic, trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.Int("messaging.kafka.partition", int(r.Partition)), attribute.Int64("messaging.kafka.offset", r.Offset)))
		consumes = append(consumes, span)
		if i == 0 {
			parent = rctx
		} else if len(links) < maxSpanLinks {
			links = append(links, trace.Link{SpanContext: span.SpanContext()})
		}
	}
	wctx, write := c.tracer.Start(parent, "db.write logs", trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("db.batch.size", len(records))))
	return wctx, func(err error) {
		if err != nil {
			write.SetStatus(codes.Error, err.Error())
		}
		write.End()
		for _, s := range consumes {
			s.End()
		}
	}
}

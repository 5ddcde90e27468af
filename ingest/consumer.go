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
	"github.com/logengine/logengine/store"
	"github.com/logengine/logengine/store/logs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Store is where the consumer writes batches. WriteBatch must be idempotent
// on the event id and atomic: all of the batch or nothing.
type Store interface {
	// Write stores a batch with the offsets it advances, exactly once.
	Write(ctx context.Context, b store.Batch) (stored int64, err error)
	// Check tells whether Write would take a batch, storing nothing.
	Check(ctx context.Context, b store.Batch) error
	// Offsets are the next offsets of the partitions the store holds.
	Offsets(ctx context.Context, topic string) (map[int32]int64, error)
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
	// DeleteStored deletes the records of the log topic once they are
	// stored and committed (Kafka's DeleteRecords), so that a broker that
	// keeps everything in memory (the embedded one) holds only what is not
	// stored yet. A real cluster keeps its own retention instead.
	DeleteStored bool
}

// DefaultConsumerConfig is the configuration with nothing set.
func DefaultConsumerConfig() ConsumerConfig {
	return ConsumerConfig{
		Group:           "log-consumer-group",
		BatchSize:       20000,
		FlushInterval:   200 * time.Millisecond,
		WriteTimeout:    30 * time.Second,
		Retry:           resilience.RetryConfig{Initial: 100 * time.Millisecond, Max: 5 * time.Second},
		ShutdownTimeout: 30 * time.Second,
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
	// assigned is set when partitions were assigned: before the next
	// batch, fetching moves to the offsets the store holds for them.
	assigned atomic.Bool
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
	opts, err := kafka.ClientOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(kafka.Topic),
		kgo.DisableAutoCommit(),
		// Rebalances wait until the polled batch is stored and committed, so
		// no partition changes hands with work in flight.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) { c.rebalancing.Store(true) }),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
			c.trackPartitions(assigned, true)
			c.assigned.Store(true)
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, revoked map[string][]int32) { c.trackPartitions(revoked, false) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) { c.trackPartitions(lost, false) }),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(cfg.FlushInterval),
		kgo.WithLogger(kgoLogger{logger}),
		kgo.ClientID("logengine-consumer"),
		kgo.WithHooks(metrics.KafkaHooks(reg)),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka consumer: %w", err)
	}
	c.cl = cl
	return c, nil
}

// Healthy is false while writes to the store are failing.
func (c *Consumer) Healthy() bool { return c.healthy.Load() }

// Unstored is how many records of the partitions this consumer holds are
// in the log but not stored yet, as of its last fetch.
func (c *Consumer) Unstored() int64 {
	c.lagMu.Lock()
	defer c.lagMu.Unlock()
	var n int64
	for p, hwm := range c.highWatermarks {
		if pos, ok := c.positions[p]; ok {
			n += max(hwm-pos, 0)
		}
	}
	return n
}

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
		if c.assigned.Swap(false) {
			records = c.seekStored(ctx, records)
		}
		if len(records) > 0 {
			// A batch in hand is finished when ctx ends, before or while it
			// is written: its context ends only the shutdown grace period
			// after ctx.
			wctx, cancel := withGrace(ctx, c.cfg.ShutdownTimeout)
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

// withGrace is a context that ends grace after ctx ends (or when cancel is
// called), not with it.
func withGrace(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-wctx.Done():
		}
	})
	return wctx, func() { stop(); cancel() }
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

// seekStored moves fetching to the offsets stored with the logs, for the
// partitions this member was given (the store, not the group, knows what
// is stored), and drops the polled records below them. It runs before
// AllowRebalance, while no revoke can run. Should the store not answer,
// the group's offsets stand: the store skips what it holds anyway.
func (c *Consumer) seekStored(ctx context.Context, polled []*kgo.Record) []*kgo.Record {
	stored, err := c.store.Offsets(ctx, c.kafka.Topic)
	if err != nil {
		c.logger.Warn("reading the stored offsets failed; resuming from the group's", "err", err)
		return polled
	}
	seek := map[int32]kgo.EpochOffset{}
	for p, off := range stored {
		seek[p] = kgo.EpochOffset{Epoch: -1, Offset: off}
	}
	// SetOffsets skips the partitions this member does not consume.
	c.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{c.kafka.Topic: seek})
	kept := polled[:0]
	for _, r := range polled {
		if r.Topic != c.kafka.Topic || r.Offset >= stored[r.Partition] {
			kept = append(kept, r)
		}
	}
	if skipped := len(polled) - len(kept); skipped > 0 {
		c.logger.Info("skipped records the store holds already", "records", skipped)
	}
	return kept
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
	batch := store.Batch{Events: make([]logs.Event, 0, len(records)), Positions: make([]logs.Position, 0, len(records))}
	origin := make([]*kgo.Record, 0, len(records))
	var letters []DeadLetter
	for _, r := range records {
		pos := logs.Position{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
		ev, err := event.Decode(r.Value)
		if err == nil {
			ev.Tenant, err = tenantOf(r)
		}
		if err != nil {
			letters = append(letters, letterFrom(r, ReasonDecode, err))
			batch.Consumed = append(batch.Consumed, pos)
			continue
		}
		batch.Events = append(batch.Events, ev)
		batch.Positions = append(batch.Positions, pos)
		origin = append(origin, r)
	}
	events := batch.Events
	wctx, endSpans := c.traceBatch(ctx, origin)
	stored, err := c.storeRetrying(wctx, batch)
	var refused []refusal
	if c.cfg.IsDataError(err) {
		// The store refuses some events: find them, send them to the DLQ
		// first (a redelivery would skip them once the offsets pass
		// them), then store the rest.
		if refused, err = c.isolate(wctx, batch, err); err == nil {
			for _, i := range refused {
				letters = append(letters, letterFrom(origin[i.index], ReasonStore, i.err))
			}
			if err = c.deadLetters(ctx, letters); err == nil {
				letters = nil
				stored, err = c.storeRetrying(wctx, withoutRefused(batch, refused))
			}
		}
	}
	endSpans(err)
	if err != nil {
		return err
	}
	// Records that are not events are refused again on redelivery, so
	// their letters may follow the batch.
	if err := c.deadLetters(ctx, letters); err != nil {
		return err
	}
	if c.cfg.Invalidate != nil && stored > 0 {
		times := make([]time.Time, len(events))
		for i := range events {
			times[i] = events[i].Timestamp
		}
		if err := c.cfg.Invalidate(ctx, times); err != nil {
			c.logger.Debug("cache invalidation failed; it is caught up later", "err", err)
		}
	}
	if err := c.cl.CommitRecords(ctx, records...); err != nil {
		// The batch and its offsets are stored; a redelivery stores
		// nothing twice.
		c.metrics.CommitFailures.Inc()
		c.logger.Warn("offset commit failed; the batch will be redelivered", "err", err)
	} else {
		c.reportCommitted(records)
		if c.cfg.DeleteStored {
			c.deleteStored(ctx, records)
		}
	}
	now := time.Now()
	c.metrics.Processed.Add(float64(stored))
	c.metrics.Skipped.Add(float64(int64(len(events)-len(refused)) - stored))
	c.metrics.BatchSize.Observe(float64(len(records)))
	c.metrics.FlushDuration.Observe(now.Sub(start).Seconds())
	for i := range events {
		if !events[i].ReceivedAt.IsZero() {
			c.metrics.EndToEnd.Observe(now.Sub(events[i].ReceivedAt).Seconds())
		}
	}
	c.logger.Info("batch stored", "records", len(records), "stored", stored, "dlq", len(letters)+len(refused),
		"correlation_ids", correlationIDs(records, 10), "duration_ms", float64(now.Sub(start).Microseconds())/1000)
	return nil
}

type refusal struct {
	index int
	err   error
}

// storeRetrying stores a batch, retrying while the store is down (not while it
// refuses the data, nor while the group waits to rebalance).
func (c *Consumer) storeRetrying(ctx context.Context, b store.Batch) (int64, error) {
	var stored int64
	err := c.retryStore(ctx, len(b.Events), func(ctx context.Context) error {
		var err error
		stored, err = c.store.Write(ctx, b)
		return err
	})
	return stored, err
}

// retryStore runs op with the consumer's retries and write timeout.
func (c *Consumer) retryStore(ctx context.Context, events int, op func(ctx context.Context) error) error {
	retryable := func(err error) bool { return !c.cfg.IsDataError(err) && !c.rebalancing.Load() }
	err := resilience.Retry(ctx, c.cfg.Retry, retryable,
		func(attempt int, err error) {
			c.healthy.Store(false)
			c.metrics.WriteRetries.Inc()
			c.logger.Warn("store write failed; retrying", "attempt", attempt, "events", events, "err", err)
		},
		func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, c.cfg.WriteTimeout)
			defer cancel()
			return op(ctx)
		})
	switch {
	case err == nil:
		c.healthy.Store(true)
	case !c.cfg.IsDataError(err) && c.rebalancing.Load() && ctx.Err() == nil:
		return errRebalance
	}
	return err
}

// isolate finds the events of a refused batch that the store refuses,
// storing nothing: it checks halves until the refused events are alone.
// refusedErr is the store's answer to the whole batch.
func (c *Consumer) isolate(ctx context.Context, b store.Batch, refusedErr error) ([]refusal, error) {
	var refused []refusal
	var split func(lo, hi int) error
	split = func(lo, hi int) error {
		if hi-lo == 1 {
			err := c.retryStore(ctx, 1, func(ctx context.Context) error {
				return c.store.Check(ctx, store.Batch{Events: b.Events[lo:hi], Positions: b.Positions[lo:hi]})
			})
			if c.cfg.IsDataError(err) {
				refused = append(refused, refusal{index: lo, err: err})
				return nil
			}
			return err
		}
		mid := lo + (hi-lo)/2
		for _, half := range [][2]int{{lo, mid}, {mid, hi}} {
			err := c.retryStore(ctx, half[1]-half[0], func(ctx context.Context) error {
				return c.store.Check(ctx, store.Batch{Events: b.Events[half[0]:half[1]], Positions: b.Positions[half[0]:half[1]]})
			})
			switch {
			case c.cfg.IsDataError(err):
				if err := split(half[0], half[1]); err != nil {
					return err
				}
			case err != nil:
				return err
			}
		}
		return nil
	}
	if len(b.Events) == 0 {
		return nil, nil
	}
	if len(b.Events) == 1 {
		return []refusal{{index: 0, err: refusedErr}}, nil
	}
	return refused, split(0, len(b.Events))
}

// deadLetters writes letters to the DLQ, retrying until it works, the
// group wants to rebalance, or ctx ends.
func (c *Consumer) deadLetters(ctx context.Context, letters []DeadLetter) error {
	if len(letters) == 0 {
		return nil
	}
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
	return nil
}

// withoutRefused is the batch less the refused events, whose positions
// it keeps as consumed.
func withoutRefused(b store.Batch, refused []refusal) store.Batch {
	skip := make(map[int]bool, len(refused))
	for _, r := range refused {
		skip[r.index] = true
		b.Consumed = append(b.Consumed, b.Positions[r.index])
	}
	out := store.Batch{Consumed: b.Consumed}
	for i := range b.Events {
		if !skip[i] {
			out.Events = append(out.Events, b.Events[i])
			out.Positions = append(out.Positions, b.Positions[i])
		}
	}
	return out
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

// deleteStored deletes the log topic's records up to a stored, committed
// batch. A failure costs only memory until the next batch's deletion.
func (c *Consumer) deleteStored(ctx context.Context, records []*kgo.Record) {
	var upTo kadm.Offsets
	for _, r := range records {
		if r.Topic == c.kafka.Topic {
			upTo.Add(kadm.Offset{Topic: r.Topic, Partition: r.Partition, At: r.Offset + 1, LeaderEpoch: -1})
		}
	}
	resp, err := kadm.NewClient(c.cl).DeleteRecords(ctx, upTo)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		c.logger.Debug("deleting stored records from the broker failed", "err", err)
		return
	}
	c.metrics.RecordsDeleted.Add(float64(len(records)))
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

// traceBatch starts a consume span per producer span found in the
// records' headers (the records of one request share it), its child, and
// a write span for the batch: child of the first record's consume span (so
// a lone log's trace runs from its HTTP request to the database write) and
// linked to the others. A span per record cost a tenth of the consumer's
// CPU at 100,000 logs/s, with nothing more to show.
func (c *Consumer) traceBatch(ctx context.Context, records []*kgo.Record) (context.Context, func(error)) {
	var consumes []trace.Span
	var links []trace.Link
	parent := ctx
	var last string
	for i, r := range records {
		tp := header(r, "traceparent")
		if tp == "" || tp == last {
			continue
		}
		last = tp
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

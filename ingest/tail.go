package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/metrics"
	"github.com/logengine/logengine/store/logs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TailReader reads the log topic for a gateway's live tail. It is not a
// member of the consumer group: it reads every partition itself, from its
// end at the moment it starts, so it sees each event as soon as the
// producer's write was acknowledged, whatever the consumers are doing.
type TailReader struct {
	kafka  KafkaConfig
	logger *slog.Logger
	reg    prometheus.Registerer
	// adm lists end offsets for End, while Tail runs.
	adm atomic.Pointer[kadm.Client]
}

// NewTailReader reads kafka's log topic; nothing connects before Tail.
func NewTailReader(kafka KafkaConfig, logger *slog.Logger, reg prometheus.Registerer) *TailReader {
	return &TailReader{kafka: kafka, logger: logger, reg: reg}
}

// tailPollRecords bounds the events one poll hands to the fan-out.
const tailPollRecords = 1000

// Tail connects, finds the end of every partition, calls ready, then
// delivers the decoded events of each poll until ctx ends. Records that
// do not decode (they go to the DLQ through the consumer) are skipped.
func (r *TailReader) Tail(ctx context.Context, ready func(), deliver func([]logs.Event, []logs.Position)) error {
	opts, err := r.kafka.ClientOpts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.ClientID("logengine-tail"),
		// Records the embedded broker deleted once stored may be gone
		// before this reader got to them: go on from the oldest left.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(time.Second),
		kgo.WithLogger(kgoLogger{r.logger}),
		kgo.WithHooks(metrics.KafkaHooks(r.reg)),
	)...)
	if err != nil {
		return fmt.Errorf("kafka tail reader: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := r.endOffsets(ctx, adm)
	if err != nil {
		return err
	}
	r.adm.Store(adm)
	defer r.adm.Store(nil)
	offsets := make(map[int32]kgo.Offset, len(ends))
	for p, o := range ends {
		offsets[p] = kgo.NewOffset().At(o)
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{r.kafka.Topic: offsets})
	ready()
	r.logger.Info("live tail reading kafka", "topic", r.kafka.Topic, "partitions", len(ends))
	for {
		fetches := cl.PollRecords(ctx, tailPollRecords)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				r.logger.Warn("live tail fetch", "topic", topic, "partition", p, "err", err)
			}
		})
		events := make([]logs.Event, 0, fetches.NumRecords())
		positions := make([]logs.Position, 0, fetches.NumRecords())
		fetches.EachRecord(func(rec *kgo.Record) {
			e, err := event.Decode(rec.Value)
			if err == nil {
				e.Tenant, err = tenantOf(rec)
			}
			if err == nil {
				events = append(events, e)
				positions = append(positions, logs.Position{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset})
			}
		})
		if len(events) > 0 {
			deliver(events, positions)
		}
	}
}

// End is the next offset of every partition of the log topic now.
func (r *TailReader) End(ctx context.Context) (map[int32]int64, error) {
	adm := r.adm.Load()
	if adm == nil {
		return nil, errors.New("the tail reader is not connected")
	}
	return r.endOffsets(ctx, adm)
}

// endOffsets lists the end of every partition of the log topic.
func (r *TailReader) endOffsets(ctx context.Context, adm *kadm.Client) (map[int32]int64, error) {
	listed, err := adm.ListEndOffsets(ctx, r.kafka.Topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list the end offsets of %s: %w", r.kafka.Topic, err)
	}
	out := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	if len(out) == 0 {
		return nil, fmt.Errorf("topic %s has no partitions", r.kafka.Topic)
	}
	return out, nil
}

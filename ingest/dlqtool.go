package ingest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/store/logs"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// dlqReplayNamespace is the UUID namespace of the ids given at replay to
// producer-stage letters whose event had none: the id is derived from the
// letter's DLQ topic, partition and offset, so every replay of one letter
// yields the same id and the store keeps the event once. Changing it would
// give replayed events new ids, so a replay would store them twice.
func dlqReplayNamespace() uuid.UUID {
	return uuid.MustParse("39ac91af-8b97-4889-8316-b6c88b0763d3")
}

// MissingTopicError says that topics do not exist on the brokers asked: to
// a reader, not the same thing as an empty topic.
type MissingTopicError struct {
	Topics  []string
	Brokers []string
}

func (e *MissingTopicError) Error() string {
	what := "topic " + e.Topics[0] + " does not exist"
	if len(e.Topics) > 1 {
		what = "topics " + strings.Join(e.Topics, ", ") + " do not exist"
	}
	return what + " on " + strings.Join(e.Brokers, ",")
}

// requireTopics fails with a *MissingTopicError naming every one of topics
// the cluster does not have. Asking first, rather than reading, is what
// tells an empty topic from a missing one.
func requireTopics(ctx context.Context, adm *kadm.Client, brokers []string, topics ...string) error {
	tds, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("describe topics %s on %s: %w", strings.Join(topics, ", "), strings.Join(brokers, ","), err)
	}
	var missing []string
	for _, t := range topics {
		td, ok := tds[t]
		switch {
		case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
			missing = append(missing, t)
		case td.Err != nil:
			return fmt.Errorf("describe topic %s on %s: %w", t, strings.Join(brokers, ","), td.Err)
		}
	}
	if len(missing) > 0 {
		return &MissingTopicError{Topics: missing, Brokers: brokers}
	}
	return nil
}

// Stages of a dead letter (the dlq.stage header).
const (
	letterStageProducer = "producer"
	letterStageConsumer = "consumer"
)

const (
	previewRunes    = 120
	replayChunkSize = 1000
)

// DLQFilter selects dead letters.
type DLQFilter struct {
	// Reason keeps the letters of one reason (validation, decode, store);
	// empty keeps all.
	Reason string
	// Tenant keeps the letters of one tenant; empty keeps all.
	Tenant string
	// Since keeps the letters written at or after it (by the dlq.time
	// header, else the record timestamp); zero keeps all.
	Since time.Time
	// Limit keeps the first Limit letters after filtering; <= 0 keeps all.
	Limit int
	// RetryRefused makes a replay send the letters the store refused
	// (reason store) too, once the store was fixed to take them; they are
	// skipped otherwise. Replay only.
	RetryRefused bool
}

// DLQRecord is one dead letter, its headers decoded.
type DLQRecord struct {
	Partition     int32     `json:"partition"`
	Offset        int64     `json:"offset"`
	Tenant        string    `json:"tenant"`
	Time          time.Time `json:"time"` // dlq.time, else the record timestamp
	Reason        string    `json:"reason"`
	Error         string    `json:"error"`
	Stage         string    `json:"stage"`
	OrigTopic     string    `json:"origTopic,omitempty"`
	OrigPartition int32     `json:"origPartition"` // -1 when none
	OrigOffset    int64     `json:"origOffset"`    // -1 when none
	// Source is the "source" field of the value when it is a JSON object
	// that has one.
	Source        string `json:"source,omitempty"`
	CorrelationID string `json:"correlationId,omitempty"`
	// ReplayOf is the letter (dlq-topic/partition@offset) whose replay the
	// store refused again, making this letter.
	ReplayOf string `json:"replayOf,omitempty"`
	// Preview is the start of the value, printable on one line.
	Preview string `json:"preview"`
	Value   []byte `json:"-"`
}

// Origin is where the letter's record was in the log topic, as
// topic/partition@offset, or "-" when the letter comes from the producer.
func (r DLQRecord) Origin() string {
	if r.OrigTopic == "" {
		return "-"
	}
	return fmt.Sprintf("%s/%d@%d", r.OrigTopic, r.OrigPartition, r.OrigOffset)
}

// ReadDLQ reads the DLQ topic from its start up to its end as it was when
// ReadDLQ began, and returns the letters f selects ordered by time,
// partition and offset. It joins no consumer group and commits nothing.
func ReadDLQ(ctx context.Context, brokers []string, topic string, f DLQFilter, logger *slog.Logger, security ...kgo.Opt) ([]DLQRecord, error) {
	start, end, err := dlqBounds(ctx, brokers, topic, logger, security)
	if err != nil {
		return nil, err
	}
	from := make(map[int32]kgo.Offset)
	remaining := make(map[int32]int64) // partition → end offset still to reach
	for p, s := range start {
		if e := end[p]; s < e {
			from[p] = kgo.NewOffset().At(s)
			remaining[p] = e
		}
	}
	out := []DLQRecord{}
	if len(remaining) > 0 {
		cl, err := kgo.NewClient(append([]kgo.Opt{
			kgo.SeedBrokers(brokers...),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
			kgo.FetchMaxWait(time.Second),
			kgo.WithLogger(kgoLogger{logger}),
		}, security...)...)
		if err != nil {
			return nil, fmt.Errorf("kafka client: %w", err)
		}
		defer cl.Close()
		for len(remaining) > 0 {
			fetches := cl.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("read %s: %w", topic, err)
			}
			for _, fe := range fetches.Errors() {
				return nil, fmt.Errorf("read %s partition %d: %w", fe.Topic, fe.Partition, fe.Err)
			}
			fetches.EachRecord(func(r *kgo.Record) {
				e, ok := remaining[r.Partition]
				if !ok {
					return
				}
				if r.Offset < e {
					out = append(out, decodeLetter(r))
				}
				if r.Offset >= e-1 {
					delete(remaining, r.Partition)
				}
			})
		}
	}
	logger.Debug("read the DLQ", "topic", topic, "records", len(out))
	slices.SortFunc(out, func(a, b DLQRecord) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	return filterLetters(out, f), nil
}

// dlqBounds lists the start and end offsets of every partition of topic.
func dlqBounds(ctx context.Context, brokers []string, topic string, logger *slog.Logger, security []kgo.Opt) (start, end map[int32]int64, err error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.WithLogger(kgoLogger{logger})}, security...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if err := requireTopics(ctx, adm, brokers, topic); err != nil {
		return nil, nil, err
	}
	missing := &MissingTopicError{Topics: []string{topic}, Brokers: brokers}
	list := func(name string, fn func(context.Context, ...string) (kadm.ListedOffsets, error)) (map[int32]int64, error) {
		listed, err := fn(ctx, topic)
		if err != nil {
			return nil, fmt.Errorf("list %s offsets of %s on %s: %w", name, topic, strings.Join(brokers, ","), err)
		}
		offsets := make(map[int32]int64)
		for p, lo := range listed[topic] {
			switch {
			case errors.Is(lo.Err, kerr.UnknownTopicOrPartition) && p < 0:
				return nil, missing // deleted since requireTopics saw it
			case lo.Err != nil:
				return nil, fmt.Errorf("list %s offsets of %s partition %d: %w", name, topic, p, lo.Err)
			}
			offsets[p] = lo.Offset
		}
		if len(offsets) == 0 {
			return nil, missing
		}
		return offsets, nil
	}
	if start, err = list("start", adm.ListStartOffsets); err != nil {
		return nil, nil, err
	}
	if end, err = list("end", adm.ListEndOffsets); err != nil {
		return nil, nil, err
	}
	return start, end, nil
}

// decodeLetter reads a DLQ record's headers and value.
func decodeLetter(r *kgo.Record) DLQRecord {
	d := DLQRecord{
		Partition: r.Partition, Offset: r.Offset, Time: r.Timestamp.UTC(),
		Reason: header(r, HeaderReason), Error: header(r, HeaderError), Stage: header(r, HeaderStage),
		OrigTopic: header(r, HeaderOrigTopic), OrigPartition: -1, OrigOffset: -1,
		CorrelationID: header(r, HeaderCorrelationID), ReplayOf: header(r, HeaderReplayOf),
		Preview: letterPreview(r.Value), Value: r.Value, Tenant: recordTenant(r),
	}
	if t, err := time.Parse(time.RFC3339Nano, header(r, HeaderTime)); err == nil {
		d.Time = t.UTC()
	}
	if d.OrigTopic != "" {
		if p, err := strconv.ParseInt(header(r, HeaderOrigPartition), 10, 32); err == nil {
			d.OrigPartition = int32(p)
		}
		if o, err := strconv.ParseInt(header(r, HeaderOrigOffset), 10, 64); err == nil {
			d.OrigOffset = o
		}
	}
	var v struct {
		Source json.RawMessage `json:"source"`
	}
	if json.Unmarshal(r.Value, &v) == nil && len(v.Source) > 0 {
		var s string
		if json.Unmarshal(v.Source, &s) == nil {
			d.Source = s
		}
	}
	return d
}

// letterPreview is the first runes of a value on one line: control characters
// become spaces (line breaks, tabs) or U+FFFD, and "…" marks a cut.
func letterPreview(v []byte) string {
	var b strings.Builder
	n := 0
	for _, c := range string(v) {
		if n == previewRunes {
			b.WriteRune('…')
			break
		}
		switch {
		case c == '\n' || c == '\r' || c == '\t':
			c = ' '
		case unicode.IsControl(c):
			c = unicode.ReplacementChar
		}
		b.WriteRune(c)
		n++
	}
	return b.String()
}

func filterLetters(all []DLQRecord, f DLQFilter) []DLQRecord {
	out := all[:0]
	for _, d := range all {
		if f.Tenant != "" && d.Tenant != f.Tenant {
			continue
		}
		if f.Reason != "" && !strings.EqualFold(d.Reason, f.Reason) {
			continue
		}
		if !f.Since.IsZero() && d.Time.Before(f.Since) {
			continue
		}
		out = append(out, d)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out
}

// ReplayResult says what a replay did.
type ReplayResult struct {
	Replayed int          `json:"replayed"`
	Skipped  []ReplaySkip `json:"skipped"`
}

// ReplaySkip is a letter a replay left in the DLQ, and why.
type ReplaySkip struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Reason    string `json:"reason"`
}

// ReplayDLQ produces the letters f selects back to the log topic, so the
// consumer stores them. Replaying stores nothing twice: the store ignores an
// event whose (timestamp, id) it holds, and a replayed event has the same
// id and timestamp at every replay — a consumer-stage letter holds an event
// as the producer fixed it; a producer-stage letter (the client's raw event)
// gets, when it has none, an id derived from the letter's place in the DLQ
// and the letter's time as its timestamp. Letters that would come straight
// back to the DLQ are skipped with their reason: not an event, still
// invalid under lim, refused by the store (unless f.RetryRefused), or a
// letter made by an earlier replay whose original is still in the DLQ. A
// replayed record names its letter in HeaderReplayOf, which a refusal
// carries into its new letter, so a replay never multiplies letters. The
// letters stay in the DLQ.
//
// A produce error fails the call; the result then counts the records
// Kafka acknowledged before it.
func ReplayDLQ(ctx context.Context, brokers []string, dlqTopic, topic string, f DLQFilter, lim event.Limits, logger *slog.Logger, security ...kgo.Opt) (ReplayResult, error) {
	res := ReplayResult{Skipped: []ReplaySkip{}}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()), // with idempotence, the default
		kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.WithLogger(kgoLogger{logger}),
	}, security...)...)
	if err != nil {
		return res, fmt.Errorf("kafka producer: %w", err)
	}
	defer cl.Close()
	// Both topics before reading: a replay with nowhere to go should not
	// read the whole DLQ first.
	if err := requireTopics(ctx, kadm.NewClient(cl), brokers, dlqTopic, topic); err != nil {
		return res, err
	}
	all, err := ReadDLQ(ctx, brokers, dlqTopic, DLQFilter{}, logger, security...)
	if err != nil {
		return res, err
	}
	present := make(map[string]bool, len(all))
	for _, d := range all {
		present[letterName(dlqTopic, d)] = true
	}
	letters := filterLetters(all, f)

	ns := dlqReplayNamespace()
	records := make([]*kgo.Record, 0, len(letters))
	for _, d := range letters {
		if why := replaySkipReason(d, f, present); why != "" {
			res.Skipped = append(res.Skipped, ReplaySkip{Partition: d.Partition, Offset: d.Offset, Reason: why})
			continue
		}
		r, err := replayRecord(ns, dlqTopic, d, lim)
		if err != nil {
			res.Skipped = append(res.Skipped, ReplaySkip{Partition: d.Partition, Offset: d.Offset, Reason: err.Error()})
			continue
		}
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderReplayOf, Value: []byte(letterName(dlqTopic, d))})
		records = append(records, r)
	}
	for chunk := range slices.Chunk(records, replayChunkSize) {
		results := cl.ProduceSync(ctx, chunk...)
		for _, pr := range results {
			if pr.Err == nil {
				res.Replayed++
			}
		}
		if err := results.FirstErr(); err != nil {
			return res, fmt.Errorf("replay to %s: %d of %d records replayed before Kafka failed: %w",
				topic, res.Replayed, len(records), err)
		}
	}
	logger.Info("replayed the DLQ", "dlq_topic", dlqTopic, "topic", topic, "replayed", res.Replayed, "skipped", len(res.Skipped))
	return res, nil
}

// letterName names a letter as HeaderReplayOf does.
func letterName(dlqTopic string, d DLQRecord) string {
	return fmt.Sprintf("%s/%d@%d", dlqTopic, d.Partition, d.Offset)
}

// replaySkipReason says why a replay leaves a letter alone, or "": a
// letter whose reason is permanent would only come back as one more
// letter at every replay.
func replaySkipReason(d DLQRecord, f DLQFilter, present map[string]bool) string {
	switch {
	case d.ReplayOf != "" && present[d.ReplayOf]:
		// Its original is still here and is the one replayed: replaying
		// both would add a letter for each at every replay.
		return "an earlier replay of " + d.ReplayOf + " that the store refused again; that letter is the one replayed"
	case d.Reason == ReasonStore && !f.RetryRefused:
		return "refused by the store, which would refuse it again (permanent; --retry-refused replays it once the store takes it): " + d.Error
	}
	return ""
}

// replayRecord makes the log-topic record of a letter, or says why the
// letter cannot be replayed.
func replayRecord(ns uuid.UUID, dlqTopic string, d DLQRecord, lim event.Limits) (*kgo.Record, error) {
	var ev logs.Event
	switch d.Stage {
	case letterStageConsumer:
		e, err := event.Decode(d.Value)
		if err != nil {
			return nil, err
		}
		ev = e
	case letterStageProducer:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(d.Value, &obj); err != nil || obj == nil {
			return nil, errors.New("invalid event: body: an event must be a JSON object")
		}
		if id := bytes.TrimSpace(obj["id"]); len(id) == 0 || bytes.Equal(id, []byte("null")) {
			name := fmt.Sprintf("%s/%d/%d", dlqTopic, d.Partition, d.Offset)
			obj["id"], _ = json.Marshal(uuid.NewSHA1(ns, []byte(name)).String())
		}
		raw, err := json.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("re-encode event: %w", err)
		}
		e, err := event.Parse(raw, event.Defaults{Now: d.Time, TraceID: d.CorrelationID}, lim)
		if err != nil {
			return nil, err
		}
		ev = e
	default:
		return nil, fmt.Errorf("unknown stage %q", d.Stage)
	}
	// Every replay of a letter carries the same id, and the store keeps
	// one event per such id, as for an id a client chose.
	ev.ClientID = true
	value, err := event.Encode(&ev)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	if !logs.ValidTenant(d.Tenant) {
		return nil, fmt.Errorf("header %s %q: a tenant must be %s", HeaderTenant, d.Tenant, logs.TenantRule)
	}
	// The replayed log stays its tenant's.
	r := &kgo.Record{Key: []byte(ev.Source), Value: value, Headers: []kgo.RecordHeader{{Key: HeaderTenant, Value: []byte(d.Tenant)}}}
	if d.CorrelationID != "" {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderCorrelationID, Value: []byte(d.CorrelationID)})
	}
	return r, nil
}

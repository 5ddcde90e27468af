package ingest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/logengine/logengine/ingest"
	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/store/logs"
	"github.com/prometheus/client_golang/prometheus"
)

func dlqTestLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func dlqContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dlqBroker is a broker with the topics "logs" and "logs-dlq" and a
// producer that writes to them.
func dlqBroker(t *testing.T) (ingest.KafkaConfig, *ingest.Producer) {
	t.Helper()
	b, err := ingest.StartEmbeddedBroker("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	kc := ingest.KafkaConfig{Brokers: b.Addrs(), Topic: "logs", DLQTopic: "logs-dlq", Partitions: 3, ReplicationFactor: -1}
	if err := ingest.EnsureTopics(dlqContext(t), kc, dlqTestLogger()); err != nil {
		t.Fatal(err)
	}
	p, err := ingest.NewProducer(ingest.ProducerConfig{Timeout: 10 * time.Second, MaxBufferedRecords: 1000}, kc,
		dlqTestLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return kc, p
}

func TestReadDLQ(t *testing.T) {
	t.Parallel()
	kc, p := dlqBroker(t)
	ctx := dlqContext(t)

	empty, err := ingest.ReadDLQ(ctx, kc.Brokers, kc.DLQTopic, ingest.DLQFilter{}, dlqTestLogger())
	if err != nil || len(empty) != 0 {
		t.Fatalf("empty DLQ: %v, %v; want nothing", empty, err)
	}
	if _, err := ingest.ReadDLQ(ctx, kc.Brokers, "no-such-topic", ingest.DLQFilter{}, dlqTestLogger()); err == nil ||
		!strings.Contains(err.Error(), "no-such-topic does not exist") {
		t.Fatalf("missing topic: err = %v, want it named as missing", err)
	}

	long := strings.Repeat("é", 200)
	stored := fmt.Sprintf(`{"id":%q,"timestamp":"2024-01-15T10:30:00Z","level":"INFO","source":"billing","message":%q}`,
		uuid.NewString(), long)
	first := []ingest.DeadLetter{
		{Value: []byte(`{"level":"INFO","source":"web","message":""}`), Reason: ingest.ReasonValidation,
			Err: "invalid event: message: is required and must not be blank", Stage: "producer", CorrelationID: "cid-1"},
		{Value: []byte(`{"level":"loud","source":42}`), Reason: ingest.ReasonValidation,
			Err: "invalid event: level: unknown", Stage: "producer"},
	}
	second := []ingest.DeadLetter{
		{Value: []byte("not\tan\nevent\x01"), Reason: ingest.ReasonDecode, Err: "decode event: invalid character",
			Stage: "consumer", Topic: "logs", Partition: 2, Offset: 17, HasOrigin: true},
		{Value: []byte(stored), Reason: ingest.ReasonStore, Err: "ERROR: value too long",
			Stage: "consumer", Topic: "logs", Partition: 1, Offset: 4, HasOrigin: true, CorrelationID: "cid-2"},
	}
	for _, letters := range [][]ingest.DeadLetter{first, second} {
		if err := p.Publish(ctx, nil, letters, ""); err != nil {
			t.Fatal(err)
		}
	}

	all, err := ingest.ReadDLQ(ctx, kc.Brokers, kc.DLQTopic, ingest.DLQFilter{}, dlqTestLogger())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Fatalf("read %d letters, want 4: %+v", len(all), all)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Time.Before(all[i-1].Time) {
			t.Errorf("letters out of time order: %v before %v", all[i-1].Time, all[i].Time)
		}
	}
	byValue := map[string]ingest.DLQRecord{}
	for _, d := range all {
		if d.Time.IsZero() || d.Offset < 0 {
			t.Errorf("letter without time or offset: %+v", d)
		}
		byValue[string(d.Value)] = d
	}
	checks := []struct {
		value                            string
		reason, stage, source, cid, orig string
		origPartition                    int32
		origOffset                       int64
		preview                          string
	}{
		{value: string(first[0].Value), reason: "validation", stage: "producer", source: "web", cid: "cid-1", orig: "-",
			origPartition: -1, origOffset: -1, preview: string(first[0].Value)},
		{value: string(first[1].Value), reason: "validation", stage: "producer", source: "", orig: "-",
			origPartition: -1, origOffset: -1, preview: string(first[1].Value)},
		{value: string(second[0].Value), reason: "decode", stage: "consumer", orig: "logs/2@17",
			origPartition: 2, origOffset: 17, preview: "not an event\uFFFD"},
		{value: stored, reason: "store", stage: "consumer", source: "billing", cid: "cid-2", orig: "logs/1@4",
			origPartition: 1, origOffset: 4, preview: string([]rune(stored)[:120]) + "…"},
	}
	for _, c := range checks {
		d, ok := byValue[c.value]
		if !ok {
			t.Errorf("letter %.40q not read", c.value)
			continue
		}
		if d.Reason != c.reason || d.Stage != c.stage || d.Source != c.source || d.CorrelationID != c.cid ||
			d.Origin() != c.orig || d.OrigPartition != c.origPartition || d.OrigOffset != c.origOffset || d.Error == "" {
			t.Errorf("letter %.40q read as %+v", c.value, d)
		}
		if d.Preview != c.preview {
			t.Errorf("preview of %.40q = %q, want %q", c.value, d.Preview, c.preview)
		}
		if n := utf8.RuneCountInString(d.Preview); n > 121 {
			t.Errorf("preview has %d runes", n)
		}
	}

	last := all[len(all)-1].Time
	var sinceLast int
	for _, d := range all {
		if !d.Time.Before(last) {
			sinceLast++
		}
	}
	filters := []struct {
		name string
		f    ingest.DLQFilter
		want int
	}{
		{"all", ingest.DLQFilter{}, 4},
		{"reason validation", ingest.DLQFilter{Reason: "validation"}, 2},
		{"reason store", ingest.DLQFilter{Reason: "store"}, 1},
		{"unknown reason", ingest.DLQFilter{Reason: "nope"}, 0},
		{"limit", ingest.DLQFilter{Limit: 3}, 3},
		{"limit after reason", ingest.DLQFilter{Reason: "validation", Limit: 1}, 1},
		{"since the first", ingest.DLQFilter{Since: all[0].Time}, 4},
		{"since the last", ingest.DLQFilter{Since: last}, sinceLast},
		{"since after the last", ingest.DLQFilter{Since: last.Add(time.Nanosecond)}, 0},
	}
	for _, tc := range filters {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ingest.ReadDLQ(ctx, kc.Brokers, kc.DLQTopic, tc.f, dlqTestLogger())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want {
				t.Fatalf("%d letters, want %d: %+v", len(got), tc.want, got)
			}
			for i, d := range got {
				if tc.f.Reason != "" && d.Reason != tc.f.Reason {
					t.Errorf("letter of reason %q kept by filter %q", d.Reason, tc.f.Reason)
				}
				if d.Time.Before(tc.f.Since) {
					t.Errorf("letter of %v kept by since %v", d.Time, tc.f.Since)
				}
				if tc.f.Reason == "" && tc.f.Since.IsZero() && (d.Partition != all[i].Partition || d.Offset != all[i].Offset) {
					t.Errorf("limit kept letter %d@%d, want the first ones in order", d.Partition, d.Offset)
				}
			}
		})
	}
}

func TestReplayDLQStoresEachEventOnce(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := dlqContext(t)

	refused := events(1)[0]
	refused.Source = "refused-svc"
	refusedValue, err := event.Encode(&refused)
	if err != nil {
		t.Fatal(err)
	}
	letters := []ingest.DeadLetter{
		// Valid under today's limits, without id nor timestamp.
		{Value: []byte(`{"level":"warn","source":"replayed-svc","message":"disk almost full"}`), Reason: ingest.ReasonValidation,
			Err: "invalid event: message: too long", Stage: "producer", CorrelationID: "cid-replay"},
		{Value: []byte(`{"level":"INFO","message":"who sent this?"}`), Reason: ingest.ReasonValidation,
			Err: "invalid event: source: is required and must not be blank", Stage: "producer"},
		// As if PostgreSQL had refused it for a passing reason.
		{Value: refusedValue, Key: []byte(refused.Source), Reason: ingest.ReasonStore, Err: "ERROR: transient",
			Stage: "consumer", Topic: r.kafka.Topic, Partition: 0, Offset: 3, HasOrigin: true},
		{Value: []byte("\x00\x01 garbage"), Reason: ingest.ReasonDecode, Err: "decode event: invalid character",
			Stage: "consumer", Topic: r.kafka.Topic, Partition: 1, Offset: 9, HasOrigin: true},
	}
	if err := r.producer.Publish(ctx, nil, letters, ""); err != nil {
		t.Fatal(err)
	}
	dlq, err := ingest.ReadDLQ(ctx, r.kafka.Brokers, r.kafka.DLQTopic, ingest.DLQFilter{}, dlqTestLogger())
	if err != nil || len(dlq) != 4 {
		t.Fatalf("DLQ: %d letters, %v; want 4", len(dlq), err)
	}
	letterOf := map[string]ingest.DLQRecord{}
	for _, d := range dlq {
		letterOf[string(d.Value)] = d
	}

	for round := 1; round <= 2; round++ {
		res, err := ingest.ReplayDLQ(ctx, r.kafka.Brokers, r.kafka.DLQTopic, r.kafka.Topic, ingest.DLQFilter{RetryRefused: true},
			event.DefaultLimits(), dlqTestLogger())
		if err != nil {
			t.Fatalf("replay %d: %v", round, err)
		}
		if res.Replayed != 2 || len(res.Skipped) != 2 {
			t.Fatalf("replay %d: %+v; want 2 replayed and 2 skipped", round, res)
		}
		wantSkips := map[string]string{
			string(letters[1].Value): "source: is required",
			string(letters[3].Value): "decode event",
		}
		for _, s := range res.Skipped {
			var found bool
			for value, reason := range wantSkips {
				if d := letterOf[value]; d.Partition == s.Partition && d.Offset == s.Offset {
					found = true
					if !strings.Contains(s.Reason, reason) {
						t.Errorf("replay %d skipped %d@%d for %q, want %q", round, s.Partition, s.Offset, s.Reason, reason)
					}
				}
			}
			if !found {
				t.Errorf("replay %d skipped %d@%d, a letter it should replay", round, s.Partition, s.Offset)
			}
		}
	}

	// Both replays wrote the same two events: same ids, same timestamps.
	replayed, err := ingest.ReadDLQ(ctx, r.kafka.Brokers, r.kafka.Topic, ingest.DLQFilter{}, dlqTestLogger())
	if err != nil {
		t.Fatal(err)
	}
	if len(replayed) != 4 {
		t.Fatalf("log topic holds %d records, want 4 (2 events × 2 replays)", len(replayed))
	}
	seen := map[uuid.UUID][]logs.Event{}
	for _, rec := range replayed {
		ev, err := event.Decode(rec.Value)
		if err != nil {
			t.Fatalf("replayed record is not an event: %v: %s", err, rec.Value)
		}
		seen[ev.ID] = append(seen[ev.ID], ev)
	}
	if len(seen) != 2 {
		t.Fatalf("replays produced %d distinct ids, want 2: %v", len(seen), seen)
	}
	fromProducer := letterOf[string(letters[0].Value)]
	wantID := uuid.NewSHA1(ingest.DLQReplayNamespace,
		fmt.Appendf(nil, "%s/%d/%d", r.kafka.DLQTopic, fromProducer.Partition, fromProducer.Offset))
	for id, evs := range seen {
		if len(evs) != 2 || !evs[0].Timestamp.Equal(evs[1].Timestamp) {
			t.Errorf("event %s replayed as %+v; want twice with one timestamp", id, evs)
		}
		switch evs[0].Source {
		case refused.Source:
			if id != refused.ID || !evs[0].Timestamp.Equal(refused.Timestamp) {
				t.Errorf("refused event replayed as %s %v, want %s %v", id, evs[0].Timestamp, refused.ID, refused.Timestamp)
			}
		case "replayed-svc":
			wantTS := fromProducer.Time.Truncate(time.Microsecond)
			if id != wantID || !evs[0].Timestamp.Equal(wantTS) || evs[0].TraceID != "cid-replay" || evs[0].Level != logs.LevelWarn {
				t.Errorf("producer letter replayed as %+v; want id %s, timestamp %v, trace id cid-replay", evs[0], wantID, wantTS)
			}
		default:
			t.Errorf("unexpected replayed event %+v", evs[0])
		}
	}

	c := r.consume("replay", r.store)
	c.waitCounter(t, "logs_processed_total", 2)
	c.waitCounter(t, "consumer_skipped_total", 2) // the second replay's copies
	c.stop()
	if total, distinct := r.rows(); total != 2 || distinct != 2 {
		t.Errorf("store holds %d rows, %d distinct ids; want each of the 2 replayed events once", total, distinct)
	}
	if got := c.counter("logs_processing_failed_total"); got != 0 {
		t.Errorf("%v replayed records went back to the DLQ", got)
	}
}

// Letters the store refused are not sent again by default (the store would
// refuse them again and the DLQ would double at every replay); with
// RetryRefused they are, and a refusal of a replay is not replayed again
// while its original is in the DLQ: the DLQ grows by at most one letter
// per refused letter and forced replay, never doubles.
func TestReplayDoesNotMultiplyRefusedLetters(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := dlqContext(t)
	poison := events(1)[0]
	poison.Source = "a\x00pi" // PostgreSQL text in the rollups cannot hold NUL
	if err := r.producer.Publish(ctx, []logs.Event{poison}, nil, ""); err != nil {
		t.Fatal(err)
	}
	c := r.consume("refusals", r.store)
	c.waitCounter(t, "logs_processing_failed_total", 1)
	letters := func() []ingest.DLQRecord {
		t.Helper()
		dlq, err := ingest.ReadDLQ(ctx, r.kafka.Brokers, r.kafka.DLQTopic, ingest.DLQFilter{}, dlqTestLogger())
		if err != nil {
			t.Fatal(err)
		}
		return dlq
	}
	if dlq := letters(); len(dlq) != 1 || dlq[0].Reason != ingest.ReasonStore {
		t.Fatalf("DLQ %+v, want the one store refusal", dlq)
	}
	replay := func(f ingest.DLQFilter) ingest.ReplayResult {
		t.Helper()
		res, err := ingest.ReplayDLQ(ctx, r.kafka.Brokers, r.kafka.DLQTopic, r.kafka.Topic, f, event.DefaultLimits(), dlqTestLogger())
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for round := 1; round <= 2; round++ {
		res := replay(ingest.DLQFilter{})
		if res.Replayed != 0 || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Reason, "refused by the store") {
			t.Fatalf("replay %d: %+v; want the refusal skipped as permanent", round, res)
		}
	}
	for round, wantLetters := range []int{2, 3} {
		res := replay(ingest.DLQFilter{RetryRefused: true})
		if res.Replayed != 1 {
			t.Fatalf("forced replay %d: %+v; want the original letter replayed alone", round+1, res)
		}
		c.waitCounter(t, "logs_processing_failed_total", float64(wantLetters))
		if dlq := letters(); len(dlq) != wantLetters {
			t.Fatalf("after forced replay %d the DLQ holds %d letters, want %d", round+1, len(dlq), wantLetters)
		}
	}
	dlq := letters()
	original := fmt.Sprintf("%s/%d@%d", r.kafka.DLQTopic, dlq[0].Partition, dlq[0].Offset)
	for _, d := range dlq[1:] {
		if d.ReplayOf != original {
			t.Errorf("letter %d@%d of a refused replay names %q as its original, want %q", d.Partition, d.Offset, d.ReplayOf, original)
		}
	}
	res := replay(ingest.DLQFilter{RetryRefused: true})
	if res.Replayed != 1 || len(res.Skipped) != 2 || !strings.Contains(res.Skipped[0].Reason, "earlier replay of "+original) {
		t.Errorf("forced replay with two refusals of replays: %+v; want only the original replayed", res)
	}
}

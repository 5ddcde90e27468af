package event_test

import (
	"strings"
	"testing"

	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/store/logs"
)

// benchEvent is a realistic event of 214 bytes with 3 metadata keys.
const benchEvent = `{"timestamp":"2024-01-15T10:29:58.412Z","level":"ERROR","source":"payment-service",` +
	`"message":"charge declined: card expired",` +
	`"metadata":{"orderId":84512,"userId":"u-1f9a","durationMs":38},"traceId":"4bf92f3577b34da6"}`

func BenchmarkParseEvent(b *testing.B) {
	body := []byte(benchEvent)
	def, lim := defaults(), event.DefaultLimits()
	if _, err := event.Parse(body, def, lim); err != nil {
		b.Fatalf("benchmark event is invalid: %v", err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := event.Parse(body, def, lim); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseBatch100 parses a 100-event batch body the way the batch
// handler does.
func BenchmarkParseBatch100(b *testing.B) {
	items := make([]string, 100)
	for i := range items {
		items[i] = benchEvent
	}
	body := []byte("[" + strings.Join(items, ",") + "]")
	def, lim := defaults(), event.DefaultLimits()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		batch, err := event.ParseBatch(body, def, lim, 10000)
		if err != nil {
			b.Fatal(err)
		}
		if len(batch.Events) != 100 {
			b.Fatalf("parsed %d events, want 100", len(batch.Events))
		}
	}
}

// BenchmarkMarshalBatch100 encodes 100 events as Kafka record values, as the
// producer does for a batch request.
func BenchmarkMarshalBatch100(b *testing.B) {
	e, err := event.Parse([]byte(benchEvent), defaults(), event.DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	events := make([]logs.Event, 100)
	for i := range events {
		events[i] = e
	}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = 0
		for i := range events {
			v, err := event.Encode(&events[i])
			if err != nil {
				b.Fatal(err)
			}
			n += len(v)
		}
	}
	b.SetBytes(int64(n))
}

// BenchmarkDecode reads one Kafka record value, as the consumer does.
func BenchmarkDecode(b *testing.B) {
	e, err := event.Parse([]byte(benchEvent), defaults(), event.DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	v, err := event.Encode(&e)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		if _, err := event.Decode(v); err != nil {
			b.Fatal(err)
		}
	}
}

package ingest_test

import (
	"testing"
	"time"

	"github.com/logengine/logengine/ingest"
	"github.com/logengine/logengine/ingest/event"
)

// FuzzReplayRecord reads any DLQ letter value as a replay would: it never
// panics, and a letter it replays is a valid event with a client id whose
// record the consumer decodes back to it.
func FuzzReplayRecord(f *testing.F) {
	for _, s := range []string{
		`{"level":"warn","source":"svc","message":"disk almost full"}`,
		`{"id":"3f0c8b1e-4a2d-4c6e-9b7a-1d2e3f405162","timestamp":"2024-01-15T10:30:00Z","level":"INFO","source":"a","message":"m","receivedAt":"2024-01-15T10:30:00Z"}`,
		`{"level":"INFO","message":"no source"}`, "\x00\x01 garbage", `[]`, `{"id":null,"level":"INFO","source":"a","message":"m"}`,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	when := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, value []byte, fromProducer bool) {
		stage := "consumer"
		if fromProducer {
			stage = "producer"
		}
		d := ingest.DLQRecord{Partition: 1, Offset: 7, Time: when, Stage: stage, Value: value, CorrelationID: "cid"}
		r, err := ingest.ReplayRecord(ingest.DLQReplayNamespace, "dlq", d, event.DefaultLimits())
		if err != nil {
			return
		}
		ev, err := event.Decode(r.Value)
		if err != nil {
			t.Fatalf("replayed record %s does not decode: %v", r.Value, err)
		}
		if !ev.ClientID || string(r.Key) != ev.Source {
			t.Fatalf("replayed %+v keyed %q; want a client id keyed by its source", ev, r.Key)
		}
	})
}

package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/store/logs"
)

// realisticBatch makes n events of about 200 bytes each, as a service
// would log them, and their approximate size in bytes.
func realisticBatch(n int) ([]logs.Event, int64) {
	sources := []string{"checkout-service", "payment-gateway", "inventory-api", "auth-service", "search-frontend"}
	levels := []logs.Level{logs.LevelInfo, logs.LevelInfo, logs.LevelInfo, logs.LevelDebug, logs.LevelWarn, logs.LevelError}
	now := time.Now().UTC().Truncate(time.Microsecond)
	events := make([]logs.Event, n)
	var size int64
	for i := range events {
		e := logs.Event{
			ID:        uuid.New(),
			Timestamp: now.Add(time.Duration(i) * time.Microsecond),
			Level:     levels[i%len(levels)],
			Source:    sources[i%len(sources)],
			Message: fmt.Sprintf("request %d completed: GET /api/v1/orders/%d status=200 bytes=%d user=u-%05d",
				i, 100000+i*7, 512+i%4096, i%50000),
			Metadata: json.RawMessage(fmt.Sprintf(`{"region":"eu-west-1","latency_ms":%d,"pod":"web-%d"}`, i%500, i%32)),
			TraceID:  fmt.Sprintf("%032x", i*7919+1),
		}
		events[i] = e
		size += int64(16 + 8 + 2 + len(e.Source) + len(e.Message) + len(e.Metadata) + len(e.TraceID))
	}
	return events, size
}

func BenchmarkWriteBatch(b *testing.B) {
	s, _ := open(b)
	ctx := context.Background()
	events, size := realisticBatch(5000)
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	var rows int64
	for range b.N {
		b.StopTimer()
		for i := range events {
			events[i].ID = uuid.New() // fresh ids: every row is inserted
		}
		b.StartTimer()
		n, err := s.WriteBatch(ctx, events)
		if err != nil {
			b.Fatal(err)
		}
		rows += n
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

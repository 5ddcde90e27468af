package logs

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Event is one validated log event.
type Event struct {
	ID        uuid.UUID       `json:"id"`
	Timestamp time.Time       `json:"timestamp"`
	Level     Level           `json:"level"`
	Source    string          `json:"source"`
	Message   string          `json:"message"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	TraceID   string          `json:"traceId,omitempty"`
	// ReceivedAt is when the producer accepted the event; it measures
	// end-to-end latency and is not stored.
	ReceivedAt time.Time `json:"receivedAt"`
	// ClientID says the client chose ID (to retry safely): the store then
	// keeps one event per such id. Ids the producer assigns are unique by
	// construction and need no such check. Not stored in blocks.
	ClientID bool `json:"clientId,omitempty"`
	// Tenant owns the event; "" is the default tenant. It travels in a
	// Kafka header and a block's row, not in the event's JSON.
	Tenant string `json:"-"`
}

// Position is where an event was read from: a partition of a topic of the
// log (Kafka) and the offset in it.
type Position struct {
	Topic     string
	Partition int32
	Offset    int64
}

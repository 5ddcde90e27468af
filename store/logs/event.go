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
}

// Package event is the write side's view of a log event: validation and
// repair of the JSON a client sends, and the record encoding on Kafka.
package event

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/logengine/logengine/store/logs"
)

// Encode writes the event as a Kafka record value.
func Encode(e *logs.Event) ([]byte, error) { return json.Marshal(e) }

// wireEvent has the Kafka record's fields; Level is a pointer so a record
// without one is told apart from a TRACE one.
type wireEvent struct {
	logs.Event
	Level *logs.Level `json:"level"`
}

// Decode reads a Kafka record value and re-checks the invariants a valid
// event has, so a corrupt or foreign record is caught before storing. This
// is the one place a level from outside the producer is checked.
func Decode(b []byte) (logs.Event, error) {
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		return logs.Event{}, fmt.Errorf("decode event: %w", err)
	}
	e := w.Event
	switch {
	case e.ID == uuid.Nil:
		return logs.Event{}, fmt.Errorf("decode event: missing id")
	case w.Level == nil:
		return logs.Event{}, fmt.Errorf("decode event: missing level")
	case strings.TrimSpace(e.Source) == "":
		return logs.Event{}, fmt.Errorf("decode event: missing source")
	case e.Timestamp.IsZero():
		return logs.Event{}, fmt.Errorf("decode event: missing timestamp")
	}
	e.Level = *w.Level
	return e, nil
}

// Package event is the log event model shared by the write side and the read
// side: its levels, its validation and its wire encoding on Kafka.
package event

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Level is a normalised, upper-case log level.
type Level string

// The levels the API accepts, from least to most severe.
const (
	LevelTrace Level = "TRACE"
	LevelDebug Level = "DEBUG"
	LevelInfo  Level = "INFO"
	LevelWarn  Level = "WARN"
	LevelError Level = "ERROR"
	LevelFatal Level = "FATAL"
)

// Levels lists every level in severity order; Code indexes into it.
var Levels = [...]Level{LevelTrace, LevelDebug, LevelInfo, LevelWarn, LevelError, LevelFatal}

// ParseLevel accepts a level in any case; WARNING is an alias of WARN.
func ParseLevel(s string) (Level, bool) {
	up := strings.ToUpper(strings.TrimSpace(s))
	if up == "WARNING" {
		return LevelWarn, true
	}
	for _, l := range Levels {
		if string(l) == up {
			return l, true
		}
	}
	return "", false
}

// Code is the level's compact storage form (0 = TRACE … 5 = FATAL).
func (l Level) Code() int16 {
	for i, v := range Levels {
		if v == l {
			return int16(i)
		}
	}
	return -1
}

// LevelFromCode is the inverse of Code.
func LevelFromCode(c int16) (Level, error) {
	if c < 0 || int(c) >= len(Levels) {
		return "", fmt.Errorf("unknown level code %d", c)
	}
	return Levels[c], nil
}

// Event is one validated log event. Its JSON form is the Kafka record value.
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

// Marshal encodes the event as a Kafka record value.
func (e *Event) Marshal() ([]byte, error) { return json.Marshal(e) }

// Unmarshal decodes a Kafka record value and re-checks the invariants a
// valid event has, so a corrupt or foreign record is caught before storing.
func Unmarshal(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	switch {
	case e.ID == uuid.Nil:
		return Event{}, fmt.Errorf("decode event: missing id")
	case e.Level.Code() < 0:
		return Event{}, fmt.Errorf("decode event: unknown level %q", e.Level)
	case strings.TrimSpace(e.Source) == "":
		return Event{}, fmt.Errorf("decode event: missing source")
	case e.Timestamp.IsZero():
		return Event{}, fmt.Errorf("decode event: missing timestamp")
	}
	return e, nil
}

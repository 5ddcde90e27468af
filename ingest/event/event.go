// Package event is the write side's view of a log event: validation and
// repair of the JSON a client sends, and the record encoding on Kafka.
package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/store/logs"
)

// The Kafka record value is the JSON object of logs.Event: id, timestamp,
// level, source, message, metadata (left out when empty), traceId (left
// out when empty) and receivedAt, in that order. It is written and read
// without reflection; its bytes are what encoding/json writes for
// logs.Event with HTML escaping off, so operators read <, > and & as sent
// and the metadata comes back byte for byte.

// Encode writes the event as a Kafka record value.
func Encode(e *logs.Event) ([]byte, error) {
	n := 160 + len(e.Source) + len(e.Message) + len(e.Metadata) + len(e.TraceID)
	b, err := AppendEncode(make([]byte, 0, n+n/8), e)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// AppendEncode appends the Kafka record value of the event to dst. On an
// error dst is returned unchanged.
func AppendEncode(dst []byte, e *logs.Event) ([]byte, error) {
	n0 := len(dst)
	if !e.Level.Valid() {
		return dst, encodeError(e)
	}
	var ok bool
	dst = append(dst, `{"id":"`...)
	dst = appendUUID(dst, e.ID)
	dst = append(dst, `","timestamp":"`...)
	if dst, ok = appendTime(dst, e.Timestamp); !ok {
		return dst[:n0], encodeError(e)
	}
	dst = append(dst, `","level":"`...)
	dst = append(dst, e.Level.String()...)
	dst = append(dst, `","source":`...)
	dst = appendString(dst, e.Source)
	dst = append(dst, `,"message":`...)
	dst = appendString(dst, e.Message)
	if len(e.Metadata) > 0 {
		r := reader{data: e.Metadata}
		if r.ws(); !r.value() || !r.atEnd() {
			return dst[:n0], encodeError(e)
		}
		dst = append(dst, `,"metadata":`...)
		if r.spaced {
			dst = compact(dst, e.Metadata)
		} else {
			dst = append(dst, e.Metadata...)
		}
	}
	if e.TraceID != "" {
		dst = append(dst, `,"traceId":`...)
		dst = appendString(dst, e.TraceID)
	}
	dst = append(dst, `,"receivedAt":"`...)
	if dst, ok = appendTime(dst, e.ReceivedAt); !ok {
		return dst[:n0], encodeError(e)
	}
	if e.ClientID {
		return append(dst, `","clientId":true}`...), nil
	}
	return append(dst, `"}`...), nil
}

// encodeError is encoding/json's error for an event AppendEncode refuses.
func encodeError(e *logs.Event) error {
	if _, err := json.Marshal(e); err != nil {
		return err
	}
	return errors.New("encode event: cannot be encoded")
}

func appendUUID(dst []byte, id uuid.UUID) []byte {
	for i, b := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[b>>4], hexDigits[b&0xF])
	}
	return dst
}

// appendTime appends t as time.Time.MarshalJSON does, without the quotes;
// false for the times that MarshalJSON refuses.
func appendTime(dst []byte, t time.Time) ([]byte, bool) {
	n0 := len(dst)
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	if dst[n0+len("9999")] != '-' { // a year outside [0,9999]
		return dst, false
	}
	if dst[len(dst)-1] != 'Z' {
		num2 := func(b []byte) byte { return 10*(b[0]-'0') + (b[1] - '0') }
		if c := dst[len(dst)-len("Z07:00")]; ('0' <= c && c <= '9') || num2(dst[len(dst)-len("07:00"):]) >= 24 {
			return dst, false // a zone offset of a day or more
		}
	}
	return dst, true
}

// Decode reads a Kafka record value and re-checks the invariants a valid
// event has, so a corrupt or foreign record is caught before storing. This
// is the one place a level from outside the producer is checked.
func Decode(b []byte) (logs.Event, error) {
	if e, ok := decodeFast(b); ok {
		return e, nil
	}
	return decodeSlow(b)
}

// wireEvent has the Kafka record's fields; Level is a pointer so a record
// without one is told apart from a TRACE one.
type wireEvent struct {
	logs.Event
	Level *logs.Level `json:"level"`
}

// decodeSlow decodes with encoding/json. Decode takes it only for the
// records decodeFast does not vouch for, so that what a record decodes to
// and the error text of a bad one are exactly those of encoding/json.
func decodeSlow(b []byte) (logs.Event, error) {
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

// decodeFast decodes a record as decodeSlow would, for records that are
// well-formed and valid; false sends any other record to decodeSlow.
// encoding/json's rules kept here: keys match fields case-insensitively,
// the last of a repeated key wins, null leaves a field as it was (but
// clears the level, a pointer, and is kept as the metadata's raw JSON),
// and the times are read by time.Time.UnmarshalJSON.
func decodeFast(b []byte) (logs.Event, bool) {
	var (
		e                        logs.Event
		level                    = -1
		source, message, traceID rawValue
		meta                     []byte
		r                        = reader{data: b}
	)
	if r.next() != '{' {
		return logs.Event{}, false
	}
	ok := r.members(func(key []byte, kflags uint8) bool {
		r.ws()
		start := r.pos
		var flags uint8
		isString := r.pos < len(b) && b[r.pos] == '"'
		if isString {
			fl, ok := r.str()
			if !ok {
				return false
			}
			flags = fl
		} else if !r.value() {
			return false
		}
		v := rawValue{b: b[start:r.pos], flags: flags}
		field := recordField(key, kflags)
		if field == recMetadata {
			meta = v.b
			return true
		}
		if string(v.b) == "null" {
			if field == recLevel {
				level = -1
			}
			return true
		}
		if field == recClientID {
			switch string(v.b) {
			case "true":
				e.ClientID = true
			case "false":
				e.ClientID = false
			default:
				return false
			}
			return true
		}
		if !isString {
			return field == recOther
		}
		switch field {
		case recID:
			id, err := uuid.ParseBytes(v.text())
			if err != nil {
				return false
			}
			e.ID = id
		case recTimestamp:
			return e.Timestamp.UnmarshalJSON(v.b) == nil
		case recReceivedAt:
			return e.ReceivedAt.UnmarshalJSON(v.b) == nil
		case recLevel:
			var l logs.Level
			if l.UnmarshalText(v.text()) != nil {
				return false
			}
			level = int(l)
		case recSource:
			source = v
		case recMessage:
			message = v
		case recTraceID:
			traceID = v
		}
		return true
	})
	if !ok || !r.atEnd() || e.ID == uuid.Nil || level < 0 || e.Timestamp.IsZero() {
		return logs.Event{}, false
	}
	// One string holds the three texts; each is a substring of it.
	var scratch [512]byte
	buf := scratch[:0]
	var ends [3]int
	for i, v := range [3]rawValue{source, message, traceID} {
		if v.isString() {
			buf = appendUnquoted(buf, v.b, v.flags)
		}
		ends[i] = len(buf)
	}
	texts := string(buf)
	e.Source, e.Message, e.TraceID = texts[:ends[0]], texts[ends[0]:ends[1]], texts[ends[1]:ends[2]]
	if strings.TrimSpace(e.Source) == "" {
		return logs.Event{}, false
	}
	if meta != nil {
		e.Metadata = append(json.RawMessage(nil), meta...)
	}
	e.Level = logs.Level(level)
	return e, true
}

// The members of a record.
const (
	recOther = iota
	recID
	recTimestamp
	recLevel
	recSource
	recMessage
	recMetadata
	recTraceID
	recReceivedAt
	recClientID
)

var recordFields = [...]string{
	recID: "id", recTimestamp: "timestamp", recLevel: "level", recSource: "source", recMessage: "message",
	recMetadata: "metadata", recTraceID: "traceId", recReceivedAt: "receivedAt", recClientID: "clientId",
}

// recordField is the member a key (a raw string) names.
func recordField(key []byte, kflags uint8) int {
	var buf [32]byte
	k := key[1 : len(key)-1]
	if kflags != 0 {
		k = appendUnquoted(buf[:0], key, kflags)
	}
	for f := recID; f < len(recordFields); f++ {
		if string(k) == recordFields[f] {
			return f
		}
	}
	for f := recID; f < len(recordFields); f++ {
		if keyIs(k, recordFields[f]) {
			return f
		}
	}
	return recOther
}

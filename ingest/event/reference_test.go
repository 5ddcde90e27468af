package event_test

// The implementation of Parse and Decode on encoding/json that the hand-
// written reader replaced, kept word for word as the reference the fuzz
// tests hold the new one to: same events, same errors, same texts.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/store/logs"
)

// refInput mirrors the request body. Fields stay raw so a wrong type is
// reported against its field name instead of as an opaque decode error.
type refInput struct {
	ID        json.RawMessage `json:"id"`
	Timestamp json.RawMessage `json:"timestamp"`
	Level     json.RawMessage `json:"level"`
	Source    json.RawMessage `json:"source"`
	Message   json.RawMessage `json:"message"`
	Metadata  json.RawMessage `json:"metadata"`
	TraceID   json.RawMessage `json:"traceId"`
}

// refParse decodes and validates one event from its JSON object. A nil error
// means the event is normalised and ready for Kafka; otherwise the error
// is event.Invalid and names each problem.
func refParse(raw []byte, def event.Defaults, lim event.Limits) (logs.Event, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return logs.Event{}, event.Invalid{{Field: "body", Problem: "an event must be a JSON object"}}
	}
	var in refInput
	if err := json.Unmarshal(raw, &in); err != nil {
		return logs.Event{}, event.Invalid{{Field: "body", Problem: "malformed JSON: " + err.Error()}}
	}
	var errs event.Invalid
	fail := func(field, format string, args ...any) {
		errs = append(errs, event.FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	// Microseconds: what PostgreSQL stores, so the event reads back equal.
	ev := logs.Event{ReceivedAt: def.Now.UTC().Truncate(time.Microsecond)}

	if msg, ok := refStr(in.Message, "message", fail); ok {
		msg = refClean(msg) // before the length check: a repair can lengthen it
		switch {
		case strings.TrimSpace(msg) == "":
			fail("message", "is required and must not be blank")
		case len(msg) > lim.MaxMessageBytes:
			fail("message", "is %d bytes, more than the limit of %d", len(msg), lim.MaxMessageBytes)
		default:
			ev.Message = msg
		}
	}
	if lvl, ok := refStr(in.Level, "level", fail); ok {
		if l, known := logs.ParseLevel(lvl); known {
			ev.Level = l
		} else if strings.TrimSpace(lvl) == "" {
			fail("level", "is required; one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL")
		} else {
			fail("level", "unknown level %q; use one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL", lvl)
		}
	}
	if src, ok := refStr(in.Source, "source", fail); ok {
		src = refClean(strings.TrimSpace(src))
		switch {
		case src == "":
			fail("source", "is required and must not be blank")
		case len(src) > lim.MaxSourceBytes:
			fail("source", "is %d bytes, more than the limit of %d", len(src), lim.MaxSourceBytes)
		default:
			ev.Source = src
		}
	}
	ev.Timestamp = ev.ReceivedAt
	if refPresent(in.Timestamp) {
		if s, ok := refStr(in.Timestamp, "timestamp", fail); ok {
			// The rules of a timestamp are not the JSON reader's: the
			// reference shares them.
			if ts, problem := event.ParseTimestamp(s, def.Now, lim); problem != "" {
				fail("timestamp", "%s", problem)
			} else {
				ev.Timestamp = ts
			}
		}
	}
	if refPresent(in.Metadata) {
		if meta, problem := refMetadata(in.Metadata, lim); problem != "" {
			fail("metadata", "%s", problem)
		} else {
			ev.Metadata = meta
		}
	}
	ev.ID = uuid.Nil
	if refPresent(in.ID) {
		if s, ok := refStr(in.ID, "id", fail); ok {
			id, err := uuid.Parse(s)
			if err != nil || id == uuid.Nil {
				fail("id", "must be a UUID")
			} else {
				ev.ID, ev.ClientID = id, true
			}
		}
	}
	if ev.ID == uuid.Nil && len(errs) == 0 {
		id, err := uuid.NewV7()
		if err != nil {
			id = uuid.New()
		}
		ev.ID = id
	}
	ev.TraceID = def.TraceID
	if refPresent(in.TraceID) {
		if s, ok := refStr(in.TraceID, "traceId", fail); ok {
			s = refClean(strings.TrimSpace(s))
			if len(s) > lim.MaxTraceIDBytes {
				fail("traceId", "is longer than %d bytes", lim.MaxTraceIDBytes)
			} else if s != "" {
				ev.TraceID = s
			}
		}
	}
	if len(errs) > 0 {
		return logs.Event{}, errs
	}
	return ev, nil
}

func refPresent(raw json.RawMessage) bool {
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

// refStr decodes a JSON string field; a missing field is the empty string.
func refStr(raw json.RawMessage, field string, fail func(string, string, ...any)) (string, bool) {
	if !refPresent(raw) {
		return "", true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		fail(field, "must be a string, not %s", refJSONKind(raw))
		return "", false
	}
	return s, true
}

func refJSONKind(raw json.RawMessage) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	default:
		return "a number"
	}
}

// refClean repairs what PostgreSQL text cannot hold: a NUL becomes U+FFFD, as
// invalid UTF-8 already has by the JSON decoder. Repairing keeps the log
// readable instead of rejecting a whole event for one byte.
func refClean(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// refMetadata checks the metadata object and returns its compact form.
func refMetadata(raw json.RawMessage, lim event.Limits) (json.RawMessage, string) {
	if raw[0] != '{' {
		return nil, "must be a JSON object, not " + refJSONKind(raw)
	}
	if len(raw) > lim.MaxMetadataBytes {
		return nil, fmt.Sprintf("is %d bytes, more than the limit of %d", len(raw), lim.MaxMetadataBytes)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, "must be a JSON object: " + err.Error()
	}
	if len(obj) > lim.MaxMetadataKeys {
		return nil, fmt.Sprintf("has %d keys, more than the limit of %d", len(obj), lim.MaxMetadataKeys)
	}
	if num, ok := refUnstorableNumber(raw); ok {
		if len(num) > 40 {
			num = num[:37] + "..."
		}
		return nil, fmt.Sprintf("holds the number %s, which PostgreSQL cannot store (at most 131072 digits before the decimal point and 16383 after)", num)
	}
	if utf8.Valid(raw) && !bytes.Contains(raw, []byte(`\u`)) {
		// The common case: nothing jsonb could refuse.
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, "must be a JSON object: " + err.Error()
		}
		return buf.Bytes(), ""
	}
	out, problem := refNormaliseMetadata(raw)
	if problem == "" && len(out) > lim.MaxMetadataBytes {
		problem = fmt.Sprintf("is %d bytes once repaired, more than the limit of %d", len(out), lim.MaxMetadataBytes)
	}
	return out, problem
}

// refNormaliseMetadata re-encodes metadata holding escapes or invalid UTF-8:
// decoding repairs invalid UTF-8 and unpaired surrogates (both refused by
// jsonb) to U+FFFD, as in the message; a NUL character is refused, since
// jsonb cannot hold it and rewriting structured data silently would mislead.
func refNormaliseMetadata(raw json.RawMessage) (json.RawMessage, string) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, "must be a JSON object: " + err.Error()
	}
	if refHasNUL(v) {
		return nil, "must not contain the NUL character (\\u0000)"
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, "cannot be encoded: " + err.Error()
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), ""
}

// refUnstorableNumber finds the first number, in the order of the text,
// that PostgreSQL's numeric cannot hold.
func refUnstorableNumber(raw json.RawMessage) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		if n, ok := tok.(json.Number); ok && !event.NumericFits(n.String()) {
			return n.String(), true
		}
	}
}

func refHasNUL(v any) bool {
	switch t := v.(type) {
	case string:
		return strings.IndexByte(t, 0) >= 0
	case map[string]any:
		for k, e := range t {
			if strings.IndexByte(k, 0) >= 0 || refHasNUL(e) {
				return true
			}
		}
	case []any:
		for _, e := range t {
			if refHasNUL(e) {
				return true
			}
		}
	}
	return false
}

// wireEvent has the Kafka record's fields; Level is a pointer so a record
// without one is told apart from a TRACE one.
type wireEvent struct {
	logs.Event
	Level *logs.Level `json:"level"`
}

// refDecode reads a Kafka record value and re-checks the invariants a valid
// event has, so a corrupt or foreign record is caught before storing. This
// is the one place a level from outside the producer is checked.
func refDecode(b []byte) (logs.Event, error) {
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

// refEncode is encoding/json's encoding of the event with HTML escaping
// off, which AppendEncode writes without reflection.
func refEncode(e *logs.Event) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/logengine/logengine/store/logs"
	"github.com/spf13/pflag"
)

// Limits bound what one event may carry. Every field is configurable.
type Limits struct {
	MaxMessageBytes  int
	MaxSourceBytes   int
	MaxMetadataKeys  int
	MaxMetadataBytes int
	MaxTraceIDBytes  int
	// MaxFutureSkew is how far past the time of receipt a timestamp may be.
	MaxFutureSkew time.Duration
}

// DefaultLimits are the limits API.md documents.
func DefaultLimits() Limits {
	return Limits{
		MaxMessageBytes:  64 << 10,
		MaxSourceBytes:   255,
		MaxMetadataKeys:  64,
		MaxMetadataBytes: 16 << 10,
		MaxTraceIDBytes:  128,
		MaxFutureSkew:    5 * time.Minute,
	}
}

// RegisterFlags binds the limits to flags whose defaults are l's values.
func (l *Limits) RegisterFlags(fs *pflag.FlagSet) {
	fs.IntVar(&l.MaxMessageBytes, "max-message-bytes", l.MaxMessageBytes, "longest message of one event")
	fs.IntVar(&l.MaxSourceBytes, "max-source-bytes", l.MaxSourceBytes, "longest source of one event")
	fs.IntVar(&l.MaxMetadataKeys, "max-metadata-keys", l.MaxMetadataKeys, "most metadata keys of one event")
	fs.IntVar(&l.MaxMetadataBytes, "max-metadata-bytes", l.MaxMetadataBytes, "largest metadata object of one event")
	fs.IntVar(&l.MaxTraceIDBytes, "max-trace-id-bytes", l.MaxTraceIDBytes, "longest traceId of one event")
	fs.DurationVar(&l.MaxFutureSkew, "max-future-skew", l.MaxFutureSkew, "how far in the future an event's timestamp may be")
}

// Validate reports every limit that cannot work, naming its flag.
func (l *Limits) Validate() error {
	var p flagvalue.Problems
	p.AtLeast1(map[string]int64{
		"max-message-bytes":  int64(l.MaxMessageBytes),
		"max-source-bytes":   int64(l.MaxSourceBytes),
		"max-metadata-keys":  int64(l.MaxMetadataKeys),
		"max-metadata-bytes": int64(l.MaxMetadataBytes),
		"max-trace-id-bytes": int64(l.MaxTraceIDBytes),
	})
	p.NotNegative(map[string]time.Duration{"max-future-skew": l.MaxFutureSkew})
	return p.Err()
}

// FieldError names one problem with one field of an event.
type FieldError struct {
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

// Invalid is the error of an event that fails validation.
type Invalid []FieldError

func (v Invalid) Error() string {
	parts := make([]string, len(v))
	for i, fe := range v {
		parts[i] = fe.Field + ": " + fe.Problem
	}
	return "invalid event: " + strings.Join(parts, "; ")
}

// input mirrors the request body. Fields stay raw so a wrong type is
// reported against its field name instead of as an opaque decode error.
type input struct {
	ID        json.RawMessage `json:"id"`
	Timestamp json.RawMessage `json:"timestamp"`
	Level     json.RawMessage `json:"level"`
	Source    json.RawMessage `json:"source"`
	Message   json.RawMessage `json:"message"`
	Metadata  json.RawMessage `json:"metadata"`
	TraceID   json.RawMessage `json:"traceId"`
}

// Defaults fill what the client left out.
type Defaults struct {
	Now     time.Time // time of receipt
	TraceID string    // from traceparent or X-Correlation-ID
}

// Parse decodes and validates one event from its JSON object. A nil error
// means the event is normalised and ready for Kafka; otherwise the error
// is Invalid and names each problem.
func Parse(raw []byte, def Defaults, lim Limits) (logs.Event, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return logs.Event{}, Invalid{{Field: "body", Problem: "an event must be a JSON object"}}
	}
	var in input
	if err := json.Unmarshal(raw, &in); err != nil {
		return logs.Event{}, Invalid{{Field: "body", Problem: "malformed JSON: " + err.Error()}}
	}
	var errs Invalid
	fail := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	// Microseconds: what PostgreSQL stores, so the event reads back equal.
	ev := logs.Event{ReceivedAt: def.Now.UTC().Truncate(time.Microsecond)}

	if msg, ok := str(in.Message, "message", fail); ok {
		msg = clean(msg) // before the length check: a repair can lengthen it
		switch {
		case strings.TrimSpace(msg) == "":
			fail("message", "is required and must not be blank")
		case len(msg) > lim.MaxMessageBytes:
			fail("message", "is %d bytes, more than the limit of %d", len(msg), lim.MaxMessageBytes)
		default:
			ev.Message = msg
		}
	}
	if lvl, ok := str(in.Level, "level", fail); ok {
		if l, known := logs.ParseLevel(lvl); known {
			ev.Level = l
		} else if strings.TrimSpace(lvl) == "" {
			fail("level", "is required; one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL")
		} else {
			fail("level", "unknown level %q; use one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL", lvl)
		}
	}
	if src, ok := str(in.Source, "source", fail); ok {
		src = clean(strings.TrimSpace(src))
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
	if present(in.Timestamp) {
		if s, ok := str(in.Timestamp, "timestamp", fail); ok {
			ts, err := time.Parse(time.RFC3339Nano, s)
			switch {
			case err != nil:
				fail("timestamp", "must be RFC 3339, such as 2024-01-15T10:30:00Z")
			case ts.After(def.Now.Add(lim.MaxFutureSkew)):
				fail("timestamp", "is more than %s in the future", lim.MaxFutureSkew)
			case ts.UTC().Year() < 1970 || ts.UTC().Year() > 9999:
				fail("timestamp", "is out of range")
			default:
				ev.Timestamp = ts.UTC().Truncate(time.Microsecond)
			}
		}
	}
	if present(in.Metadata) {
		if meta, problem := metadata(in.Metadata, lim); problem != "" {
			fail("metadata", "%s", problem)
		} else {
			ev.Metadata = meta
		}
	}
	ev.ID = uuid.Nil
	if present(in.ID) {
		if s, ok := str(in.ID, "id", fail); ok {
			id, err := uuid.Parse(s)
			if err != nil || id == uuid.Nil {
				fail("id", "must be a UUID")
			} else {
				ev.ID = id
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
	if present(in.TraceID) {
		if s, ok := str(in.TraceID, "traceId", fail); ok {
			s = clean(strings.TrimSpace(s))
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

func present(raw json.RawMessage) bool {
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

// str decodes a JSON string field; a missing field is the empty string.
func str(raw json.RawMessage, field string, fail func(string, string, ...any)) (string, bool) {
	if !present(raw) {
		return "", true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		fail(field, "must be a string, not %s", jsonKind(raw))
		return "", false
	}
	return s, true
}

func jsonKind(raw json.RawMessage) string {
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

// clean repairs what PostgreSQL text cannot hold: a NUL becomes U+FFFD, as
// invalid UTF-8 already has by the JSON decoder. Repairing keeps the log
// readable instead of rejecting a whole event for one byte.
func clean(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// metadata checks the metadata object and returns its compact form.
func metadata(raw json.RawMessage, lim Limits) (json.RawMessage, string) {
	if raw[0] != '{' {
		return nil, "must be a JSON object, not " + jsonKind(raw)
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
	if utf8.Valid(raw) && !bytes.Contains(raw, []byte(`\u`)) {
		// The common case: nothing jsonb could refuse.
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, "must be a JSON object: " + err.Error()
		}
		return buf.Bytes(), ""
	}
	out, problem := normaliseMetadata(raw)
	if problem == "" && len(out) > lim.MaxMetadataBytes {
		problem = fmt.Sprintf("is %d bytes once repaired, more than the limit of %d", len(out), lim.MaxMetadataBytes)
	}
	return out, problem
}

// normaliseMetadata re-encodes metadata holding escapes or invalid UTF-8:
// decoding repairs invalid UTF-8 and unpaired surrogates (both refused by
// jsonb) to U+FFFD, as in the message; a NUL character is refused, since
// jsonb cannot hold it and rewriting structured data silently would mislead.
func normaliseMetadata(raw json.RawMessage) (json.RawMessage, string) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, "must be a JSON object: " + err.Error()
	}
	if hasNUL(v) {
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

func hasNUL(v any) bool {
	switch t := v.(type) {
	case string:
		return strings.IndexByte(t, 0) >= 0
	case map[string]any:
		for k, e := range t {
			if strings.IndexByte(k, 0) >= 0 || hasNUL(e) {
				return true
			}
		}
	case []any:
		for _, e := range t {
			if hasNUL(e) {
				return true
			}
		}
	}
	return false
}

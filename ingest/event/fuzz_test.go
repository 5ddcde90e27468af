package event_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/store/logs"
)

// tightLimits make every bound reachable by small fuzz inputs.
var tightLimits = event.Limits{
	MaxMessageBytes:  32,
	MaxSourceBytes:   12,
	MaxMetadataKeys:  3,
	MaxMetadataBytes: 64,
	MaxTraceIDBytes:  12,
	MaxFutureSkew:    time.Minute,
}

// FuzzParse checks that Parse never panics, that a rejection is a
// well-formed Invalid, and that an accepted event keeps every invariant the
// consumer and the store rely on, under both the default and tight limits.
func FuzzParse(f *testing.F) {
	for _, tc := range invalidCases {
		f.Add([]byte(tc.body))
	}
	for _, s := range []string{
		valid(),
		valid("id", `"3f0c8b1e-4a2d-4c6e-9b7a-1d2e3f405162"`, "timestamp", `"2024-01-15T10:29:59.999999999+01:00"`,
			"metadata", `{"user":{"id":42},"tags":["a","b"]}`, "traceId", `"abc123"`),
		ev("message", `"a\u0000b"`, "level", `"warning"`, "source", `" api "`),
		ev("message", "\"caf\xe9\"", "level", `"error"`, "source", `"api"`),
		ev("message", `"x\ud800y"`, "level", `"fatal"`, "source", `"api"`, "metadata", `{"k":"\ud83d\ude00"}`),
		valid("metadata", `{ "a" : [ 1 , { "b" : null } ] }`),
		valid("timestamp", `"1970-01-01T00:00:00Z"`),
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		def := event.Defaults{Now: now, TraceID: "t-default"}
		for _, lim := range []event.Limits{event.DefaultLimits(), tightLimits} {
			got, err := event.Parse(body, def, lim)
			if err != nil {
				var inv event.Invalid
				if !errors.As(err, &inv) || len(inv) == 0 {
					t.Fatalf("Parse(%q) error %v (%T) is not a non-empty Invalid", body, err, err)
				}
				for _, fe := range inv {
					if fe.Field == "" || fe.Problem == "" {
						t.Fatalf("Parse(%q) field error %+v lacks a field or a problem", body, fe)
					}
				}
				if !reflect.DeepEqual(got, logs.Event{}) {
					t.Fatalf("Parse(%q) returned %+v alongside an error", body, got)
				}
				continue
			}
			checkInvariants(t, body, got, def, lim)
		}
	})
}

func checkInvariants(t *testing.T, body []byte, e logs.Event, def event.Defaults, lim event.Limits) {
	t.Helper()
	text := func(field, v string, max int) {
		t.Helper()
		switch {
		case max > 0 && len(v) > max:
			t.Fatalf("Parse(%q): %s is %d bytes, over the limit of %d", body, field, len(v), max)
		case !utf8.ValidString(v):
			t.Fatalf("Parse(%q): %s %q is not valid UTF-8", body, field, v)
		case strings.IndexByte(v, 0) >= 0:
			t.Fatalf("Parse(%q): %s %q contains NUL", body, field, v)
		}
	}
	if e.ID == uuid.Nil {
		t.Fatalf("Parse(%q): nil id", body)
	}
	if e.Level.Code() < 0 {
		t.Fatalf("Parse(%q): unknown level %q", body, e.Level)
	}
	if strings.TrimSpace(e.Source) == "" || e.Source != strings.TrimSpace(e.Source) {
		t.Fatalf("Parse(%q): source %q blank or untrimmed", body, e.Source)
	}
	text("source", e.Source, lim.MaxSourceBytes)
	if strings.TrimSpace(e.Message) == "" {
		t.Fatalf("Parse(%q): blank message %q", body, e.Message)
	}
	text("message", e.Message, lim.MaxMessageBytes)
	if e.TraceID != def.TraceID {
		text("traceId", e.TraceID, lim.MaxTraceIDBytes)
	}
	if e.Timestamp.Location() != time.UTC || e.ReceivedAt.Location() != time.UTC {
		t.Fatalf("Parse(%q): times %v / %v not UTC", body, e.Timestamp, e.ReceivedAt)
	}
	if e.Timestamp.After(def.Now.Add(lim.MaxFutureSkew)) {
		t.Fatalf("Parse(%q): timestamp %v beyond the future skew", body, e.Timestamp)
	}
	if !e.Timestamp.Equal(def.Now) && !e.Timestamp.Equal(e.Timestamp.Truncate(time.Microsecond)) {
		t.Fatalf("Parse(%q): client timestamp %v not truncated to microseconds", body, e.Timestamp)
	}
	if e.Metadata != nil {
		if len(e.Metadata) > lim.MaxMetadataBytes {
			t.Fatalf("Parse(%q): metadata of %d bytes over the limit", body, len(e.Metadata))
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(e.Metadata, &obj); err != nil {
			t.Fatalf("Parse(%q): metadata %q is not a JSON object: %v", body, e.Metadata, err)
		}
		if len(obj) > lim.MaxMetadataKeys {
			t.Fatalf("Parse(%q): metadata has %d keys, over the limit", body, len(obj))
		}
		if p := jsonbProblem(e.Metadata); p != "" {
			t.Fatalf("Parse(%q): metadata %q cannot be stored as jsonb: %s", body, e.Metadata, p)
		}
	}
	b, err := event.Encode(&e)
	if err != nil {
		t.Fatalf("Parse(%q): Marshal: %v", body, err)
	}
	back, err := event.Decode(b)
	if err != nil {
		t.Fatalf("Parse(%q): Unmarshal(%s): %v", body, b, err)
	}
	sameEvent(t, back, e)
}

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

// now is the time of receipt in every test. It has microsecond precision
// so a defaulted timestamp equals Now whether or not Parse truncates it.
var now = time.Date(2024, 1, 15, 10, 30, 0, 123456000, time.UTC)

const defaultTrace = "trace-from-header"

func defaults() event.Defaults { return event.Defaults{Now: now, TraceID: defaultTrace} }

// limits are DefaultLimits; tests that probe a bound shrink one field.
func limits(mod ...func(*event.Limits)) event.Limits {
	lim := event.DefaultLimits()
	for _, m := range mod {
		m(&lim)
	}
	return lim
}

// fieldsOf returns the field names of an Invalid error, in order; it fails
// the test when err is not an Invalid.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	var inv event.Invalid
	if !errors.As(err, &inv) {
		t.Fatalf("error %v (%T) is not an event.Invalid", err, err)
	}
	out := make([]string, len(inv))
	for i, fe := range inv {
		if fe.Problem == "" {
			t.Errorf("field error %q has no problem text", fe.Field)
		}
		out[i] = fe.Field
	}
	return out
}

// ev builds a request body from key/raw-JSON pairs, in order.
func ev(pairs ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(pairs); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + pairs[i] + `":` + pairs[i+1])
	}
	b.WriteByte('}')
	return b.String()
}

// valid is a minimal valid body plus extra key/raw-JSON pairs.
func valid(extra ...string) string {
	return ev(append([]string{"message", `"user logged in"`, "level", `"INFO"`, "source", `"auth-service"`}, extra...)...)
}

// quoted is s as a JSON string.
func quoted(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// invalidCase is a body Parse must reject, naming exactly wantFields.
type invalidCase struct {
	name       string
	body       string
	lim        event.Limits
	wantFields []string
}

// invalidCases is shared with FuzzParse as seeds.
var invalidCases = []invalidCase{
	// The body as a whole.
	{name: "malformed JSON", body: `{"message":"x","level":"INFO",`, wantFields: []string{"body"}},
	{name: "trailing garbage", body: valid() + ` x`, wantFields: []string{"body"}},
	{name: "empty body", body: ``, wantFields: []string{"body"}},
	{name: "whitespace body", body: " \n\t ", wantFields: []string{"body"}},
	{name: "array body", body: `[` + valid() + `]`, wantFields: []string{"body"}},
	{name: "string body", body: `"user logged in"`, wantFields: []string{"body"}},
	{name: "number body", body: `42`, wantFields: []string{"body"}},
	{name: "null body", body: `null`, wantFields: []string{"body"}},

	// message
	{name: "missing message", body: ev("level", `"INFO"`, "source", `"api"`), wantFields: []string{"message"}},
	{name: "null message", body: ev("message", `null`, "level", `"INFO"`, "source", `"api"`), wantFields: []string{"message"}},
	{name: "empty message", body: ev("message", `""`, "level", `"INFO"`, "source", `"api"`), wantFields: []string{"message"}},
	{name: "blank message", body: ev("message", `"   "`, "level", `"INFO"`, "source", `"api"`), wantFields: []string{"message"}},
	{name: "whitespace-only message", body: ev("message", `"\n\t "`, "level", `"INFO"`, "source", `"api"`), wantFields: []string{"message"}},
	{
		name: "message one byte over the limit", body: ev("message", quoted(strings.Repeat("m", 17)), "level", `"INFO"`, "source", `"api"`),
		lim: limits(func(l *event.Limits) { l.MaxMessageBytes = 16 }), wantFields: []string{"message"},
	},
	{
		name: "message over the limit counted in bytes not runes", body: ev("message", quoted(strings.Repeat("é", 9)), "level", `"INFO"`, "source", `"api"`),
		lim: limits(func(l *event.Limits) { l.MaxMessageBytes = 16 }), wantFields: []string{"message"},
	},
	{name: "message is a number", body: ev("message", `42`, "level", `"INFO"`, "source", `"api"`), wantFields: []string{"message"}},
	{name: "message is an object", body: ev("message", `{"text":"hi"}`, "level", `"INFO"`, "source", `"api"`), wantFields: []string{"message"}},
	{name: "message is an array", body: ev("message", `["hi"]`, "level", `"INFO"`, "source", `"api"`), wantFields: []string{"message"}},
	{name: "message is a boolean", body: ev("message", `true`, "level", `"INFO"`, "source", `"api"`), wantFields: []string{"message"}},

	// level
	{name: "missing level", body: ev("message", `"hi"`, "source", `"api"`), wantFields: []string{"level"}},
	{name: "blank level", body: ev("message", `"hi"`, "level", `"  "`, "source", `"api"`), wantFields: []string{"level"}},
	{name: "unknown level", body: ev("message", `"hi"`, "level", `"LOUD"`, "source", `"api"`), wantFields: []string{"level"}},
	{name: "level WARNINGS is not an alias", body: ev("message", `"hi"`, "level", `"WARNINGS"`, "source", `"api"`), wantFields: []string{"level"}},
	{name: "level is a number", body: ev("message", `"hi"`, "level", `3`, "source", `"api"`), wantFields: []string{"level"}},
	{name: "level is an object", body: ev("message", `"hi"`, "level", `{"name":"INFO"}`, "source", `"api"`), wantFields: []string{"level"}},

	// source
	{name: "missing source", body: ev("message", `"hi"`, "level", `"INFO"`), wantFields: []string{"source"}},
	{name: "blank source", body: ev("message", `"hi"`, "level", `"INFO"`, "source", `"   "`), wantFields: []string{"source"}},
	{
		name: "source over MaxSourceBytes", body: ev("message", `"hi"`, "level", `"INFO"`, "source", quoted(strings.Repeat("s", 256))),
		wantFields: []string{"source"},
	},
	{name: "source is a number", body: ev("message", `"hi"`, "level", `"INFO"`, "source", `7`), wantFields: []string{"source"}},

	// timestamp
	{name: "timestamp not RFC 3339", body: valid("timestamp", `"2024-01-15 10:30:00"`), wantFields: []string{"timestamp"}},
	{name: "timestamp without zone", body: valid("timestamp", `"2024-01-15T10:30:00"`), wantFields: []string{"timestamp"}},
	{name: "timestamp prose", body: valid("timestamp", `"yesterday"`), wantFields: []string{"timestamp"}},
	{name: "timestamp empty string", body: valid("timestamp", `""`), wantFields: []string{"timestamp"}},
	{name: "timestamp as unix number", body: valid("timestamp", `1705314600`), wantFields: []string{"timestamp"}},
	{
		name: "timestamp beyond MaxFutureSkew", body: valid("timestamp", quoted(now.Add(5*time.Minute+time.Second).Format(time.RFC3339Nano))),
		wantFields: []string{"timestamp"},
	},
	{name: "timestamp offset +24:00", body: valid("timestamp", `"2024-01-15T10:30:00+24:00"`), wantFields: []string{"timestamp"}},
	{name: "timestamp offset minutes 60", body: valid("timestamp", `"2024-01-15T10:30:00+01:60"`), wantFields: []string{"timestamp"}},
	{name: "timestamp second 60 not at the end of a UTC day", body: valid("timestamp", `"2016-12-31T10:30:60Z"`), wantFields: []string{"timestamp"}},
	{name: "timestamp second 61", body: valid("timestamp", `"2016-12-31T23:59:61Z"`), wantFields: []string{"timestamp"}},
	{name: "timestamp year 0", body: valid("timestamp", `"0000-06-01T00:00:00Z"`), wantFields: []string{"timestamp"}},
	{name: "timestamp Go's zero time", body: valid("timestamp", `"0001-01-01T00:00:00Z"`), wantFields: []string{"timestamp"}},
	{
		name: "timestamp older than the retention", body: valid("timestamp", quoted(now.Add(-8*24*time.Hour).Format(time.RFC3339Nano))),
		lim: limits(func(l *event.Limits) { l.Retention = 7 * 24 * time.Hour }), wantFields: []string{"timestamp"},
	},
	{name: "metadata number beyond numeric", body: valid("metadata", `{"n":1e1000000}`), wantFields: []string{"metadata"}},
	{name: "metadata nested number beyond numeric", body: valid("metadata", `{"a":[1,{"b":-2.5e-20000}]}`), wantFields: []string{"metadata"}},

	// metadata
	{name: "metadata is an array", body: valid("metadata", `[1,2]`), wantFields: []string{"metadata"}},
	{name: "metadata is a string", body: valid("metadata", `"k=v"`), wantFields: []string{"metadata"}},
	{name: "metadata is a number", body: valid("metadata", `1`), wantFields: []string{"metadata"}},
	{name: "metadata is a boolean", body: valid("metadata", `false`), wantFields: []string{"metadata"}},
	{
		name: "metadata too many keys", body: valid("metadata", `{"a":1,"b":2,"c":3}`),
		lim: limits(func(l *event.Limits) { l.MaxMetadataKeys = 2 }), wantFields: []string{"metadata"},
	},
	{
		name: "metadata too many bytes", body: valid("metadata", `{"k":"`+strings.Repeat("v", 40)+`"}`),
		lim: limits(func(l *event.Limits) { l.MaxMetadataBytes = 32 }), wantFields: []string{"metadata"},
	},
	{name: "metadata value contains NUL escape", body: valid("metadata", `{"k":"a\u0000b"}`), wantFields: []string{"metadata"}},
	{name: "metadata key contains NUL escape", body: valid("metadata", `{"a\u0000":1}`), wantFields: []string{"metadata"}},
	{name: "nested metadata contains NUL escape", body: valid("metadata", `{"a":{"b":["\u0000"]}}`), wantFields: []string{"metadata"}},

	// id
	{name: "id not a UUID", body: valid("id", `"not-a-uuid"`), wantFields: []string{"id"}},
	{name: "id nil UUID", body: valid("id", `"00000000-0000-0000-0000-000000000000"`), wantFields: []string{"id"}},
	{name: "id is a number", body: valid("id", `12345`), wantFields: []string{"id"}},

	// traceId
	{name: "traceId too long", body: valid("traceId", quoted(strings.Repeat("t", 129))), wantFields: []string{"traceId"}},
	{name: "traceId is a number", body: valid("traceId", `42`), wantFields: []string{"traceId"}},

	// Every problem at once, reported together in field order.
	{
		name: "several errors together",
		body: ev("message", `""`, "level", `"LOUD"`, "source", `" "`, "timestamp", `"nope"`,
			"metadata", `[]`, "id", `"x"`, "traceId", `5`),
		wantFields: []string{"message", "level", "source", "timestamp", "metadata", "id", "traceId"},
	},
	{
		name:       "empty object",
		body:       `{}`,
		wantFields: []string{"message", "level", "source"},
	},
}

func TestParseRejectsInvalidEvents(t *testing.T) {
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			lim := tc.lim
			if lim == (event.Limits{}) {
				lim = event.DefaultLimits()
			}
			got, err := event.Parse([]byte(tc.body), defaults(), lim)
			if err == nil {
				t.Fatalf("Parse(%s) accepted the event %+v, want errors on %v", tc.body, got, tc.wantFields)
			}
			if fields := fieldsOf(t, err); !reflect.DeepEqual(fields, tc.wantFields) {
				t.Errorf("Parse(%s) error fields %v, want %v (error: %v)", tc.body, fields, tc.wantFields, err)
			}
			if !reflect.DeepEqual(got, logs.Event{}) {
				t.Errorf("Parse returned a non-zero event %+v alongside an error", got)
			}
			// The text shown to clients names every field.
			for _, f := range tc.wantFields {
				if !strings.Contains(err.Error(), f+": ") {
					t.Errorf("error text %q does not name field %q", err.Error(), f)
				}
			}
		})
	}
}

func TestParseMinimalEventGetsDefaults(t *testing.T) {
	got, err := event.Parse([]byte(valid()), defaults(), event.DefaultLimits())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got.ID == uuid.Nil || got.ID.Version() != 7 || got.ID.Variant() != uuid.RFC4122 {
		t.Errorf("id %s is not a UUIDv7 (version %d, variant %v)", got.ID, got.ID.Version(), got.ID.Variant())
	}
	if !got.Timestamp.Equal(now) {
		t.Errorf("timestamp %v, want the time of receipt %v", got.Timestamp, now)
	}
	if !got.ReceivedAt.Equal(now) {
		t.Errorf("receivedAt %v, want %v", got.ReceivedAt, now)
	}
	if got.TraceID != defaultTrace {
		t.Errorf("traceId %q, want the default %q", got.TraceID, defaultTrace)
	}
	if got.Level != logs.LevelInfo || got.Source != "auth-service" || got.Message != "user logged in" {
		t.Errorf("level/source/message = %q/%q/%q", got.Level, got.Source, got.Message)
	}
	if got.Metadata != nil {
		t.Errorf("metadata %s, want none", got.Metadata)
	}
}

func TestParseGeneratesDistinctIDs(t *testing.T) {
	seen := map[uuid.UUID]bool{}
	for range 100 {
		got, err := event.Parse([]byte(valid()), defaults(), event.DefaultLimits())
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if seen[got.ID] {
			t.Fatalf("id %s generated twice", got.ID)
		}
		seen[got.ID] = true
	}
}

func TestParseTimesAreUTC(t *testing.T) {
	zone := time.FixedZone("UTC+2", 2*3600)
	def := event.Defaults{Now: now.In(zone)}
	got, err := event.Parse([]byte(valid()), def, event.DefaultLimits())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got.ReceivedAt.Location() != time.UTC || got.Timestamp.Location() != time.UTC {
		t.Errorf("receivedAt %v / timestamp %v, want UTC", got.ReceivedAt, got.Timestamp)
	}
	if !got.ReceivedAt.Equal(now) {
		t.Errorf("receivedAt %v, want %v", got.ReceivedAt, now)
	}
}

func TestParseLevelIsCaseInsensitive(t *testing.T) {
	tests := []struct {
		in   string
		want logs.Level
	}{
		{"trace", logs.LevelTrace},
		{"Debug", logs.LevelDebug},
		{"info", logs.LevelInfo},
		{"INFO", logs.LevelInfo},
		{" warn ", logs.LevelWarn},
		{"WARNING", logs.LevelWarn},
		{"warning", logs.LevelWarn},
		{"Error", logs.LevelError},
		{"fatal", logs.LevelFatal},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			body := ev("message", `"hi"`, "level", quoted(tc.in), "source", `"api"`)
			got, err := event.Parse([]byte(body), defaults(), event.DefaultLimits())
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got.Level != tc.want {
				t.Errorf("level %q parsed as %q, want %q", tc.in, got.Level, tc.want)
			}
		})
	}
}

func TestParseAcceptsAndNormalises(t *testing.T) {
	clientID := uuid.MustParse("3f0c8b1e-4a2d-4c6e-9b7a-1d2e3f405162")
	tests := []struct {
		name  string
		body  string
		lim   event.Limits
		check func(t *testing.T, got logs.Event)
	}{
		{
			name: "message exactly at the limit",
			body: ev("message", quoted(strings.Repeat("m", 16)), "level", `"INFO"`, "source", `"api"`),
			lim:  limits(func(l *event.Limits) { l.MaxMessageBytes = 16 }),
			check: func(t *testing.T, got logs.Event) {
				if len(got.Message) != 16 {
					t.Errorf("message length %d, want 16", len(got.Message))
				}
			},
		},
		{
			name: "message whitespace is kept verbatim",
			body: ev("message", `"  indented\n"`, "level", `"INFO"`, "source", `"api"`),
			check: func(t *testing.T, got logs.Event) {
				if got.Message != "  indented\n" {
					t.Errorf("message %q, want %q", got.Message, "  indented\n")
				}
			},
		},
		{
			name: "source is trimmed",
			body: ev("message", `"hi"`, "level", `"INFO"`, "source", `"  payment-api  "`),
			check: func(t *testing.T, got logs.Event) {
				if got.Source != "payment-api" {
					t.Errorf("source %q, want %q", got.Source, "payment-api")
				}
			},
		},
		{
			name: "source exactly MaxSourceBytes",
			body: ev("message", `"hi"`, "level", `"INFO"`, "source", quoted(strings.Repeat("s", 255))),
			check: func(t *testing.T, got logs.Event) {
				if len(got.Source) != 255 {
					t.Errorf("source length %d, want 255", len(got.Source))
				}
			},
		},
		{
			name: "past timestamp kept to the microsecond in UTC",
			body: valid("timestamp", `"2020-02-29T12:00:00.123456789+02:00"`),
			check: func(t *testing.T, got logs.Event) {
				want := time.Date(2020, 2, 29, 10, 0, 0, 123456000, time.UTC)
				if !got.Timestamp.Equal(want) || got.Timestamp.Location() != time.UTC {
					t.Errorf("timestamp %v, want %v", got.Timestamp, want)
				}
				if !got.ReceivedAt.Equal(now) {
					t.Errorf("receivedAt %v, want the time of receipt %v", got.ReceivedAt, now)
				}
			},
		},
		{
			name: "timestamp exactly MaxFutureSkew ahead",
			body: valid("timestamp", quoted(now.Add(5*time.Minute).Format(time.RFC3339Nano))),
			check: func(t *testing.T, got logs.Event) {
				if !got.Timestamp.Equal(now.Add(5 * time.Minute)) {
					t.Errorf("timestamp %v, want %v", got.Timestamp, now.Add(5*time.Minute))
				}
			},
		},
		{
			name: "null timestamp means time of receipt",
			body: valid("timestamp", `null`),
			check: func(t *testing.T, got logs.Event) {
				if !got.Timestamp.Equal(now) {
					t.Errorf("timestamp %v, want %v", got.Timestamp, now)
				}
			},
		},
		{
			name: "nested metadata accepted and compacted",
			body: valid("metadata", "{ \"user\" : { \"id\" : 42, \"roles\" : [ \"a\", \"b\" ] },\n \"ok\": true }"),
			check: func(t *testing.T, got logs.Event) {
				want := `{"user":{"id":42,"roles":["a","b"]},"ok":true}`
				if string(got.Metadata) != want {
					t.Errorf("metadata %s, want %s", got.Metadata, want)
				}
			},
		},
		{
			name: "metadata exactly MaxMetadataKeys",
			body: valid("metadata", `{"a":1,"b":2}`),
			lim:  limits(func(l *event.Limits) { l.MaxMetadataKeys = 2 }),
			check: func(t *testing.T, got logs.Event) {
				if string(got.Metadata) != `{"a":1,"b":2}` {
					t.Errorf("metadata %s", got.Metadata)
				}
			},
		},
		{
			name: "empty metadata object kept",
			body: valid("metadata", `{}`),
			check: func(t *testing.T, got logs.Event) {
				if string(got.Metadata) != `{}` {
					t.Errorf("metadata %s, want {}", got.Metadata)
				}
			},
		},
		{
			name: "null metadata means none",
			body: valid("metadata", `null`),
			check: func(t *testing.T, got logs.Event) {
				if got.Metadata != nil {
					t.Errorf("metadata %s, want none", got.Metadata)
				}
			},
		},
		{
			name: "client id kept",
			body: valid("id", quoted(clientID.String())),
			check: func(t *testing.T, got logs.Event) {
				if got.ID != clientID {
					t.Errorf("id %s, want the client's %s", got.ID, clientID)
				}
			},
		},
		{
			name: "client id in upper case kept",
			body: valid("id", quoted(strings.ToUpper(clientID.String()))),
			check: func(t *testing.T, got logs.Event) {
				if got.ID != clientID {
					t.Errorf("id %s, want the client's %s", got.ID, clientID)
				}
			},
		},
		{
			name: "traceId given overrides the default",
			body: valid("traceId", `"  4bf92f3577b34da6a3ce929d0e0e4736 "`),
			check: func(t *testing.T, got logs.Event) {
				if got.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
					t.Errorf("traceId %q, want the client's, trimmed", got.TraceID)
				}
			},
		},
		{
			name: "blank traceId keeps the default",
			body: valid("traceId", `"  "`),
			check: func(t *testing.T, got logs.Event) {
				if got.TraceID != defaultTrace {
					t.Errorf("traceId %q, want the default %q", got.TraceID, defaultTrace)
				}
			},
		},
		{
			name: "traceId exactly MaxTraceIDBytes",
			body: valid("traceId", quoted(strings.Repeat("t", 128))),
			check: func(t *testing.T, got logs.Event) {
				if len(got.TraceID) != 128 {
					t.Errorf("traceId length %d, want 128", len(got.TraceID))
				}
			},
		},
		{
			name: "unknown fields are ignored",
			body: valid("service", `"billing"`, "tags", `["a"]`),
			check: func(t *testing.T, got logs.Event) {
				if got.Message != "user logged in" {
					t.Errorf("message %q", got.Message)
				}
			},
		},
		{
			name: "surrounding whitespace of the body is ignored",
			body: "\n  " + valid() + "  \n",
			check: func(t *testing.T, got logs.Event) {
				if got.Source != "auth-service" {
					t.Errorf("source %q", got.Source)
				}
			},
		},
		{
			name: "NUL in message repaired to U+FFFD",
			body: ev("message", `"before\u0000after"`, "level", `"INFO"`, "source", `"api"`),
			check: func(t *testing.T, got logs.Event) {
				if got.Message != "before\uFFFDafter" {
					t.Errorf("message %q, want %q", got.Message, "before\uFFFDafter")
				}
			},
		},
		{
			name: "NUL in source and traceId repaired to U+FFFD",
			body: ev("message", `"hi"`, "level", `"INFO"`, "source", `"a\u0000b"`, "traceId", `"t\u0000"`),
			check: func(t *testing.T, got logs.Event) {
				if got.Source != "a\uFFFDb" || got.TraceID != "t\uFFFD" {
					t.Errorf("source %q traceId %q, want NUL replaced by U+FFFD", got.Source, got.TraceID)
				}
			},
		},
		{
			name: "invalid UTF-8 in message repaired",
			body: ev("message", "\"caf\xe9 \xff\xfe ok\"", "level", `"INFO"`, "source", `"api"`),
			check: func(t *testing.T, got logs.Event) {
				if !utf8.ValidString(got.Message) {
					t.Fatalf("message %q is not valid UTF-8", got.Message)
				}
				if !strings.HasPrefix(got.Message, "caf\uFFFD") || !strings.HasSuffix(got.Message, " ok") {
					t.Errorf("message %q, want the bad bytes replaced by U+FFFD", got.Message)
				}
			},
		},
		{
			name: "lone surrogate escape in message repaired",
			body: ev("message", `"x\ud800y"`, "level", `"INFO"`, "source", `"api"`),
			check: func(t *testing.T, got logs.Event) {
				if got.Message != "x\uFFFDy" {
					t.Errorf("message %q, want %q", got.Message, "x\uFFFDy")
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lim := tc.lim
			if lim == (event.Limits{}) {
				lim = event.DefaultLimits()
			}
			got, err := event.Parse([]byte(tc.body), defaults(), lim)
			if err != nil {
				t.Fatalf("Parse(%s): %v", tc.body, err)
			}
			tc.check(t, got)
		})
	}
}

// The limits bound what is stored, so text repaired by Parse (each NUL
// byte becomes the three bytes of U+FFFD) must still fit them: a field at
// its limit with NUL bytes in it must be rejected, or repaired within the
// limit.
func TestParseRepairedTextStaysWithinLimits(t *testing.T) {
	lim := limits(func(l *event.Limits) {
		l.MaxMessageBytes = 16
		l.MaxSourceBytes = 8
		l.MaxTraceIDBytes = 8
	})
	nuls := func(n int) string { return quoted(strings.Repeat("\x00", n)) }
	tests := []struct {
		name, field, body string
		max               int
		get               func(logs.Event) string
	}{
		{"message", "message", ev("message", nuls(16), "level", `"INFO"`, "source", `"api"`), 16,
			func(e logs.Event) string { return e.Message }},
		{"source", "source", ev("message", `"hi"`, "level", `"INFO"`, "source", nuls(8)), 8,
			func(e logs.Event) string { return e.Source }},
		{"traceId", "traceId", ev("message", `"hi"`, "level", `"INFO"`, "source", `"api"`, "traceId", nuls(8)), 8,
			func(e logs.Event) string { return e.TraceID }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := event.Parse([]byte(tc.body), defaults(), lim)
			if err != nil {
				if fields := fieldsOf(t, err); !reflect.DeepEqual(fields, []string{tc.field}) {
					t.Errorf("error fields %v, want [%s]", fields, tc.field)
				}
				return
			}
			if v := tc.get(got); len(v) > tc.max {
				t.Errorf("accepted %s of %d bytes after repair, more than the limit of %d", tc.field, len(v), tc.max)
			}
		})
	}
}

// jsonbProblem says why PostgreSQL jsonb would refuse b, or "" when it
// would take it: jsonb wants valid UTF-8, no \u0000 escape and no unpaired
// UTF-16 surrogate escape. b must be valid JSON.
func jsonbProblem(b []byte) string {
	if !utf8.Valid(b) {
		return "invalid UTF-8"
	}
	hex := func(s []byte) (rune, bool) {
		if len(s) < 4 {
			return 0, false
		}
		var r rune
		for _, c := range s[:4] {
			r <<= 4
			switch {
			case c >= '0' && c <= '9':
				r |= rune(c - '0')
			case c >= 'a' && c <= 'f':
				r |= rune(c-'a') + 10
			case c >= 'A' && c <= 'F':
				r |= rune(c-'A') + 10
			default:
				return 0, false
			}
		}
		return r, true
	}
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !inString {
			if c == '"' {
				inString = true
			}
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			i++
			if i >= len(b) || b[i] != 'u' {
				continue
			}
			r, ok := hex(b[i+1:])
			if !ok {
				return "bad \\u escape"
			}
			i += 4
			switch {
			case r == 0:
				return `\u0000 escape`
			case r >= 0xDC00 && r <= 0xDFFF:
				return "unpaired low surrogate escape"
			case r >= 0xD800 && r <= 0xDBFF:
				if i+2 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' {
					return "unpaired high surrogate escape"
				}
				lo, ok := hex(b[i+3:])
				if !ok || lo < 0xDC00 || lo > 0xDFFF {
					return "unpaired high surrogate escape"
				}
				i += 6
			}
		}
	}
	return ""
}

// Metadata is stored as PostgreSQL jsonb. An event Parse accepts must be
// storable, or the producer answers 202 for an event the consumer can only
// dead-letter; and metadata jsonb takes must not be refused.
func TestParseMetadataIsStorable(t *testing.T) {
	tests := []struct {
		name     string
		metadata string
		// mustAccept: jsonb takes it, so Parse must too.
		mustAccept bool
	}{
		{name: "invalid UTF-8 byte in a value", metadata: "{\"k\":\"caf\xe9\"}"},
		{name: "invalid UTF-8 byte in a key", metadata: "{\"\xff\":1}"},
		{name: "unpaired high surrogate escape", metadata: `{"k":"\ud800"}`},
		{name: "unpaired low surrogate escape", metadata: `{"k":"\udc00x"}`},
		{name: "valid surrogate pair escape", metadata: `{"k":"\ud83d\ude00"}`, mustAccept: true},
		{name: "escaped backslash before u0000", metadata: `{"path":"C:\\u0000dir"}`, mustAccept: true},
		{name: "non-ASCII UTF-8", metadata: `{"city":"Zürich","emoji":"😀"}`, mustAccept: true},
		{name: "a number past numeric's range", metadata: `{"n":1e1000000}`},
		{name: "a number with too many decimals", metadata: `{"n":1.0e-16383}`},
		{name: "numbers at numeric's limits", metadata: `{"big":1e131071,"small":-1e-16383,"s":"1e1000000"}`, mustAccept: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := event.Parse([]byte(valid("metadata", tc.metadata)), defaults(), event.DefaultLimits())
			if err != nil {
				if tc.mustAccept {
					t.Fatalf("Parse rejected metadata %s that PostgreSQL jsonb stores: %v", tc.metadata, err)
				}
				if fields := fieldsOf(t, err); !reflect.DeepEqual(fields, []string{"metadata"}) {
					t.Errorf("error fields %v, want [metadata]", fields)
				}
				return
			}
			if p := jsonbProblem(got.Metadata); p != "" {
				t.Errorf("Parse accepted metadata %q that PostgreSQL jsonb refuses (%s)", got.Metadata, p)
			}
		})
	}
}

// Timestamps: any past time from year 1 (unless older than the retention),
// a leap second read as the last microsecond of its minute, offsets as RFC
// 3339 has them.
func TestParseTimestamps(t *testing.T) {
	week := 7 * 24 * time.Hour
	for _, tc := range []struct {
		in, want string
		lim      event.Limits
	}{
		{in: "1969-12-31T23:59:59Z", want: "1969-12-31T23:59:59Z"},
		{in: "0001-01-01T00:00:01Z", want: "0001-01-01T00:00:01Z"},
		{in: "1900-03-01T12:00:00.5-05:00", want: "1900-03-01T17:00:00.5Z"},
		{in: "2016-12-31T23:59:60Z", want: "2016-12-31T23:59:59.999999Z"},
		{in: "2016-12-31T23:59:60.5Z", want: "2016-12-31T23:59:59.999999Z"},
		{in: "2017-01-01T00:59:60+01:00", want: "2016-12-31T23:59:59.999999Z"},
		{in: "2024-01-15T10:30:00+23:59", want: "2024-01-14T10:31:00Z"},
		{in: "2024-01-15T10:30:00.1234567Z", want: "2024-01-15T10:30:00.123456Z"},
		// Within the retention, and older with the flag that allows it.
		{in: "2024-01-09T10:30:00Z", want: "2024-01-09T10:30:00Z", lim: event.Limits{Retention: week}},
		{in: "2020-01-01T00:00:00Z", want: "2020-01-01T00:00:00Z", lim: event.Limits{Retention: week, AcceptExpired: true}},
	} {
		lim := tc.lim
		lim.MaxFutureSkew = 5 * time.Minute
		got, problem := event.ParseTimestamp(tc.in, now, lim)
		if problem != "" || got.Format(time.RFC3339Nano) != tc.want {
			t.Errorf("ParseTimestamp(%s) = %s %q, want %s", tc.in, got.Format(time.RFC3339Nano), problem, tc.want)
		}
	}
	_, problem := event.ParseTimestamp("2024-01-01T00:00:00Z", now, event.Limits{Retention: week})
	if !strings.Contains(problem, "older than the retention of 168h0m0s") || !strings.Contains(problem, "--accept-older-than-retention") {
		t.Errorf("an event older than the retention: %q", problem)
	}
}

func TestInvalidErrorText(t *testing.T) {
	_, err := event.Parse([]byte(ev("level", `"INFO"`, "source", `"api"`)), defaults(), event.DefaultLimits())
	if err == nil {
		t.Fatal("Parse accepted an event without a message")
	}
	if !strings.HasPrefix(err.Error(), "invalid event: message: ") {
		t.Errorf("error text %q, want it to start with %q", err.Error(), "invalid event: message: ")
	}

	inv := event.Invalid{{Field: "message", Problem: "is required"}, {Field: "level", Problem: "unknown"}}
	if got, want := inv.Error(), "invalid event: message: is required; level: unknown"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	// The details of a 400 answer are these field errors in JSON.
	b, err := json.Marshal(inv)
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"field":"message","problem":"is required"},{"field":"level","problem":"unknown"}]`; string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
}

// sameEvent compares two events; times by instant, metadata by JSON value.
func sameEvent(t *testing.T, got, want logs.Event) {
	t.Helper()
	if got.ID != want.ID || got.Level != want.Level || got.Source != want.Source ||
		got.Message != want.Message || got.TraceID != want.TraceID {
		t.Errorf("event %+v, want %+v", got, want)
	}
	if !got.Timestamp.Equal(want.Timestamp) || !got.ReceivedAt.Equal(want.ReceivedAt) {
		t.Errorf("times %v/%v, want %v/%v", got.Timestamp, got.ReceivedAt, want.Timestamp, want.ReceivedAt)
	}
	if (got.Metadata == nil) != (want.Metadata == nil) {
		t.Fatalf("metadata %q, want %q", got.Metadata, want.Metadata)
	}
	if want.Metadata != nil {
		var g, w any
		if err := json.Unmarshal(got.Metadata, &g); err != nil {
			t.Fatalf("metadata %q: %v", got.Metadata, err)
		}
		if err := json.Unmarshal(want.Metadata, &w); err != nil {
			t.Fatalf("metadata %q: %v", want.Metadata, err)
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("metadata %s, want %s", got.Metadata, want.Metadata)
		}
	}
}

func TestMarshalUnmarshalRoundTrip(t *testing.T) {
	bodies := map[string]string{
		"minimal": valid(),
		"every field": valid("id", `"3f0c8b1e-4a2d-4c6e-9b7a-1d2e3f405162"`, "timestamp", `"2024-01-15T10:29:59.999999Z"`,
			"metadata", `{"user":{"id":42},"tags":["a","b"],"ratio":0.5,"ok":null}`, "traceId", `"abc123"`),
		"special characters": ev("message", `"<b>&</b> \u2028 line\nbreak \"quoted\" 😀"`, "level", `"FATAL"`,
			"source", `"svc/\u00e9"`, "metadata", `{"html":"<a href=\"x\">&amp;</a>"}`),
		"repaired text": ev("message", `"a\u0000b"`, "level", `"trace"`, "source", `"api"`),
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			want, err := event.Parse([]byte(body), defaults(), event.DefaultLimits())
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			b, err := event.Encode(&want)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			got, err := event.Decode(b)
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", b, err)
			}
			sameEvent(t, got, want)
			if got.Timestamp.Location() != time.UTC {
				t.Errorf("timestamp %v not in UTC after the round trip", got.Timestamp)
			}
		})
	}
}

func TestUnmarshalRejectsCorruptRecords(t *testing.T) {
	good := map[string]any{
		"id":         "3f0c8b1e-4a2d-4c6e-9b7a-1d2e3f405162",
		"timestamp":  "2024-01-15T10:30:00Z",
		"level":      "INFO",
		"source":     "api",
		"message":    "hi",
		"receivedAt": "2024-01-15T10:30:00Z",
	}
	record := func(key string, value any) []byte {
		m := map[string]any{}
		for k, v := range good {
			m[k] = v
		}
		if value == nil {
			delete(m, key)
		} else {
			m[key] = value
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if _, err := event.Decode(record("", nil)); err != nil {
		t.Fatalf("Unmarshal of the good record: %v", err)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"not JSON", []byte("not json")},
		{"truncated JSON", []byte(`{"id":"3f0c8b1e-4a2d-4c6e-9b7a-1d2e3f405162",`)},
		{"JSON array", []byte(`[1,2]`)},
		{"missing id", record("id", nil)},
		{"nil id", record("id", uuid.Nil.String())},
		{"malformed id", record("id", "nope")},
		{"unknown level", record("level", "LOUD")},
		{"lower-case level", record("level", "info")},
		{"missing level", record("level", nil)},
		{"blank source", record("source", "   ")},
		{"missing source", record("source", nil)},
		{"missing timestamp", record("timestamp", nil)},
		{"zero timestamp", record("timestamp", "0001-01-01T00:00:00Z")},
		{"malformed timestamp", record("timestamp", "yesterday")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := event.Decode(tc.b)
			if err == nil {
				t.Fatalf("Unmarshal(%s) accepted %+v", tc.b, got)
			}
			if !strings.HasPrefix(err.Error(), "decode event: ") {
				t.Errorf("error %q does not say it is an event decoding error", err)
			}
			if !reflect.DeepEqual(got, logs.Event{}) {
				t.Errorf("Unmarshal returned a non-zero event %+v alongside an error", got)
			}
		})
	}
}

func TestDefaultLimits(t *testing.T) {
	want := event.Limits{
		MaxMessageBytes:  65536,
		MaxSourceBytes:   255,
		MaxMetadataKeys:  64,
		MaxMetadataBytes: 16384,
		MaxTraceIDBytes:  128,
		MaxFutureSkew:    5 * time.Minute,
	}
	if got := event.DefaultLimits(); got != want {
		t.Errorf("DefaultLimits() = %+v, want %+v", got, want)
	}
}

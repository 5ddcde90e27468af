package event_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/store/logs"
)

// codecSeeds are bodies where a hand-written JSON reader could part from
// encoding/json: key matching, repeated keys, escapes, invalid UTF-8, the
// grammar's corners, nesting depth and metadata normalisation.
func codecSeeds() []string {
	base := `"message":"hi","level":"INFO","source":"api"`
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	return []string{
		benchEvent,
		`{"MESSAGE":"hi","Level":"info","SOURCE":"api","TraceID":"t","ID":"3f0c8b1e-4a2d-4c6e-9b7a-1d2e3f405162"}`,
		`{"meſſage":"hi","level":"INFO","ſource":"api","timeſtamp":"2024-01-15T10:00:00Z"}`,
		`{"me\u017F\u017Fage":"hi","level":"INFO","source":"api","trace\u212Aid":"k"}`,
		`{"\u006dessage":"hi","lev\u0065l":"INFO","source":"api"}`,
		`{"message":"a","message":"b","level":"INFO","level":"warn","source":"api"}`,
		`{"message":"a","message":null,"level":"INFO","source":"api"}`,
		`{"message":"a","message":7,"level":"INFO","source":"api"}`,
		"{" + base + `,"traceId":"a","traceId":null,"id":null,"timestamp":null}`,
		"{" + base + `,"metadata":{"b":1,"a":2,"b":3}}`,
		"{" + base + `,"metadata":{"b":1,"a":"\u00e9","b":{"c":[1,"x"]}}}`,
		"{" + base + `,"metadata":{"b":"\u0000","b":1}}`,
		"{" + base + `,"metadata":{"k":"\ud800\udc00 \udc00 \ud800\u0041 \ud800","\u00e9":"\/\b\f\n\r\t\\\""}}`,
		"{" + base + `,"metadata":{"z":[1,{"y":"\u0000"}]}}`,
		"{" + base + `,"metadata":{"x":"\u2028<&>\u007f"}}`,
		"{" + base + ",\"metadata\":{\"\xff\":1,\"\xfe\":2,\"ok\":\"caf\xc3\xa9 \xed\xa0\x80\"}}",
		"{" + base + ",\"metadata\" : {\n \"a\" : [ 1 , 2.5e-3 , -0 , 1E+9 , true , false , null , { } , [ ] ] \n}\n}",
		"{" + base + `,"metadata":{"a":1,"b":2,"c":3,"d":4,"a":5}}`,
		"{" + base + `,"x":[1,2.5e-3,-0,true,false,null,{"a":[]}]}`,
		"{" + base + `,"x":01}`,
		"{" + base + `,"x":1.}`,
		"{" + base + `,"x":-}`,
		"{" + base + `,"x":1e}`,
		"{" + base + `,"x":.5}`,
		"{" + base + `,"x":tru}`,
		"{" + base + `,"x":nul}`,
		"{" + base + `,"x":"\x"}`,
		"{" + base + `,"x":"\u12"}`,
		"{" + base + ",\"x\":\"a\tb\"}",
		"{" + base + `,}`,
		"{" + base + `,"x"}`,
		"{" + base + `,"x":[1,]}`,
		"{" + base + `}}`,
		"{" + base + "}\u00a0\v",
		"{" + base + "}\x00",
		"{\"message\":\"\x7f\xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80\",\"level\":\"INFO\",\"source\":\"api\"}",
		`{"message":"\ud83d\ude00\ud83d","level":"\u0049NFO","source":"\u0000api"}`,
		`{"message":"hi","level":"INFO","source":"api","timestamp":"2024-01-15T10:00:00,5Z"}`,
		`{"message":"hi","level":"INFO","source":"api","timestamp":"2024-01-15T10:00:00.123456789-23:59"}`,
		`{"message":"hi","level":"INFO","source":"api","id":"{3f0c8b1e-4a2d-4c6e-9b7a-1d2e3f405162}"}`,
		`{"message":"hi","level":"INFO","source":"api","id":"urn:uuid:3f0c8b1e-4a2d-4c6e-9b7a-1d2e3f405162"}`,
		"{" + base + `,"x":` + nest(9999) + "}",
		"{" + base + `,"x":` + nest(10000) + "}",
	}
}

func parseSeeds(f *testing.F) {
	for _, tc := range invalidCases {
		f.Add([]byte(tc.body))
	}
	for _, s := range codecSeeds() {
		f.Add([]byte(s))
	}
}

// sameParse fails unless Parse answered as the encoding/json version did.
// Generated ids differ by nature; both must then be version 7.
func sameParse(t *testing.T, body []byte, got logs.Event, gotErr error, want logs.Event, wantErr error) {
	t.Helper()
	if !reflect.DeepEqual(gotErr, wantErr) {
		t.Fatalf("Parse(%q) error\n got: %v\nwant: %v", body, gotErr, wantErr)
	}
	if got.ID != want.ID && got.ID.Version() == 7 && want.ID.Version() == 7 {
		got.ID, want.ID = uuid.Nil, uuid.Nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse(%q)\n got: %#v\nwant: %#v", body, got, want)
	}
}

// Parse must accept, refuse and repair exactly as its encoding/json
// version did, with the same texts, under the default and tight limits.
func FuzzValidateMatchesEncodingJSON(f *testing.F) {
	parseSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		def := event.Defaults{Now: now, TraceID: "t-default"}
		for _, lim := range []event.Limits{event.DefaultLimits(), tightLimits} {
			got, gotErr := event.Parse(body, def, lim)
			want, wantErr := refParse(body, def, lim)
			sameParse(t, body, got, gotErr, want, wantErr)
		}
	})
}

// The round trip through a Kafka record is exact, the record is
// encoding/json's encoding of the event (HTML escaping off), and the
// encoding/json decoder reads it as Decode does.
func FuzzEncodeDecode(f *testing.F) {
	parseSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := event.Parse(body, event.Defaults{Now: now, TraceID: "t-default"}, event.DefaultLimits())
		if err != nil {
			return
		}
		b, err := event.Encode(&e)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", e, err)
		}
		if want, err := refEncode(&e); err != nil || !bytes.Equal(b, want) {
			t.Fatalf("Encode(%+v)\n got: %s\nwant: %s (%v)", e, b, want, err)
		}
		back, err := event.Decode(b)
		if err != nil {
			t.Fatalf("Decode(%s): %v", b, err)
		}
		if !reflect.DeepEqual(back, e) {
			t.Fatalf("Decode(Encode(e)) differs\n got: %#v\nwant: %#v", back, e)
		}
		if old, err := refDecode(b); err != nil || !reflect.DeepEqual(old, e) {
			t.Fatalf("encoding/json decodes %s as %#v, %v", b, old, err)
		}
	})
}

// recordSeeds are Kafka record values: what Encode writes, and the odd
// records a foreign or older producer may leave on the topic.
func recordSeeds(f *testing.F) {
	good := `"id":"3f0c8b1e-4a2d-4c6e-9b7a-1d2e3f405162","timestamp":"2024-01-15T10:30:00Z","level":"INFO","source":"api","message":"hi"`
	for _, s := range []string{
		"{" + good + "}",
		"{" + good + `,"metadata":{"a":[1,2]},"traceId":"t","receivedAt":"2024-01-15T10:30:00.123456Z"}`,
		" {" + good + `,"metadata": { "a" : 1 } } `,
		"{" + good + `,"metadata":null,"traceId":null,"receivedAt":null}`,
		"{" + good + `,"metadata":"text","extra":{"x":[true]}}`,
		"{" + good + `,"html":"<&>","message":"\u003cb\u003e \ud800"}`,
		"{" + good + `,"level":null}`,
		"{" + good + `,"level":"info"}`,
		"{" + good + `,"level":3}`,
		"{" + good + `,"LEVEL":"WARN","Source":"other","ID":"3f0c8b1e-4a2d-4c6e-9b7a-1d2e3f405163"}`,
		"{" + good + `,"id":null,"timestamp":null,"source":null,"message":null}`,
		"{" + good + `,"timestamp":"\u0032024-01-15T10:30:00Z"}`,
		"{" + good + `,"timestamp":"2024-01-15T10:30:00+01:00"}`,
		"{" + good + `,"timestamp":"0001-01-01T00:00:00Z"}`,
		"{" + good + `,"timestamp":5}`,
		"{" + good + `,"id":"nope"}`,
		"{" + good + `,"source":" "}`,
		"{" + good + `,"message":5}`,
		"{" + good + "} x",
		`{"id":"3f0c8b1e-4a2d-4c6e-9b7a-1d2e3f405162"}`,
		`[1,2]`, `null`, `"x"`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	for _, s := range codecSeeds() {
		if e, err := event.Parse([]byte(s), defaults(), event.DefaultLimits()); err == nil {
			b, err := refEncode(&e)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
}

// Decode reads every record, good or bad, as its encoding/json version
// did, with the same error texts.
func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	recordSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, gotErr := event.Decode(b)
		want, wantErr := refDecode(b)
		if wantErr != nil {
			// The reference's copy of the wire type lives in this package.
			wantErr = errors.New(strings.ReplaceAll(wantErr.Error(), "event_test.wireEvent", "event.wireEvent"))
		}
		if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
			t.Fatalf("Decode(%q) error\n got: %v\nwant: %v", b, gotErr, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode(%q)\n got: %#v\nwant: %#v", b, got, want)
		}
	})
}

// ParseBatch answers as the batch handler did with encoding/json: the
// array decoded into raw elements, then each element parsed.
func FuzzBatchMatchesEncodingJSON(f *testing.F) {
	seeds := codecSeeds()
	for i := range seeds {
		f.Add([]byte("[" + seeds[i] + "," + seeds[(i+1)%len(seeds)] + "]"))
	}
	for _, s := range []string{
		`[]`, ` [ ] `, `[1,"x",null,[],{}]`, `[` + valid() + `,` + valid() + `,` + valid() + `,` + valid() + `]`,
		`[` + valid() + `,` + valid() + `,` + valid() + `,` + valid() + `,{]`, `[` + valid() + `,]`,
		`[` + valid() + `] x`, `[` + valid(), `{}`, `null`,
	} {
		f.Add([]byte(s))
	}
	const maxEvents = 3
	f.Fuzz(func(t *testing.T, body []byte) {
		def := event.Defaults{Now: now, TraceID: "t-default"}
		got, err := event.ParseBatch(body, def, tightLimits, maxEvents)
		var items []json.RawMessage
		wantErr := json.Unmarshal(body, &items)
		if wantErr == nil && (len(bytes.TrimSpace(body)) == 0 || bytes.TrimSpace(body)[0] != '[') {
			return // not an array: the handler answers before parsing
		}
		if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Fatalf("ParseBatch(%q) error\n got: %v\nwant: %v", body, err, wantErr)
		}
		if err != nil {
			return
		}
		if got.Len != len(items) {
			t.Fatalf("ParseBatch(%q) found %d elements, want %d", body, got.Len, len(items))
		}
		var events, rejected int
		for i, raw := range items[:min(len(items), maxEvents)] {
			want, wantErr := refParse(raw, def, tightLimits)
			if wantErr != nil {
				if rejected >= len(got.Rejected) {
					t.Fatalf("ParseBatch(%q) did not reject element %d: %v", body, i, wantErr)
				}
				r := got.Rejected[rejected]
				rejected++
				if r.Index != i || !bytes.Equal(r.Raw, raw) {
					t.Fatalf("ParseBatch(%q) rejected element %d %q, want %d %q", body, r.Index, r.Raw, i, raw)
				}
				sameParse(t, raw, logs.Event{}, r.Err, want, wantErr)
				continue
			}
			if events >= len(got.Events) {
				t.Fatalf("ParseBatch(%q) lost element %d", body, i)
			}
			sameParse(t, raw, got.Events[events], nil, want, nil)
			events++
		}
		if events != len(got.Events) || rejected != len(got.Rejected) {
			t.Fatalf("ParseBatch(%q) gave %d events and %d rejected, want %d and %d",
				body, len(got.Events), len(got.Rejected), events, rejected)
		}
	})
}

// A record is what operators read on the topic: the golden file is its
// exact form, HTML characters and non-ASCII text as sent.
func TestEncodeGolden(t *testing.T) {
	e := logs.Event{
		ID:         uuid.MustParse("3f0c8b1e-4a2d-4c6e-9b7a-1d2e3f405162"),
		Timestamp:  time.Date(2024, 1, 15, 10, 29, 58, 412000000, time.UTC),
		Level:      logs.LevelError,
		Source:     "payment-service",
		Message:    "charge <declined> & \"retried\"\tin 38 ms: café \u2028 \x01",
		Metadata:   json.RawMessage(`{"orderId":84512,"html":"<a href=\"x\">&amp;</a>","city":"Zürich"}`),
		TraceID:    "4bf92f3577b34da6",
		ReceivedAt: time.Date(2024, 1, 15, 10, 30, 0, 123456000, time.UTC),
	}
	got, err := event.Encode(&e)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/record.golden")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.TrimSuffix(want, []byte("\n"))) {
		t.Errorf("Encode =\n%s\nwant\n%s", got, want)
	}
}

// An event Encode cannot write faithfully is refused with encoding/json's
// reason, never written as a record the consumer would dead-letter.
func TestEncodeRefusesWhatJSONCannotHold(t *testing.T) {
	good, err := event.Parse([]byte(valid()), defaults(), event.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]func(e *logs.Event){
		"unknown level":      func(e *logs.Event) { e.Level = logs.Level(9) },
		"year 10000":         func(e *logs.Event) { e.Timestamp = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"negative year":      func(e *logs.Event) { e.ReceivedAt = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) },
		"zone of 24 hours":   func(e *logs.Event) { e.Timestamp = e.Timestamp.In(time.FixedZone("", 24*3600)) },
		"malformed metadata": func(e *logs.Event) { e.Metadata = json.RawMessage(`{"a":`) },
		"two values":         func(e *logs.Event) { e.Metadata = json.RawMessage(`{} {}`) },
	}
	for name, spoil := range tests {
		t.Run(name, func(t *testing.T) {
			e := good
			spoil(&e)
			got, err := event.Encode(&e)
			_, want := json.Marshal(&e)
			if err == nil || want == nil || err.Error() != want.Error() {
				t.Fatalf("Encode = %s, %v; want encoding/json's error %v", got, err, want)
			}
		})
	}
}

// Times are written as encoding/json writes them, fraction trimmed of
// trailing zeros, offsets kept, whatever the instant.
func TestEncodeTimesAsEncodingJSON(t *testing.T) {
	e, err := event.Parse([]byte(valid()), defaults(), event.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range []time.Time{
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2024, 2, 29, 7, 8, 9, 1, time.UTC),
		time.Date(2024, 2, 29, 7, 8, 9, 100000000, time.UTC),
		time.Date(2024, 2, 29, 7, 8, 9, 120000, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 1, 15, 10, 30, 0, 123456000, time.FixedZone("", 5*3600+1800)),
		time.Date(2024, 1, 15, 10, 30, 0, 0, time.FixedZone("UTC", 0)),
		time.Date(2024, 1, 15, 10, 30, 0, 5, time.FixedZone("", -3600)),
		time.Now(), // with a monotonic reading and the local zone
	} {
		e.Timestamp, e.ReceivedAt = ts, ts.UTC()
		got, err := event.Encode(&e)
		want, wantErr := refEncode(&e)
		if err != nil || wantErr != nil || !bytes.Equal(got, want) {
			t.Errorf("Encode at %v =\n%s, %v\nwant\n%s, %v", ts, got, err, want, wantErr)
		}
	}
}

// Encode writes any event, not only those Parse makes (a replayed record,
// text with invalid UTF-8, metadata with white space or none at all), as
// encoding/json does, and refuses what encoding/json refuses.
func FuzzEncodeMatchesEncodingJSON(f *testing.F) {
	f.Add("api", "hi", "", []byte(nil))
	f.Add("a\"b\\c", "<&>\u2028\u2029\x00\x1f\x7f", "t\xff", []byte(` { "a" : [ 1 , "x y" ] } `))
	f.Add("caf\xc3\xa9", "\xed\xa0\x80\xf4\x90\x80\x80 \xc3", "\t", []byte(`null`))
	f.Add("s", strings.Repeat("long text ", 9)+"\xe2\x80", "", []byte(`{"a":`))
	f.Add("s", "m", "", []byte(`{} {}`))
	f.Fuzz(func(t *testing.T, source, message, traceID string, metadata []byte) {
		e := logs.Event{
			ID: uuid.MustParse("3f0c8b1e-4a2d-4c6e-9b7a-1d2e3f405162"), Timestamp: now, Level: logs.LevelWarn,
			Source: source, Message: message, Metadata: metadata, TraceID: traceID, ReceivedAt: now,
		}
		got, err := event.Encode(&e)
		want, wantErr := refEncode(&e)
		if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Fatalf("Encode(%#v) error %v, want %v", e, err, wantErr)
		}
		if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
			t.Fatalf("Encode(%#v)\n got: %q\nwant: %q", e, got, want)
		}
	})
}

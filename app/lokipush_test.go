package app_test

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// lokiEntry and lokiStream are what a Loki push client sends.
type lokiEntry struct {
	ts   time.Time
	line string
	meta [][2]string // structured metadata
}

type lokiStream struct {
	labels  string
	entries []lokiEntry
}

// lokiPushProtobuf encodes a logproto.PushRequest from Loki's documented
// message format and compresses it with snappy's block format, as
// Promtail does.
func lokiPushProtobuf(streams []lokiStream) []byte {
	var req []byte
	for _, s := range streams {
		var sb []byte
		sb = protowire.AppendTag(sb, 1, protowire.BytesType)
		sb = protowire.AppendString(sb, s.labels)
		for _, e := range s.entries {
			var ts []byte
			ts = protowire.AppendTag(ts, 1, protowire.VarintType)
			ts = protowire.AppendVarint(ts, uint64(e.ts.Unix()))
			ts = protowire.AppendTag(ts, 2, protowire.VarintType)
			ts = protowire.AppendVarint(ts, uint64(e.ts.Nanosecond()))
			var eb []byte
			eb = protowire.AppendTag(eb, 1, protowire.BytesType)
			eb = protowire.AppendBytes(eb, ts)
			eb = protowire.AppendTag(eb, 2, protowire.BytesType)
			eb = protowire.AppendString(eb, e.line)
			for _, m := range e.meta {
				var lb []byte
				lb = protowire.AppendTag(lb, 1, protowire.BytesType)
				lb = protowire.AppendString(lb, m[0])
				lb = protowire.AppendTag(lb, 2, protowire.BytesType)
				lb = protowire.AppendString(lb, m[1])
				eb = protowire.AppendTag(eb, 3, protowire.BytesType)
				eb = protowire.AppendBytes(eb, lb)
			}
			sb = protowire.AppendTag(sb, 2, protowire.BytesType)
			sb = protowire.AppendBytes(sb, eb)
		}
		req = protowire.AppendTag(req, 1, protowire.BytesType)
		req = protowire.AppendBytes(req, sb)
	}
	return snappy.Encode(nil, req)
}

// A Loki push client's protobuf and JSON requests are stored with labels
// and structured metadata mapped as the README says.
func TestLokiPush(t *testing.T) {
	p := startPipeline(t, nil)
	app := "api-" + uuid.NewString()[:8]
	ts := time.Now().Add(-2 * time.Minute).UTC().Truncate(time.Microsecond)
	body := lokiPushProtobuf([]lokiStream{
		{labels: `{app="` + app + `", env="prod", level="warn", note="say \"hi\""}`, entries: []lokiEntry{
			{ts: ts, line: "slow response 1200ms", meta: [][2]string{{"trace_id", "0af7651916cd43dd8448eb211c80319c"}, {"user", "u-1"}}},
			{ts: ts.Add(time.Second), line: "db timeout", meta: [][2]string{{"level", "error"}}},
		}},
		{labels: `{job="` + app + `", app="` + app + `"}`, entries: []lokiEntry{{ts: ts.Add(2 * time.Second), line: "plain"}}},
	})
	r := do(t, http.MethodPost, p.producer+"/loki/api/v1/push", "application/x-protobuf", body)
	if r.status != http.StatusNoContent {
		t.Fatalf("protobuf push: %d %s", r.status, r.raw)
	}
	ns := strconv.FormatInt(ts.Add(3*time.Second).UnixNano(), 10)
	jsonBody := `{"streams":[{"stream":{"service_name":"` + app + `","app":"other","severity":"critical"},
		"values":[["` + ns + `","from json",{"traceID":"abc123","pod":"p-7"}]]}]}`
	r = do(t, http.MethodPost, p.producer+"/loki/api/v1/push", "application/json", []byte(jsonBody))
	if r.status != http.StatusNoContent {
		t.Fatalf("json push: %d %s", r.status, r.raw)
	}

	got := p.stored(t, 4, app, 4)
	checkFields(t, "entry 0", got[0], map[string]any{"message": "slow response 1200ms", "logLevel": "WARN",
		"traceId": "0af7651916cd43dd8448eb211c80319c", "timestamp": ts.Format(time.RFC3339Nano)})
	checkFields(t, "entry 0 metadata", got[0]["metadata"].(map[string]any), map[string]any{
		"app": app, "env": "prod", "level": "warn", "note": `say "hi"`, "user": "u-1", "trace_id": "0af7651916cd43dd8448eb211c80319c"})
	// Structured metadata wins over the stream's label.
	checkFields(t, "entry 1", got[1], map[string]any{"message": "db timeout", "logLevel": "ERROR", "traceId": nil})
	checkFields(t, "entry 1 metadata", got[1]["metadata"].(map[string]any), map[string]any{"level": "error"})
	checkFields(t, "entry 2", got[2], map[string]any{"message": "plain", "logLevel": "INFO"})
	checkFields(t, "entry 2 metadata", got[2]["metadata"].(map[string]any), map[string]any{"job": app})
	// service_name comes before app among the source labels.
	checkFields(t, "json entry", got[3], map[string]any{"message": "from json", "logLevel": "FATAL", "traceId": "abc123"})
	checkFields(t, "json metadata", got[3]["metadata"].(map[string]any), map[string]any{"app": "other", "pod": "p-7", "service_name": app})

	// Found again through the gateway's Loki query API, by the source and
	// a label kept as metadata.
	lines := p.lokiLines(t, `{source="`+app+`", env="prod"}`, ts.Add(-time.Minute))
	if !slices.Equal(lines, []string{"db timeout", "slow response 1200ms"}) {
		t.Errorf("Loki query API: lines %q", lines)
	}

	// An entry that cannot be stored: the others are, the request answers
	// 400 as Loki does, and the entry is in the DLQ.
	body = lokiPushProtobuf([]lokiStream{{labels: `{app="` + app + `"}`, entries: []lokiEntry{
		{ts: ts.Add(4 * time.Second), line: "kept"}, {ts: ts.Add(5 * time.Second), line: "  "}}}})
	r = do(t, http.MethodPost, p.producer+"/loki/api/v1/push", "application/x-protobuf", body)
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.raw), "entry 1") {
		t.Errorf("one bad entry: %d %s", r.status, r.raw)
	}
	p.waitRows(5)
	if n := p.protocolEvents("loki", "accepted"); n != 5 {
		t.Errorf("loki accepted = %v, want 5", n)
	}
	if letters := readDLQ(t, p.app.KafkaBrokers(), p.cfg.Kafka.DLQTopic, 1); !strings.Contains(string(letters[0].Value), app) {
		t.Errorf("dead letter %s", letters[0].Value)
	}

	// Not snappy, or bad labels: 400 naming the problem.
	for name, b := range map[string][]byte{
		"not snappy": []byte("\xff\xff\xff\xff\xff"),
		"bad labels": lokiPushProtobuf([]lokiStream{{labels: `app="x"`, entries: []lokiEntry{{ts: ts, line: "x"}}}}),
	} {
		if r := do(t, http.MethodPost, p.producer+"/loki/api/v1/push", "application/x-protobuf", b); r.status != http.StatusBadRequest {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
}

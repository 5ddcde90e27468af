package otlp_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/ingest/ingesttest"
	"github.com/logengine/logengine/ingest/otlp"
	"github.com/logengine/logengine/store/logs"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

// When Kafka does not take the records, the exporter gets 503 with
// Retry-After and a google.rpc.Status, which OTLP exporters retry.
func TestUnavailableIsRetryable(t *testing.T) {
	h := ingesttest.KafkaDownHandler()
	e := echo.New()
	otlp.NewHandler(h).Register(e)
	body, _ := proto.Marshal(&collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{ScopeLogs: []*logspb.ScopeLogs{{
		LogRecords: []*logspb.LogRecord{{SeverityText: "info"}}}}}}})
	req := httptest.NewRequest(http.MethodPost, otlp.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	var st status.Status
	if err := proto.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || st.Code != 14 {
		t.Errorf("%d %q %v", rec.Code, rec.Header().Get("Retry-After"), &st)
	}
}

func TestLevel(t *testing.T) {
	for _, c := range []struct {
		num  logspb.SeverityNumber
		text string
		want logs.Level
	}{
		{1, "", logs.LevelTrace}, {4, "", logs.LevelTrace}, {5, "", logs.LevelDebug}, {9, "", logs.LevelInfo},
		{12, "", logs.LevelInfo}, {13, "", logs.LevelWarn}, {17, "ERROR", logs.LevelError}, {21, "", logs.LevelFatal},
		{24, "", logs.LevelFatal}, {0, "Warning", logs.LevelWarn}, {0, "crit", logs.LevelFatal}, {0, "", logs.LevelInfo},
		{0, "whatever", logs.LevelInfo}, {13, "debug", logs.LevelWarn},
	} {
		if got := otlp.Level(c.num, c.text); got != c.want {
			t.Errorf("Level(%d, %q) = %s, want %s", c.num, c.text, got, c.want)
		}
	}
}

func FuzzDrafts(f *testing.F) {
	f.Add([]byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"kvlistValue":{"values":[{"key":"a","value":{"arrayValue":{"values":[{"intValue":"1"}]}}}]}}}]}]}]}`), false)
	f.Add([]byte{0x0a, 0x02, 0x12, 0x00}, true)
	f.Fuzz(func(t *testing.T, b []byte, asProto bool) {
		var req collogspb.ExportLogsServiceRequest
		var err error
		if asProto {
			err = proto.Unmarshal(b, &req)
		} else {
			err = otlp.UnmarshalJSON(b, &req)
		}
		if err == nil {
			for _, d := range otlp.Drafts(&req) {
				_ = d.AppendJSON(nil)
			}
		}
	})
}

package app_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"
)

// The OpenTelemetry Go SDK's OTLP/HTTP exporter sends to the producer (gzip), and
// every field comes back from the gateway mapped as the README says.
func TestOTLPFromTheGoSDK(t *testing.T) {
	p := startPipeline(t, nil)
	ctx := context.Background()
	exp, err := otlploghttp.New(ctx, otlploghttp.WithEndpointURL(p.producer+"/v1/logs"),
		otlploghttp.WithCompression(otlploghttp.GzipCompression), otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	service := "checkout-" + uuid.NewString()[:8]
	res := resource.NewSchemaless(attribute.String("service.name", service), attribute.String("host.name", "web-1"),
		attribute.Int("process.pid", 4242))
	lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewBatchProcessor(exp)))
	defer func() { _ = lp.Shutdown(ctx) }()
	logger := lp.Logger("shop/cart", otellog.WithInstrumentationVersion("1.2.3"),
		otellog.WithInstrumentationAttributes(attribute.String("lib", "cart")))

	traceID := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	spanID := trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
	sctx := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled}))
	ts := time.Now().Add(-time.Minute).UTC().Truncate(time.Microsecond)
	severities := []struct {
		sev  otellog.Severity
		text string
		want string
	}{
		{otellog.SeverityTrace2, "", "TRACE"}, {otellog.SeverityDebug, "", "DEBUG"}, {otellog.SeverityInfo4, "", "INFO"},
		{otellog.SeverityWarn, "WARNING", "WARN"}, {otellog.SeverityError3, "", "ERROR"}, {otellog.SeverityFatal, "", "FATAL"},
		{otellog.SeverityUndefined, "error", "ERROR"}, {otellog.SeverityUndefined, "", "INFO"},
	}
	for i, s := range severities {
		var r otellog.Record
		r.SetTimestamp(ts.Add(time.Duration(i) * time.Second))
		r.SetSeverity(s.sev)
		r.SetSeverityText(s.text)
		r.SetBody(attribute.StringValue("payment declined #" + string(rune('a'+i))))
		r.AddAttributes(attribute.String("order.id", "o-17"), attribute.Int("attempt", 3), attribute.Bool("retry", true),
			attribute.Map("card", attribute.String("brand", "visa")))
		logger.Emit(sctx, r)
	}
	// A structured body is stored as its JSON text.
	var r otellog.Record
	r.SetTimestamp(ts.Add(30 * time.Second))
	r.SetSeverity(otellog.SeverityInfo)
	r.SetBody(attribute.MapValue(attribute.String("event", "login"), attribute.Int("user", 7)))
	logger.Emit(ctx, r)
	if err := lp.ForceFlush(ctx); err != nil {
		t.Fatalf("export: %v", err)
	}

	got := p.stored(t, len(severities)+1, service, len(severities)+1)
	for i, s := range severities {
		e := got[i]
		meta, _ := e["metadata"].(map[string]any)
		want := map[string]any{"logLevel": s.want, "source": service, "message": "payment declined #" + string(rune('a'+i)),
			"traceId": traceID.String()}
		checkFields(t, s.want, e, want)
		if tsGot, _ := time.Parse(time.RFC3339Nano, e["timestamp"].(string)); !tsGot.Equal(ts.Add(time.Duration(i) * time.Second)) {
			t.Errorf("record %d: timestamp %v, want %v", i, e["timestamp"], ts.Add(time.Duration(i)*time.Second))
		}
		wantMeta := map[string]any{
			"host.name": "web-1", "process.pid": 4242, "otel.scope.name": "shop/cart", "otel.scope.version": "1.2.3",
			"lib": "cart", "order.id": "o-17", "attempt": 3, "retry": true, "card": map[string]any{"brand": "visa"},
			"spanId": spanID.String(), "service.name": nil,
		}
		if s.text != "" {
			wantMeta["severityText"] = s.text
		}
		checkFields(t, "metadata of "+s.want, meta, wantMeta)
	}
	if lines := p.lokiLines(t, `{source="`+service+`", level="error"}`, ts.Add(-time.Minute)); !slices.Equal(lines, []string{"payment declined #e", "payment declined #g"}) {
		t.Errorf("Loki query API, errors: %q", lines)
	}
	last := got[len(got)-1]
	checkFields(t, "structured body", last, map[string]any{"message": `{"event":"login","user":7}`, "traceId": nil, "logLevel": "INFO"})
	if n := p.protocolEvents("otlp", "accepted"); n != float64(len(severities)+1) {
		t.Errorf("logs_protocol_events_total{otlp,accepted} = %v, want %d", n, len(severities)+1)
	}
}

// A request with a record that cannot be stored is accepted in part, as
// OTLP's partial success says, in the encoding of the request; the record
// goes to the DLQ with the reason.
func TestOTLPPartialSuccess(t *testing.T) {
	p := startPipeline(t, nil)
	service := "partial-" + uuid.NewString()[:8]
	str := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	req := &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name", Value: str(service)}}},
		ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{
			{SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_ERROR, Body: str("disk full")},
			{SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_INFO, Body: str("   ")}, // blank: refused
		}}},
	}}}
	body, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, http.MethodPost, p.producer+"/v1/logs", "application/x-protobuf", body)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/x-protobuf" {
		t.Fatalf("protobuf: %d %s %q", r.status, r.header.Get("Content-Type"), r.raw)
	}
	var resp collogspb.ExportLogsServiceResponse
	if err := proto.Unmarshal(r.raw, &resp); err != nil {
		t.Fatal(err)
	}
	if ps := resp.GetPartialSuccess(); ps.GetRejectedLogRecords() != 1 || !strings.Contains(ps.GetErrorMessage(), "message") {
		t.Errorf("partial success = %v, want 1 rejected naming the message", ps)
	}

	// The same in OTLP/JSON: hex ids, integers as strings, enums as numbers.
	jsonTime := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	jsonBody := `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"` + service + `"}},
		{"key":"k8s.pod.uid","value":{"stringValue":"p-1"}}]},
	 "scopeLogs":[{"scope":{"name":"json-scope"},"logRecords":[
	  {"timeUnixNano":"` + strconv.FormatInt(jsonTime.UnixNano(), 10) + `","severityNumber":13,"severityText":"Warning","body":{"stringValue":"from json"},
	   "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
	   "attributes":[{"key":"n","value":{"intValue":"12"}},{"key":"f","value":{"doubleValue":1.5}}]},
	  {"severityNumber":9}]}]}]}`
	r = do(t, http.MethodPost, p.producer+"/v1/logs", "application/json", []byte(jsonBody))
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("json: %d %s", r.status, r.raw)
	}
	ps, _ := r.body["partialSuccess"].(map[string]any)
	if ps["rejectedLogRecords"] != "1" {
		t.Errorf("json partial success = %s", r.raw)
	}
	got := p.stored(t, 2, service, 2)
	checkFields(t, "json record", got[0], map[string]any{"message": "from json", "logLevel": "WARN",
		"traceId": "5b8efff798038103d269b633813fc60c", "timestamp": jsonTime.Format(time.RFC3339)})
	checkFields(t, "json metadata", got[0]["metadata"].(map[string]any), map[string]any{"k8s.pod.uid": "p-1", "n": 12, "f": 1.5,
		"spanId": "eee19b7ec3c1b174", "otel.scope.name": "json-scope", "severityText": "Warning"})
	checkFields(t, "protobuf record", got[1], map[string]any{"message": "disk full", "logLevel": "ERROR"})

	if n := p.protocolEvents("otlp", "rejected"); n != 2 {
		t.Errorf("logs_protocol_events_total{otlp,rejected} = %v, want 2", n)
	}
	letters := readDLQ(t, p.app.KafkaBrokers(), p.cfg.Kafka.DLQTopic, 2)
	for _, l := range letters {
		if !strings.Contains(string(l.Value), service) {
			t.Errorf("dead letter %s does not hold the refused record", l.Value)
		}
	}

	// A body that is not OTLP: 400 with a google.rpc.Status.
	r = do(t, http.MethodPost, p.producer+"/v1/logs", "application/json", []byte(`{"resourceLogs":"x"}`))
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.raw), "cannot decode") {
		t.Errorf("malformed: %d %s", r.status, r.raw)
	}
}

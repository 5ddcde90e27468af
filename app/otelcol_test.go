package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// The OpenTelemetry Collector's otlphttp exporter, built from its Go
// modules, sends to the producer in both its encodings (protobuf and
// OTLP/JSON), gzip-compressed as it is by default.
func TestOTLPFromTheCollectorsExporter(t *testing.T) {
	p := startPipeline(t, nil)
	ctx := context.Background()
	ts := time.Now().Add(-time.Minute).UTC().Truncate(time.Microsecond)
	traceID := pcommon.TraceID{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c}
	spanID := pcommon.SpanID{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74}
	encodings := []otlphttpexporter.EncodingType{otlphttpexporter.EncodingProto, otlphttpexporter.EncodingJSON}
	services := make([]string, len(encodings))
	for i, enc := range encodings {
		f := otlphttpexporter.NewFactory()
		cfg := f.CreateDefaultConfig().(*otlphttpexporter.Config)
		cfg.ClientConfig.Endpoint = p.producer // the exporter appends /v1/logs
		cfg.Encoding = enc
		if cfg.ClientConfig.Compression != "gzip" {
			t.Fatalf("the exporter's default compression is %q, not gzip", cfg.ClientConfig.Compression)
		}
		cfg.RetryConfig.Enabled = false
		// Without a queue, ConsumeLogs returns once the producer answered.
		cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
		exp, err := f.CreateLogs(ctx, exportertest.NewNopSettings(f.Type()), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := exp.Start(ctx, componenttest.NewNopHost()); err != nil {
			t.Fatal(err)
		}
		services[i] = "collector-" + string(enc) + "-" + uuid.NewString()[:8]
		ld := plog.NewLogs()
		rl := ld.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("service.name", services[i])
		rl.Resource().Attributes().PutStr("k8s.namespace.name", "shop")
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName("collector-test")
		lr := sl.LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		lr.SetSeverityNumber(plog.SeverityNumberError2)
		lr.SetSeverityText("ERR")
		lr.Body().SetStr("connection refused")
		lr.Attributes().PutInt("retries", 5)
		lr.Attributes().PutDouble("ratio", 0.25)
		lr.SetTraceID(traceID)
		lr.SetSpanID(spanID)
		if err := exp.ConsumeLogs(ctx, ld); err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		if err := exp.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p.waitRows(len(encodings))
	for i, enc := range encodings {
		got := p.stored(t, len(encodings), services[i], 1)[0]
		checkFields(t, string(enc), got, map[string]any{"message": "connection refused", "logLevel": "ERROR",
			"traceId": "5b8efff798038103d269b633813fc60c", "timestamp": ts.Format(time.RFC3339Nano)})
		checkFields(t, string(enc)+" metadata", got["metadata"].(map[string]any), map[string]any{"k8s.namespace.name": "shop",
			"otel.scope.name": "collector-test", "retries": 5, "ratio": 0.25, "spanId": "eee19b7ec3c1b174", "severityText": "ERR"})
	}
}

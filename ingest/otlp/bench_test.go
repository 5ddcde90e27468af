package otlp_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/ingest/otlp"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"
)

// BenchmarkRequest is the producer's work on a 100-record OTLP protobuf
// request: decoding it, mapping each record and validating it.
func BenchmarkRequest(b *testing.B) {
	str := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	now := uint64(time.Now().UnixNano())
	var records []*logspb.LogRecord
	for i := range 100 {
		records = append(records, &logspb.LogRecord{
			TimeUnixNano: now, SeverityNumber: 9, Body: str(fmt.Sprintf("GET /api/orders/%d 200 in 12ms", i)),
			TraceId: []byte("0123456789abcdef"), SpanId: []byte("01234567"),
			Attributes: []*commonpb.KeyValue{{Key: "http.method", Value: str("GET")}, {Key: "user", Value: str("u-17")}},
		})
	}
	body, _ := proto.Marshal(&collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		Resource:  &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name", Value: str("checkout")}, {Key: "host.name", Value: str("web-1")}}},
		ScopeLogs: []*logspb.ScopeLogs{{Scope: &commonpb.InstrumentationScope{Name: "app"}, LogRecords: records}},
	}}})
	def, lim := event.Defaults{Now: time.Now()}, event.DefaultLimits()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var req collogspb.ExportLogsServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			b.Fatal(err)
		}
		drafts := otlp.Drafts(&req)
		for j := range drafts {
			if _, _, err := event.ParseDraft(&drafts[j], def, lim); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(records)), "ns/record")
}

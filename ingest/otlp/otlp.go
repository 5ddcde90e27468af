// Package otlp takes logs over OTLP/HTTP (POST /v1/logs, protobuf or JSON)
// and turns each log record into an event of the native API.
//
// Mapping: the resource's service.name is the source ("unknown_service"
// without one, as the OpenTelemetry SDKs name it); the severity number
// gives the level (1–4 TRACE, 5–8 DEBUG, 9–12 INFO, 13–16 WARN, 17–20
// ERROR, 21–24 FATAL), else the severity text, else INFO; the body is the
// message (a structured body as its JSON text, the event name when the
// body is empty); time_unix_nano, else observed_time_unix_nano, else the
// time of receipt, is the timestamp; the trace id (hex) is the traceId.
// The metadata holds the resource attributes (but service.name), the
// scope as otel.scope.name and otel.scope.version, the scope attributes,
// the log attributes (a later one of the same key wins, in that order),
// spanId, severityText and eventName when present.
package otlp

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/logengine/logengine/ingest"
	"github.com/logengine/logengine/ingest/event"
	"github.com/logengine/logengine/store/logs"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Protocol names the protocol in metrics and dead letters.
const Protocol = "otlp"

// Path is where OTLP/HTTP exporters send logs.
const Path = "/v1/logs"

const (
	mediaProtobuf = "application/x-protobuf"
	mediaJSON     = "application/json"
)

// Intake is the shared ingest path (ingest.Handler).
type Intake interface {
	ReadBody(c echo.Context, mediaTypes ...string) ([]byte, string, *echo.HTTPError)
	AcceptRequest(c echo.Context, protocol string, drafts []event.Draft) (ingest.Outcome, error)
}

// Handler serves POST /v1/logs.
type Handler struct{ intake Intake }

// NewHandler serves OTLP/HTTP logs through intake.
func NewHandler(intake Intake) *Handler { return &Handler{intake: intake} }

// Register mounts the route.
func (h *Handler) Register(e *echo.Echo) { e.POST(Path, h.post) }

func (h *Handler) post(c echo.Context) error {
	body, mt, herr := h.intake.ReadBody(c, mediaProtobuf, mediaJSON)
	asJSON := mt == mediaJSON
	if herr != nil {
		return answerStatus(c, asJSON, herr.Code, fmt.Sprint(herr.Message))
	}
	var req collogspb.ExportLogsServiceRequest
	var err error
	if asJSON {
		err = unmarshalJSON(body, &req)
	} else {
		err = proto.Unmarshal(body, &req)
	}
	if err != nil {
		return answerStatus(c, asJSON, http.StatusBadRequest, "cannot decode the OTLP ExportLogsServiceRequest: "+err.Error())
	}
	drafts := Drafts(&req)
	out, err := h.intake.AcceptRequest(c, Protocol, drafts)
	if err != nil {
		var u *ingest.Unavailable
		if errors.As(err, &u) {
			// OTLP exporters retry 503 after Retry-After.
			c.Response().Header().Set("Retry-After", u.RetryAfterSeconds())
			return answerStatus(c, asJSON, http.StatusServiceUnavailable, u.Message)
		}
		return answerStatus(c, asJSON, http.StatusRequestEntityTooLarge, err.Error())
	}
	resp := &collogspb.ExportLogsServiceResponse{}
	if n := len(out.Rejected); n > 0 {
		// Retrying would not help: the refused records are in the DLQ.
		resp.PartialSuccess = &collogspb.ExportLogsPartialSuccess{RejectedLogRecords: int64(n), ErrorMessage: rejectedMessage(out.Rejected)}
	}
	return answer(c, asJSON, http.StatusOK, resp)
}

// rejectedMessage names the first refused records and why.
func rejectedMessage(rej []ingest.ItemError) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d log records were refused (kept in the dead-letter queue): ", len(rej))
	for i, r := range rej[:min(3, len(rej))] {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "record %d: %s", r.Index, r.Error)
	}
	return b.String()
}

// answerStatus answers an error with a google.rpc.Status, as OTLP/HTTP says.
func answerStatus(c echo.Context, asJSON bool, code int, msg string) error {
	return answer(c, asJSON, code, &status.Status{Code: grpcCode(code), Message: msg})
}

func grpcCode(httpCode int) int32 {
	switch httpCode {
	case http.StatusBadRequest, http.StatusUnsupportedMediaType:
		return 3 // INVALID_ARGUMENT
	case http.StatusRequestEntityTooLarge:
		return 8 // RESOURCE_EXHAUSTED
	case http.StatusServiceUnavailable:
		return 14 // UNAVAILABLE
	case http.StatusRequestTimeout:
		return 4 // DEADLINE_EXCEEDED
	}
	return 2 // UNKNOWN
}

// answer writes m in the encoding of the request.
func answer(c echo.Context, asJSON bool, code int, m proto.Message) error {
	if asJSON {
		b, err := protojson.Marshal(m)
		if err != nil {
			return err
		}
		return c.Blob(code, mediaJSON, b)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return c.Blob(code, mediaProtobuf, b)
}

// Drafts turns every log record of the request into a draft event.
func Drafts(req *collogspb.ExportLogsServiceRequest) []event.Draft {
	n := 0
	for _, rl := range req.ResourceLogs {
		for _, sl := range rl.ScopeLogs {
			n += len(sl.LogRecords)
		}
	}
	drafts := make([]event.Draft, 0, n)
	for _, rl := range req.ResourceLogs {
		source := "unknown_service"
		var resAttrs []*commonpb.KeyValue
		if rl.Resource != nil {
			resAttrs = rl.Resource.Attributes
		}
		for _, kv := range resAttrs {
			if kv.Key == "service.name" {
				if s := kv.GetValue().GetStringValue(); strings.TrimSpace(s) != "" {
					source = s
				}
			}
		}
		for _, sl := range rl.ScopeLogs {
			for _, lr := range sl.LogRecords {
				d := event.Draft{Source: source}
				for _, kv := range resAttrs {
					if kv.Key != "service.name" {
						d.Metadata.Set(kv.Key, appendValue(nil, kv.Value))
					}
				}
				if sc := sl.Scope; sc != nil {
					if sc.Name != "" {
						d.Metadata.SetString("otel.scope.name", sc.Name)
					}
					if sc.Version != "" {
						d.Metadata.SetString("otel.scope.version", sc.Version)
					}
					for _, kv := range sc.Attributes {
						d.Metadata.Set(kv.Key, appendValue(nil, kv.Value))
					}
				}
				record(&d, lr)
				drafts = append(drafts, d)
			}
		}
	}
	return drafts
}

// record fills the draft with what one log record says.
func record(d *event.Draft, lr *logspb.LogRecord) {
	for _, kv := range lr.Attributes {
		d.Metadata.Set(kv.Key, appendValue(nil, kv.Value))
	}
	switch ts := cmpOr(lr.TimeUnixNano, lr.ObservedTimeUnixNano); {
	case ts == 0:
	case ts > math.MaxInt64:
		d.Timestamp = time.Unix(0, math.MaxInt64) // refused as too far ahead
	default:
		d.Timestamp = time.Unix(0, int64(ts))
	}
	d.Level = Level(lr.SeverityNumber, lr.SeverityText).String()
	if lr.SeverityText != "" {
		d.Metadata.SetString("severityText", lr.SeverityText)
	}
	if lr.EventName != "" {
		d.Metadata.SetString("eventName", lr.EventName)
	}
	switch v := lr.Body.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		d.Message = v.StringValue
	case nil:
	default:
		d.Message = string(appendValue(nil, lr.Body))
	}
	if strings.TrimSpace(d.Message) == "" && lr.EventName != "" {
		d.Message = lr.EventName
	}
	if validID(lr.TraceId, 16) {
		d.TraceID = hex.EncodeToString(lr.TraceId)
	}
	if validID(lr.SpanId, 8) {
		d.Metadata.SetString("spanId", hex.EncodeToString(lr.SpanId))
	}
}

func cmpOr(a, b uint64) uint64 {
	if a != 0 {
		return a
	}
	return b
}

// validID: the right length and not all zeroes, as OTLP defines a valid id.
func validID(id []byte, n int) bool {
	if len(id) != n {
		return false
	}
	for _, b := range id {
		if b != 0 {
			return true
		}
	}
	return false
}

// Level maps an OTLP severity to a level: the number's range when it is
// set, else the text when it names a level, else INFO.
func Level(num logspb.SeverityNumber, text string) logs.Level {
	switch {
	case num >= 21:
		return logs.LevelFatal
	case num >= 17:
		return logs.LevelError
	case num >= 13:
		return logs.LevelWarn
	case num >= 9:
		return logs.LevelInfo
	case num >= 5:
		return logs.LevelDebug
	case num >= 1:
		return logs.LevelTrace
	}
	if l, ok := event.LevelFromText(text); ok {
		return l
	}
	return logs.LevelInfo
}

// appendValue appends an attribute value as JSON: strings, numbers and
// booleans as such, bytes as base64, arrays and key-value lists as arrays
// and objects, an empty value as null.
func appendValue(dst []byte, v *commonpb.AnyValue) []byte {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return event.AppendString(dst, x.StringValue)
	case *commonpb.AnyValue_BoolValue:
		return strconv.AppendBool(dst, x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return strconv.AppendInt(dst, x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		f := x.DoubleValue
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return event.AppendString(dst, strconv.FormatFloat(f, 'g', -1, 64))
		}
		return strconv.AppendFloat(dst, f, 'g', -1, 64)
	case *commonpb.AnyValue_BytesValue:
		return event.AppendString(dst, base64.StdEncoding.EncodeToString(x.BytesValue))
	case *commonpb.AnyValue_ArrayValue:
		dst = append(dst, '[')
		for i, e := range x.ArrayValue.GetValues() {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendValue(dst, e)
		}
		return append(dst, ']')
	case *commonpb.AnyValue_KvlistValue:
		var o event.Object
		for _, kv := range x.KvlistValue.GetValues() {
			o.Set(kv.Key, appendValue(nil, kv.Value))
		}
		return o.AppendJSON(dst)
	}
	return append(dst, "null"...)
}

// OTLP/JSON is the protobuf's JSON mapping except that trace and span ids
// are hex, not base64, so protojson cannot read it; these types can.

type jsonRequest struct {
	ResourceLogs []struct {
		Resource *struct {
			Attributes []jsonKeyValue `json:"attributes"`
		} `json:"resource"`
		ScopeLogs []struct {
			Scope *struct {
				Name       string         `json:"name"`
				Version    string         `json:"version"`
				Attributes []jsonKeyValue `json:"attributes"`
			} `json:"scope"`
			LogRecords []struct {
				TimeUnixNano         jsonUint64     `json:"timeUnixNano"`
				ObservedTimeUnixNano jsonUint64     `json:"observedTimeUnixNano"`
				SeverityNumber       int32          `json:"severityNumber"`
				SeverityText         string         `json:"severityText"`
				Body                 *jsonAnyValue  `json:"body"`
				Attributes           []jsonKeyValue `json:"attributes"`
				TraceID              string         `json:"traceId"`
				SpanID               string         `json:"spanId"`
				EventName            string         `json:"eventName"`
			} `json:"logRecords"`
		} `json:"scopeLogs"`
	} `json:"resourceLogs"`
}

type jsonKeyValue struct {
	Key   string        `json:"key"`
	Value *jsonAnyValue `json:"value"`
}

type jsonAnyValue struct {
	StringValue *string    `json:"stringValue"`
	BoolValue   *bool      `json:"boolValue"`
	IntValue    *jsonInt64 `json:"intValue"`
	DoubleValue *float64   `json:"doubleValue"`
	BytesValue  *[]byte    `json:"bytesValue"` // base64, as protobuf's JSON mapping has it
	ArrayValue  *struct {
		Values []*jsonAnyValue `json:"values"`
	} `json:"arrayValue"`
	KvlistValue *struct {
		Values []jsonKeyValue `json:"values"`
	} `json:"kvlistValue"`
}

// jsonUint64 and jsonInt64 take a number or a decimal string, as the
// protobuf JSON mapping writes 64-bit integers.
type jsonUint64 uint64

func (u *jsonUint64) UnmarshalJSON(b []byte) error {
	n, err := strconv.ParseUint(strings.Trim(string(b), `"`), 10, 64)
	*u = jsonUint64(n)
	return err
}

type jsonInt64 int64

func (i *jsonInt64) UnmarshalJSON(b []byte) error {
	n, err := strconv.ParseInt(strings.Trim(string(b), `"`), 10, 64)
	*i = jsonInt64(n)
	return err
}

func unmarshalJSON(body []byte, req *collogspb.ExportLogsServiceRequest) error {
	var j jsonRequest
	if err := json.Unmarshal(body, &j); err != nil {
		return err
	}
	for _, jrl := range j.ResourceLogs {
		rl := &logspb.ResourceLogs{}
		if jrl.Resource != nil {
			rl.Resource = newResource(kvs(jrl.Resource.Attributes))
		}
		for _, jsl := range jrl.ScopeLogs {
			sl := &logspb.ScopeLogs{}
			if s := jsl.Scope; s != nil {
				sl.Scope = &commonpb.InstrumentationScope{Name: s.Name, Version: s.Version, Attributes: kvs(s.Attributes)}
			}
			for _, jlr := range jsl.LogRecords {
				lr := &logspb.LogRecord{
					TimeUnixNano: uint64(jlr.TimeUnixNano), ObservedTimeUnixNano: uint64(jlr.ObservedTimeUnixNano),
					SeverityNumber: logspb.SeverityNumber(jlr.SeverityNumber), SeverityText: jlr.SeverityText,
					Body: anyValue(jlr.Body), Attributes: kvs(jlr.Attributes), EventName: jlr.EventName,
				}
				var err error
				if lr.TraceId, err = hexID(jlr.TraceID); err != nil {
					return fmt.Errorf("traceId: %w", err)
				}
				if lr.SpanId, err = hexID(jlr.SpanID); err != nil {
					return fmt.Errorf("spanId: %w", err)
				}
				sl.LogRecords = append(sl.LogRecords, lr)
			}
			rl.ScopeLogs = append(rl.ScopeLogs, sl)
		}
		req.ResourceLogs = append(req.ResourceLogs, rl)
	}
	return nil
}

func hexID(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("must be hex: %q", s)
	}
	return b, nil
}

func kvs(in []jsonKeyValue) []*commonpb.KeyValue {
	out := make([]*commonpb.KeyValue, len(in))
	for i, kv := range in {
		out[i] = &commonpb.KeyValue{Key: kv.Key, Value: anyValue(kv.Value)}
	}
	return out
}

func anyValue(v *jsonAnyValue) *commonpb.AnyValue {
	if v == nil {
		return nil
	}
	switch {
	case v.StringValue != nil:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: *v.StringValue}}
	case v.BoolValue != nil:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: *v.BoolValue}}
	case v.IntValue != nil:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(*v.IntValue)}}
	case v.DoubleValue != nil:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: *v.DoubleValue}}
	case v.BytesValue != nil:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: *v.BytesValue}}
	case v.ArrayValue != nil:
		vals := make([]*commonpb.AnyValue, len(v.ArrayValue.Values))
		for i, e := range v.ArrayValue.Values {
			vals[i] = anyValue(e)
		}
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vals}}}
	case v.KvlistValue != nil:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: kvs(v.KvlistValue.Values)}}}
	}
	return &commonpb.AnyValue{}
}

func newResource(attrs []*commonpb.KeyValue) *resourcepb.Resource {
	return &resourcepb.Resource{Attributes: attrs}
}

package ingest

import (
	"fmt"
	"github.com/logengine/logengine/store/logs"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// DLQ header names. The record value is the original payload, unchanged.
const (
	HeaderReason        = "dlq.reason"
	HeaderError         = "dlq.error"
	HeaderStage         = "dlq.stage"
	HeaderTime          = "dlq.time"
	HeaderOrigTopic     = "dlq.original.topic"
	HeaderOrigPartition = "dlq.original.partition"
	HeaderOrigOffset    = "dlq.original.offset"
	HeaderCorrelationID = "correlation-id"
	// HeaderTenant names the tenant a record's log (or letter) belongs
	// to; a record without one is the default tenant's.
	HeaderTenant = "tenant"
	// HeaderReplayOf marks a record replayed from the DLQ, and the letter
	// it becomes if it is refused again, with the letter it was replayed
	// from (dlq-topic/partition@offset).
	HeaderReplayOf       = "dlq.replay.of"
	maxDLQErrorTextBytes = 1024
)

// DLQ reasons, the label values of dlq_records_total.
const (
	ReasonValidation = "validation" // the producer refused an event of a batch
	ReasonDecode     = "decode"     // a record that is not a valid event
	ReasonStore      = "store"      // PostgreSQL refused the event's data
)

// DeadLetter is one record bound for the DLQ topic.
type DeadLetter struct {
	Value  []byte
	Key    []byte
	Reason string
	Err    string
	Stage  string // producer or consumer
	// Origin, when the letter comes from the log topic.
	Topic     string
	Partition int32
	Offset    int64
	HasOrigin bool

	CorrelationID string
	// ReplayOf is the letter this one's record was replayed from, if any.
	ReplayOf string
	// Tenant owns the letter; "" is the default tenant.
	Tenant string
}

func (d DeadLetter) record(topic string, now time.Time) *kgo.Record {
	errText := d.Err
	if len(errText) > maxDLQErrorTextBytes {
		errText = errText[:maxDLQErrorTextBytes]
	}
	headers := []kgo.RecordHeader{
		{Key: HeaderReason, Value: []byte(d.Reason)},
		{Key: HeaderError, Value: []byte(errText)},
		{Key: HeaderStage, Value: []byte(d.Stage)},
		{Key: HeaderTime, Value: []byte(now.UTC().Format(time.RFC3339Nano))},
		{Key: HeaderTenant, Value: []byte(logs.TenantOrDefault(d.Tenant))},
	}
	if d.HasOrigin {
		headers = append(headers,
			kgo.RecordHeader{Key: HeaderOrigTopic, Value: []byte(d.Topic)},
			kgo.RecordHeader{Key: HeaderOrigPartition, Value: []byte(strconv.Itoa(int(d.Partition)))},
			kgo.RecordHeader{Key: HeaderOrigOffset, Value: []byte(strconv.FormatInt(d.Offset, 10))},
		)
	}
	if d.CorrelationID != "" {
		headers = append(headers, kgo.RecordHeader{Key: HeaderCorrelationID, Value: []byte(d.CorrelationID)})
	}
	if d.ReplayOf != "" {
		headers = append(headers, kgo.RecordHeader{Key: HeaderReplayOf, Value: []byte(d.ReplayOf)})
	}
	return &kgo.Record{Topic: topic, Key: d.Key, Value: d.Value, Headers: headers}
}

// letterFrom makes a DLQ letter of a record of the log topic.
func letterFrom(r *kgo.Record, reason string, err error) DeadLetter {
	return DeadLetter{
		Value: r.Value, Key: r.Key, Reason: reason, Err: err.Error(), Stage: "consumer",
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, HasOrigin: true,
		CorrelationID: header(r, HeaderCorrelationID), ReplayOf: header(r, HeaderReplayOf),
		Tenant: recordTenant(r),
	}
}

// recordTenant is the tenant a record's header names, or the default.
func recordTenant(r *kgo.Record) string { return logs.TenantOrDefault(header(r, HeaderTenant)) }

// tenantOf is the tenant of a log topic's record; a header that cannot
// name a tenant (a record not written by logengine) is an error.
func tenantOf(r *kgo.Record) (string, error) {
	t := recordTenant(r)
	if !logs.ValidTenant(t) {
		return "", fmt.Errorf("record header %s %q: a tenant must be %s", HeaderTenant, t, logs.TenantRule)
	}
	return t, nil
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

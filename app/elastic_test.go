package app_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esutil"
	"github.com/google/uuid"
)

// go-elasticsearch's BulkIndexer sends to the producer; the documents are
// stored with their fields mapped as the README says, and a document that
// cannot be stored fails alone, in Elasticsearch's per-item shape.
func TestElasticsearchBulkIndexer(t *testing.T) {
	p := startPipeline(t, nil)
	es, err := elasticsearch.NewClient(elasticsearch.Config{Addresses: []string{p.producer}})
	if err != nil {
		t.Fatal(err)
	}
	index := "logs-" + uuid.NewString()[:8]
	bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{Client: es, Index: index, NumWorkers: 1})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Add(-3 * time.Minute).UTC().Truncate(time.Millisecond)
	service := "billing-" + uuid.NewString()[:8]
	docs := []string{
		// ECS, as Filebeat writes it.
		`{"@timestamp":"` + ts.Format(time.RFC3339Nano) + `","message":"invoice <42> & sent","log":{"level":"warning","logger":"mail"},"service":{"name":"` + service + `"},"trace":{"id":"4bf92f3577b34da6a3ce929d0e0e4736"},"host":{"name":"web-1"},"http":{"status":502},"tags":["a","b"]}`,
		// A flat JSON logger, epoch milliseconds, no source field: the index is the source.
		`{"timestamp":` + jsonInt(ts.Add(time.Second).UnixMilli()) + `,"msg":"flat","level":"error","user_id":7}`,
		// No message: refused, kept in the DLQ.
		`{"@timestamp":"` + ts.Format(time.RFC3339Nano) + `","service.name":"` + service + `","level":"info"}`,
	}
	var (
		mu                sync.Mutex
		succeeded, failed []string
		failedReason      string
	)
	// A UUID _id is the event's id; another _id is kept as metadata.
	clientID := uuid.NewString()
	for i, d := range docs {
		action, docID := "index", clientID
		if i == 1 {
			action, docID = "create", "order-17"
		}
		err := bi.Add(context.Background(), esutil.BulkIndexerItem{
			Action: action, Body: strings.NewReader(d), DocumentID: docID,
			OnSuccess: func(_ context.Context, _ esutil.BulkIndexerItem, r esutil.BulkIndexerResponseItem) {
				mu.Lock()
				defer mu.Unlock()
				succeeded = append(succeeded, r.DocumentID)
			},
			OnFailure: func(_ context.Context, _ esutil.BulkIndexerItem, r esutil.BulkIndexerResponseItem, err error) {
				mu.Lock()
				defer mu.Unlock()
				failed = append(failed, r.Index)
				failedReason = r.Error.Reason + errString(err)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := bi.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := bi.Stats(); st.NumFlushed != 2 || st.NumFailed != 1 || len(succeeded) != 2 || !strings.Contains(failedReason, "message") {
		t.Fatalf("stats %+v, succeeded %v, failed %v (%s)", st, succeeded, failed, failedReason)
	}

	got := p.stored(t, 2, service, 1)
	checkFields(t, "ECS document", got[0], map[string]any{"message": "invoice <42> & sent", "logLevel": "WARN",
		"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "timestamp": ts.Format(time.RFC3339Nano), "id": clientID})
	if !slices.Contains(succeeded, clientID) {
		t.Errorf("the answer's _id values %v do not include the client's %s", succeeded, clientID)
	}
	meta := got[0]["metadata"].(map[string]any)
	checkFields(t, "ECS metadata", meta, map[string]any{"_index": index, "host": map[string]any{"name": "web-1"},
		"http": map[string]any{"status": 502}, "tags": []any{"a", "b"}, "log": map[string]any{"logger": "mail"},
		"service": nil, "trace": nil, "message": nil, "@timestamp": nil})
	flat := p.stored(t, 2, index, 1)[0]
	checkFields(t, "flat document", flat, map[string]any{"message": "flat", "logLevel": "ERROR",
		"timestamp": ts.Add(time.Second).Format(time.RFC3339Nano), "traceId": nil})
	checkFields(t, "flat metadata", flat["metadata"].(map[string]any), map[string]any{"user_id": 7, "_index": index, "_id": "order-17"})
	if lines := p.lokiLines(t, `{source="`+index+`", user_id="7"}`, ts.Add(-time.Minute)); !slices.Equal(lines, []string{"flat"}) {
		t.Errorf("Loki query API: %q", lines)
	}
	if n := p.protocolEvents("elastic", "rejected"); n != 1 {
		t.Errorf("elastic rejected = %v, want 1", n)
	}

	// What shippers probe first.
	info, err := es.Info()
	if err != nil {
		t.Fatal(err)
	}
	info.Body.Close()
	if info.StatusCode != http.StatusOK {
		t.Errorf("GET / through the client: %d", info.StatusCode)
	}
	if r := get(t, p.producer+"/elastic/"); r.status != 200 || r.body["version"].(map[string]any)["number"] != p.cfg.Elastic.Version ||
		r.header.Get("X-Elastic-Product") != "Elasticsearch" {
		t.Errorf("GET /elastic/: %d %s", r.status, r.raw)
	}
	for _, path := range []string{"/", "/elastic/"} {
		if r := do(t, http.MethodHead, p.producer+path, "", nil); r.status != 200 {
			t.Errorf("HEAD %s: %d", path, r.status)
		}
	}
	if r := get(t, p.producer+"/elastic/_license"); r.status != 200 || r.body["license"].(map[string]any)["status"] != "active" {
		t.Errorf("GET /elastic/_license: %d %s", r.status, r.raw)
	}
	// Not NDJSON: 400 in Elasticsearch's error shape.
	if r := do(t, http.MethodPost, p.producer+"/_bulk", "application/x-ndjson", []byte("not json\n")); r.status != 400 || r.body["error"] == nil {
		t.Errorf("malformed bulk: %d %s", r.status, r.raw)
	}
}

func jsonInt(n int64) string { return strconv.FormatInt(n, 10) }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/app"
	"github.com/logengine/logengine/configs"
	"github.com/logengine/logengine/ingest"
	"github.com/logengine/logengine/ingest/event"
	"github.com/prometheus/client_golang/prometheus"
)

// dlqConfig is a configuration pointing at a fresh broker whose DLQ holds
// a valid producer-stage letter, an invalid one and a consumer-stage one.
func dlqConfig(t *testing.T) configs.Config {
	t.Helper()
	return dlqConfigWith(t, func(cfg configs.Config) []ingest.DeadLetter {
		return []ingest.DeadLetter{
			{Value: []byte(`{"level":"ERROR","source":"checkout","message":"card declined"}`), Reason: ingest.ReasonValidation,
				Err: "invalid event: message: too long", Stage: "producer", CorrelationID: "cid-7"},
			{Value: []byte(`{"level":"INFO","message":"no source"}`), Reason: ingest.ReasonValidation,
				Err: "invalid event: source: is required and must not be blank", Stage: "producer"},
			{Value: []byte("binary\tjunk"), Reason: ingest.ReasonDecode, Err: "decode event: invalid character 'b'",
				Stage: "consumer", Topic: cfg.Kafka.Topic, Partition: 1, Offset: 5, HasOrigin: true},
		}
	})
}

// dlqConfigWith is a configuration pointing at a fresh broker whose DLQ
// holds the letters given.
func dlqConfigWith(t *testing.T, letters func(configs.Config) []ingest.DeadLetter) configs.Config {
	t.Helper()
	b, err := ingest.StartEmbeddedBroker("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cfg := configs.Default()
	cfg.Kafka.Brokers = b.Addrs()
	cfg.Log.Level = "warn"
	cfg.Audit.Log = filepath.Join(t.TempDir(), "audit.log")
	kc := ingest.KafkaConfig{Brokers: b.Addrs(), Topic: cfg.Kafka.Topic, DLQTopic: cfg.Kafka.DLQTopic, Partitions: 2, ReplicationFactor: -1}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ingest.EnsureTopics(ctx, kc, logger); err != nil {
		t.Fatal(err)
	}
	p, err := ingest.NewProducer(ingest.ProducerConfig{Timeout: 10 * time.Second, MaxBufferedRecords: 100}, kc,
		logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if err := p.Publish(ctx, nil, letters(cfg), ""); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func runDLQ(t *testing.T, cmd func(context.Context, configs.Config, app.DLQOptions, io.Writer) error,
	cfg configs.Config, opts app.DLQOptions) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := cmd(ctx, cfg, opts, &out); err != nil {
		t.Fatalf("%+v: %v", opts, err)
	}
	return out.String()
}

func TestDLQList(t *testing.T) {
	t.Parallel()
	cfg := dlqConfig(t)

	plain := runDLQ(t, app.DLQList, cfg, app.DLQOptions{})
	lines := strings.Split(strings.TrimSuffix(plain, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("plain listing has %d lines, want header, 3 letters and a summary:\n%s", len(lines), plain)
	}
	header := strings.Fields(lines[0])
	if strings.Join(header, " ") != "TIME TENANT REASON STAGE ORIGIN SOURCE PREVIEW" {
		t.Errorf("header %q", lines[0])
	}
	col := strings.Index(lines[0], "PREVIEW")
	for _, l := range lines[1:4] {
		if len(l) < col || strings.Contains(l, "\t") {
			t.Errorf("line not aligned: %q", l)
		}
	}
	for _, want := range []string{
		"validation  producer  -",
		"checkout",
		`{"level":"ERROR","source":"checkout","message":"card declined"}`,
		"decode      consumer  " + cfg.Kafka.Topic + "/1@5",
		"binary junk",
	} {
		if !strings.Contains(plain, want) {
			t.Errorf("plain listing lacks %q:\n%s", want, plain)
		}
	}
	if lines[4] != "3 records (validation 2, decode 1)" {
		t.Errorf("summary %q", lines[4])
	}

	tests := []struct {
		name string
		opts app.DLQOptions
		want int
	}{
		{"all", app.DLQOptions{JSON: true}, 3},
		{"reason", app.DLQOptions{JSON: true, Reason: "Decode"}, 1},
		{"tenant", app.DLQOptions{JSON: true, Tenant: "default"}, 3},
		{"another tenant", app.DLQOptions{JSON: true, Tenant: "team-b"}, 0},
		{"limit", app.DLQOptions{JSON: true, Limit: 2}, 2},
		{"since a duration", app.DLQOptions{JSON: true, Since: "24h"}, 3},
		{"since a time to come", app.DLQOptions{JSON: true, Since: time.Now().Add(time.Hour).Format(time.RFC3339)}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := runDLQ(t, app.DLQList, cfg, tc.opts)
			var got []ingest.DLQRecord
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("JSON listing does not parse: %v\n%s", err, out)
			}
			if got == nil || len(got) != tc.want {
				t.Fatalf("%d letters, want %d:\n%s", len(got), tc.want, out)
			}
			for _, d := range got {
				if d.Reason == "" || d.Stage == "" || d.Error == "" || d.Preview == "" || d.Time.IsZero() {
					t.Errorf("letter lacks fields: %+v", d)
				}
				if tc.opts.Reason != "" && !strings.EqualFold(d.Reason, tc.opts.Reason) {
					t.Errorf("letter of reason %q listed for --reason=%s", d.Reason, tc.opts.Reason)
				}
				if d.Source == "checkout" && (d.CorrelationID != "cid-7" || d.OrigOffset != -1) {
					t.Errorf("producer letter %+v", d)
				}
				if d.Stage == "consumer" && (d.OrigTopic != cfg.Kafka.Topic || d.OrigPartition != 1 || d.OrigOffset != 5) {
					t.Errorf("consumer letter %+v", d)
				}
			}
		})
	}

	if out := runDLQ(t, app.DLQList, cfg, app.DLQOptions{Reason: "store"}); out != "0 records\n" {
		t.Errorf("empty plain listing %q, want the summary alone", out)
	}
}

func TestDLQReplay(t *testing.T) {
	t.Parallel()
	cfg := dlqConfig(t)

	plain := runDLQ(t, app.DLQReplay, cfg, app.DLQOptions{})
	lines := strings.Split(strings.TrimSuffix(plain, "\n"), "\n")
	if len(lines) != 3 || lines[0] != "replayed 1 records to "+cfg.Kafka.Topic+"; skipped 2" {
		t.Fatalf("plain replay output:\n%s", plain)
	}
	var skipSource, skipDecode bool
	for _, l := range lines[1:] {
		skipSource = skipSource || strings.Contains(l, ": invalid event: source: is required")
		skipDecode = skipDecode || strings.Contains(l, ": decode event:")
		if !strings.Contains(l, "@") {
			t.Errorf("skip line %q does not name partition@offset", l)
		}
	}
	if !skipSource || !skipDecode {
		t.Errorf("skip lines do not give both reasons:\n%s", plain)
	}

	out := runDLQ(t, app.DLQReplay, cfg, app.DLQOptions{JSON: true})
	var res struct {
		Replayed int `json:"replayed"`
		Skipped  []struct {
			Partition *int32 `json:"partition"`
			Offset    *int64 `json:"offset"`
			Reason    string `json:"reason"`
		} `json:"skipped"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("JSON replay output does not parse: %v\n%s", err, out)
	}
	if res.Replayed != 1 || len(res.Skipped) != 2 {
		t.Fatalf("JSON replay output %s", out)
	}
	for _, s := range res.Skipped {
		if s.Partition == nil || s.Offset == nil || s.Reason == "" {
			t.Errorf("skip %+v lacks a field", s)
		}
	}

	// Both replays produced the same event, byte for byte.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	recs, err := ingest.ReadDLQ(ctx, cfg.Kafka.Brokers, cfg.Kafka.Topic, ingest.DLQFilter{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || !bytes.Equal(recs[0].Value, recs[1].Value) {
		t.Fatalf("log topic holds %d records, want the same event twice: %+v", len(recs), recs)
	}
	ev, err := event.Decode(recs[0].Value)
	if err != nil || ev.Source != "checkout" || ev.TraceID != "cid-7" {
		t.Errorf("replayed event %+v, %v", ev, err)
	}
}

// A letter whose event is older than the store's retention is skipped: the
// store would delete it at once.
func TestDLQReplaySkipsEventsOlderThanTheRetention(t *testing.T) {
	t.Parallel()
	cfg := dlqConfigWith(t, func(configs.Config) []ingest.DeadLetter {
		return []ingest.DeadLetter{{Value: []byte(`{"level":"INFO","source":"s","message":"old","timestamp":"2020-01-01T00:00:00Z"}`),
			Reason: ingest.ReasonValidation, Err: "invalid event: timestamp: is older than the retention", Stage: "producer"}}
	})
	cfg.Postgres.Maintenance.Retention = 7 * 24 * time.Hour
	if out := runDLQ(t, app.DLQReplay, cfg, app.DLQOptions{}); !strings.HasPrefix(out, "replayed 0 records") ||
		!strings.Contains(out, "older than the retention") {
		t.Errorf("replay of an expired event:\n%s", out)
	}
	cfg.Ingest.Limits.AcceptExpired = true
	if out := runDLQ(t, app.DLQReplay, cfg, app.DLQOptions{}); !strings.HasPrefix(out, "replayed 1 records") {
		t.Errorf("replay with --accept-older-than-retention:\n%s", out)
	}
}

func TestDLQCommandsRefuseBadSettings(t *testing.T) {
	t.Parallel()
	cmds := map[string]func(context.Context, configs.Config, app.DLQOptions, io.Writer) error{
		"list": app.DLQList, "replay": app.DLQReplay,
	}
	tests := []struct {
		name    string
		brokers string
		opts    app.DLQOptions
		want    string
	}{
		{"no brokers", "", app.DLQOptions{}, "--kafka-brokers=host:9092"},
		{"embedded broker", ingest.EmbeddedBrokers, app.DLQOptions{}, "--kafka-brokers=127.0.0.1:9092"},
		{"bad since", "127.0.0.1:1", app.DLQOptions{Since: "yesterday"}, "--since"},
		{"negative since", "127.0.0.1:1", app.DLQOptions{Since: "-1h"}, "--since"},
		{"bad reason", "127.0.0.1:1", app.DLQOptions{Reason: "lost"}, "--reason"},
		{"negative limit", "127.0.0.1:1", app.DLQOptions{Limit: -1}, "--limit"},
	}
	for _, tc := range tests {
		for name, cmd := range cmds {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				cfg := configs.Default()
				if tc.brokers != "" {
					cfg.Kafka.Brokers = []string{tc.brokers}
				}
				var out bytes.Buffer
				err := cmd(context.Background(), cfg, tc.opts, &out)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("err = %v, want it to name %s", err, tc.want)
				}
				if out.Len() != 0 {
					t.Errorf("printed %q on error", out.String())
				}
			})
		}
	}
}

// Package ingesttest gives the ingest protocols' tests a producer handler
// whose Kafka refuses everything, to check what each protocol answers then.
package ingesttest

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/logengine/logengine/ingest"
	"github.com/logengine/logengine/store/logs"
	"github.com/prometheus/client_golang/prometheus"
)

// downPublisher is Kafka refusing every record.
type downPublisher struct{}

func (downPublisher) Publish(context.Context, []logs.Event, []ingest.DeadLetter, string) error {
	return errors.New("kafka is down")
}

// KafkaDownHandler is a producer handler with the default configuration
// whose every publish fails as when Kafka is unreachable.
func KafkaDownHandler() *ingest.Handler {
	return ingest.NewHandler(ingest.DefaultHandlerConfig(), downPublisher{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
}

package ingest_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/logengine/logengine/ingest"
	"github.com/logengine/logengine/ingest/event"
	"github.com/twmb/franz-go/pkg/kfake"
)

// bareCluster is a Kafka cluster that has no topic at all, like one that
// no logengine has used.
func bareCluster(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// missingTopics checks that err is a *MissingTopicError naming topics and
// brokers, in its fields and its message.
func missingTopics(t *testing.T, err error, brokers []string, topics ...string) {
	t.Helper()
	var mt *ingest.MissingTopicError
	if !errors.As(err, &mt) {
		t.Fatalf("err = %v, want a *ingest.MissingTopicError", err)
	}
	if !slices.Equal(mt.Topics, topics) || !slices.Equal(mt.Brokers, brokers) {
		t.Fatalf("missing topics %v on %v, want %v on %v", mt.Topics, mt.Brokers, topics, brokers)
	}
	for _, want := range append(slices.Clone(topics), brokers...) {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("message %q does not name %s", err, want)
		}
	}
}

func TestReadDLQSaysTheTopicIsMissing(t *testing.T) {
	t.Parallel()
	brokers := bareCluster(t)
	letters, err := ingest.ReadDLQ(dlqContext(t), brokers, "log-events-dlq", ingest.DLQFilter{}, dlqTestLogger())
	if letters != nil {
		t.Fatalf("read %d letters from a cluster without the topic", len(letters))
	}
	missingTopics(t, err, brokers, "log-events-dlq")
}

func TestReplayDLQSaysWhichTopicsAreMissing(t *testing.T) {
	t.Parallel()
	brokers := bareCluster(t)
	res, err := ingest.ReplayDLQ(dlqContext(t), brokers, "log-events-dlq", "log-events", ingest.DLQFilter{},
		event.DefaultLimits(), dlqTestLogger())
	missingTopics(t, err, brokers, "log-events-dlq", "log-events")
	if res.Replayed != 0 {
		t.Fatalf("replayed %d records to a missing topic", res.Replayed)
	}
}

func TestReplayDLQSaysTheLogTopicIsMissing(t *testing.T) {
	t.Parallel()
	kc, _ := dlqBroker(t) // has the topics "logs" and "logs-dlq"
	_, err := ingest.ReplayDLQ(dlqContext(t), kc.Brokers, kc.DLQTopic, "no-such-topic", ingest.DLQFilter{},
		event.DefaultLimits(), dlqTestLogger())
	missingTopics(t, err, kc.Brokers, "no-such-topic")
}

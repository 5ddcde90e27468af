package app_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/app"
	"github.com/logengine/logengine/configs"
	"github.com/twmb/franz-go/pkg/kfake"
)

// A dlq command pointed at a cluster without logengine's topics fails
// naming the topics and the brokers, rather than listing "0 records".
func TestDLQCommandsOnClusterWithoutTopics(t *testing.T) {
	t.Parallel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg := configs.Default()
	cfg.Kafka.Brokers = c.ListenAddrs()
	cfg.Log.Level = "error"

	for _, tc := range []struct {
		name string
		cmd  func(context.Context, configs.Config, app.DLQOptions, io.Writer) error
		want string
	}{
		{"list", app.DLQList, "topic log-events-dlq does not exist on " + strings.Join(cfg.Kafka.Brokers, ",")},
		{"replay", app.DLQReplay, "topics log-events-dlq, log-events do not exist on " + strings.Join(cfg.Kafka.Brokers, ",")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var out bytes.Buffer
			err := tc.cmd(ctx, cfg, app.DLQOptions{}, &out)
			if err == nil {
				t.Fatalf("no error; printed %q", out.String())
			}
			if !strings.HasPrefix(err.Error(), tc.want) || !strings.Contains(err.Error(), "logengine serve") {
				t.Errorf("error %q: want it to start %q and say how the topics come to be", err, tc.want)
			}
			if out.Len() > 0 {
				t.Errorf("printed %q as well as the error", out.String())
			}
		})
	}
}

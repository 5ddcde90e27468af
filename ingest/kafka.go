package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaConfig names the brokers and topics shared by producer and consumer.
type KafkaConfig struct {
	// Brokers are the seed brokers; none, or "embedded", starts the
	// in-process broker at EmbeddedAddr.
	Brokers           []string
	EmbeddedAddr      string
	Topic             string
	DLQTopic          string
	Partitions        int
	ReplicationFactor int
	// MinInsyncReplicas is the topics' min.insync.replicas when logengine
	// creates them; 0 leaves the broker's default.
	MinInsyncReplicas int
	Security          KafkaSecurity
}

// EmbeddedBrokers is the --kafka-brokers value that starts the in-process broker.
const EmbeddedBrokers = "embedded"

// DefaultKafkaConfig is the configuration with nothing set: the embedded broker.
func DefaultKafkaConfig() KafkaConfig {
	return KafkaConfig{
		EmbeddedAddr:      "127.0.0.1:9092",
		Topic:             "log-events",
		DLQTopic:          "log-events-dlq",
		Partitions:        6,
		ReplicationFactor: -1,
	}
}

// RegisterFlags binds the settings to flags whose defaults are c's values.
func (c *KafkaConfig) RegisterFlags(fs *pflag.FlagSet) {
	flagvalue.ListVar(fs, &c.Brokers, "kafka-brokers", c.Brokers, `Kafka seed brokers, comma-separated; "embedded" (or none, with --role=all) starts an in-memory broker`)
	fs.StringVar(&c.EmbeddedAddr, "embedded-kafka-addr", c.EmbeddedAddr, "listen address of the embedded broker")
	fs.StringVar(&c.Topic, "topic", c.Topic, "Kafka topic of accepted log events")
	fs.StringVar(&c.DLQTopic, "dlq-topic", c.DLQTopic, "Kafka topic of rejected and unstorable events (dead-letter queue)")
	fs.IntVar(&c.Partitions, "partitions", c.Partitions, "partitions of the topics when they are created")
	fs.IntVar(&c.ReplicationFactor, "replication-factor", c.ReplicationFactor, "replication factor of the topics when they are created (-1 = broker default)")
	fs.IntVar(&c.MinInsyncReplicas, "min-insync-replicas", c.MinInsyncReplicas,
		"min.insync.replicas of the topics when they are created (0 = broker default): replicas that must have a record before Kafka acknowledges it; with fewer in sync, ingest answers 503. Use 2 with --replication-factor=3")
	s := &c.Security
	fs.BoolVar(&s.TLS, "kafka-tls", s.TLS, "connect to the Kafka brokers over TLS (the system's CAs unless --kafka-tls-ca-file)")
	fs.StringVar(&s.TLSCAFile, "kafka-tls-ca-file", s.TLSCAFile, "PEM CA certificates that sign the Kafka brokers' certificates")
	fs.StringVar(&s.TLSCertFile, "kafka-tls-cert-file", s.TLSCertFile, "PEM client certificate for brokers that require one (mutual TLS)")
	fs.StringVar(&s.TLSKeyFile, "kafka-tls-key-file", s.TLSKeyFile, "PEM private key of --kafka-tls-cert-file")
	fs.StringVar(&s.SASLMechanism, "kafka-sasl-mechanism", s.SASLMechanism, "SASL authentication to Kafka: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: none); use with --kafka-tls")
	fs.StringVar(&s.SASLUser, "kafka-sasl-user", s.SASLUser, "SASL user name")
	fs.StringVar(&s.SASLPasswordFile, "kafka-sasl-password-file", s.SASLPasswordFile, "file holding the SASL password, read at every connection (or set LOGENGINE_KAFKA_SASL_PASSWORD; never a flag)")
}

// Validate reports every setting that cannot work, naming its flag.
func (c *KafkaConfig) Validate() error {
	var p flagvalue.Problems
	if c.Topic == "" {
		p.Add("topic", "must not be empty")
	}
	if c.DLQTopic == "" || c.DLQTopic == c.Topic {
		p.Add("dlq-topic", "must be set and differ from --topic")
	}
	if c.Partitions < 1 {
		p.Add("partitions", "must be at least 1")
	}
	if c.ReplicationFactor == 0 || c.ReplicationFactor < -1 {
		p.Add("replication-factor", "must be -1 (broker default) or at least 1")
	}
	switch {
	case c.MinInsyncReplicas < 0:
		p.Add("min-insync-replicas", "must be 0 (broker default) or at least 1")
	case c.ReplicationFactor > 0 && c.MinInsyncReplicas > c.ReplicationFactor:
		// Kafka would refuse every write to such a topic.
		p.Add("min-insync-replicas", "must not exceed --replication-factor (%d), or every write is refused", c.ReplicationFactor)
	case c.Embedded() && c.MinInsyncReplicas > 1:
		p.Add("min-insync-replicas", "the embedded broker is one broker, with one copy of each record: set --kafka-brokers to a Kafka cluster for more")
	}
	c.Security.validate(p.Add)
	if c.Embedded() && c.Security.Configured() {
		p.Add("kafka-brokers", "the embedded broker takes no TLS or SASL: set --kafka-brokers to a Kafka cluster to use --kafka-tls or --kafka-sasl-mechanism")
	}
	return p.Err()
}

// Embedded reports whether the brokers name the in-process broker.
func (c *KafkaConfig) Embedded() bool {
	return len(c.Brokers) == 0 || (len(c.Brokers) == 1 && c.Brokers[0] == EmbeddedBrokers)
}

// Configured reports whether brokers were given at all (embedded included).
func (c *KafkaConfig) Configured() bool { return len(c.Brokers) > 0 }

// EnsureTopics creates the log and DLQ topics when they are missing, so a
// fresh cluster works without a manual step, with the configured
// partitions, replication factor and min.insync.replicas. Topics that
// exist already are left as they are: a setting of theirs that differs
// from the configuration is logged as a warning, since changing a live
// topic is the operator's decision.
func EnsureTopics(ctx context.Context, cfg KafkaConfig, logger *slog.Logger) error {
	opts, err := cfg.ClientOpts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(opts, kgo.WithLogger(kgoLogger{logger}))...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var configs map[string]*string
	if cfg.MinInsyncReplicas > 0 {
		configs = map[string]*string{minInsyncReplicas: kadm.StringPtr(strconv.Itoa(cfg.MinInsyncReplicas))}
	}
	resp, err := adm.CreateTopics(ctx, int32(cfg.Partitions), int16(cfg.ReplicationFactor), configs, cfg.Topic, cfg.DLQTopic)
	if err != nil {
		return fmt.Errorf("create topics on %v: %w", cfg.Brokers, err)
	}
	var existing []string
	for _, r := range resp.Sorted() {
		switch {
		case r.Err == nil:
			logger.Info("created kafka topic", "topic", r.Topic, "partitions", cfg.Partitions,
				"replication_factor", r.ReplicationFactor, "min_insync_replicas", cfg.MinInsyncReplicas)
		case errors.Is(r.Err, kerr.TopicAlreadyExists):
			existing = append(existing, r.Topic)
		default:
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
		}
	}
	if len(existing) > 0 {
		// A topic that cannot be described still works: say so and go on.
		diffs, err := topicDiffs(ctx, adm, cfg, existing)
		if err != nil {
			logger.Warn("cannot check the settings of the existing kafka topics", "topics", existing, "err", err)
		}
		for _, d := range diffs {
			logger.Warn("existing kafka topic differs from the configuration; logengine does not change it", "topic", d.Topic,
				"setting", d.Setting, "topic_value", d.Have, "configured", d.Want, "hint", d.hint())
		}
	}
	return nil
}

// minInsyncReplicas is the topic config key of --min-insync-replicas.
const minInsyncReplicas = "min.insync.replicas"

// topicDiff is a setting of an existing topic that is not the configured one.
type topicDiff struct {
	Topic, Setting string
	Have, Want     int
}

func (d topicDiff) hint() string {
	switch d.Setting {
	case "partitions":
		if d.Have < d.Want {
			return "add partitions with kafka-topics.sh --alter --partitions"
		}
		return "partitions cannot be removed; set --partitions to match"
	case minInsyncReplicas:
		return "change it with kafka-configs.sh --alter --add-config " + minInsyncReplicas + "=N"
	default:
		return "change it with kafka-reassign-partitions.sh"
	}
}

// topicDiffs compares the existing topics with cfg: their partition count,
// their replication factor (unless cfg takes the broker's default) and
// their min.insync.replicas (likewise).
func topicDiffs(ctx context.Context, adm *kadm.Client, cfg KafkaConfig, topics []string) ([]topicDiff, error) {
	details, err := adm.ListTopics(ctx, topics...)
	if err == nil {
		err = details.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("describe topics %v: %w", topics, err)
	}
	var diffs []topicDiff
	for _, t := range topics {
		d := details[t]
		if n := len(d.Partitions); n != cfg.Partitions {
			diffs = append(diffs, topicDiff{Topic: t, Setting: "partitions", Have: n, Want: cfg.Partitions})
		}
		if rf := d.Partitions.NumReplicas(); cfg.ReplicationFactor > 0 && rf != cfg.ReplicationFactor {
			diffs = append(diffs, topicDiff{Topic: t, Setting: "replication factor", Have: rf, Want: cfg.ReplicationFactor})
		}
	}
	if cfg.MinInsyncReplicas <= 0 {
		return diffs, nil
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return diffs, fmt.Errorf("describe configs of %v: %w", topics, err)
	}
	for _, t := range topics {
		rc, err := rcs.On(t, nil)
		if err == nil {
			err = rc.Err
		}
		if err != nil {
			return diffs, fmt.Errorf("describe configs of %s: %w", t, err)
		}
		for _, c := range rc.Configs {
			if c.Key != minInsyncReplicas {
				continue
			}
			if have, err := strconv.Atoi(c.MaybeValue()); err == nil && have != cfg.MinInsyncReplicas {
				diffs = append(diffs, topicDiff{Topic: t, Setting: minInsyncReplicas, Have: have, Want: cfg.MinInsyncReplicas})
			}
		}
	}
	return diffs, nil
}

// EmbeddedBroker is an in-process, in-memory Kafka-protocol broker (kfake)
// for laptops and tests. Its data is gone when the process exits.
type EmbeddedBroker struct {
	cluster *kfake.Cluster
	admin   *kadm.Client // of a client of its own, for Unstored
	cl      *kgo.Client
}

// StartEmbeddedBroker listens on addr ("127.0.0.1:0" picks a free port).
func StartEmbeddedBroker(addr string) (*EmbeddedBroker, error) {
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		// Deleted records free their memory only with their whole
		// segment: small segments (instead of 100 MB per partition) keep
		// what the broker holds close to what is not stored yet.
		kfake.BrokerConfigs(map[string]string{"log.segment.bytes": strconv.Itoa(embeddedSegmentBytes)}),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, addr) }),
	)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka on %s: %w", addr, err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ClientID("logengine-embedded-admin"))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("embedded kafka admin client: %w", err)
	}
	return &EmbeddedBroker{cluster: c, cl: cl, admin: kadm.NewClient(cl)}, nil
}

// Unstored is how many records of topic the broker holds that the
// consumer group has not committed yet, that is not stored yet (the
// consumer commits after the store's transaction): what the process would
// lose if it died now.
func (b *EmbeddedBroker) Unstored(ctx context.Context, topic, group string) (int64, error) {
	ends, err := b.admin.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	starts, err := b.admin.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("start offsets of %s: %w", topic, err)
	}
	committed, err := b.admin.FetchOffsets(ctx, group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return 0, fmt.Errorf("offsets of group %s: %w", group, err)
	}
	var n int64
	ends.Each(func(end kadm.ListedOffset) {
		from := int64(0)
		if start, ok := starts.Lookup(topic, end.Partition); ok {
			from = start.Offset
		}
		if c, ok := committed.Lookup(topic, end.Partition); ok && c.Err == nil {
			from = max(from, c.At)
		}
		n += max(end.Offset-from, 0)
	})
	return n, nil
}

// embeddedSegmentBytes is the segment size of the embedded broker.
const embeddedSegmentBytes = 4 << 20

// Addrs are the broker's listen addresses, for --kafka-brokers.
func (b *EmbeddedBroker) Addrs() []string { return b.cluster.ListenAddrs() }

// Close stops the broker.
func (b *EmbeddedBroker) Close() {
	b.cl.Close()
	b.cluster.Close()
}

// kgoLogger sends franz-go's logs to slog, warnings and errors only.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelInfo
	switch level {
	case kgo.LogLevelError:
		lvl = slog.LevelError
	case kgo.LogLevelWarn:
		lvl = slog.LevelWarn
	case kgo.LogLevelDebug:
		lvl = slog.LevelDebug
	}
	k.l.Log(context.Background(), lvl, "kafka: "+msg, keyvals...)
}

// Package configs owns logengine's configuration: defaults, command-line
// flags, LOGENGINE_* environment variables and an optional YAML file, with
// one precedence (flag > environment > file > default) and one Validate.
package configs

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment variable logengine reads.
const EnvPrefix = "LOGENGINE_"

// EmbeddedBrokers is the --kafka-brokers value that starts the in-process broker.
const EmbeddedBrokers = "embedded"

// Config is the whole configuration tree.
type Config struct {
	File string // --config: the optional YAML file

	Roles string // comma list of roles

	Kafka    Kafka
	Postgres Postgres
	Redis    Redis
	HTTP     HTTP
	Producer Producer
	Consumer Consumer
	Gateway  Gateway
	Log      Log
	Tracing  Tracing
}

// Tracing configures OpenTelemetry traces.
type Tracing struct {
	// OTLPEndpoint is where spans go (OTLP over HTTP, e.g.
	// http://collector:4318); empty records none.
	OTLPEndpoint string
	SampleRatio  float64
}

// Kafka says where the log topic lives.
type Kafka struct {
	Brokers           string // comma list; "" or "embedded" = in-process broker
	EmbeddedAddr      string
	Topic             string
	DLQTopic          string
	Partitions        int
	ReplicationFactor int
	ConsumerGroup     string
}

// Postgres is the store's connection.
type Postgres struct {
	URL              string
	MaxConns         int
	StatementTimeout time.Duration
	PartitionPeriod  time.Duration
	// Retention drops partitions older than it; 0 keeps everything.
	Retention           Days
	MaintenanceInterval time.Duration
}

// Redis is the cache's connection; an empty address disables the cache.
type Redis struct {
	Addr string
	// Prefix namespaces the cache keys, so several deployments can share
	// one Redis.
	Prefix string
	// LocalBytes bounds the in-process tier per Redis connection.
	LocalBytes int
}

// Producer bounds what the ingest API takes.
type Producer struct {
	MaxBodyBytes       int64
	MaxBatchEvents     int
	MaxMessageBytes    int
	MaxSourceBytes     int
	MaxMetadataKeys    int
	MaxMetadataBytes   int
	MaxFutureSkew      time.Duration
	ProduceTimeout     time.Duration
	MaxBufferedRecords int
	MaxBufferedBytes   int
}

// Consumer shapes the batches written to PostgreSQL.
type Consumer struct {
	BatchSize     int
	FlushInterval time.Duration
	WriteTimeout  time.Duration
}

// Gateway shapes queries, the cache and the database breaker.
type Gateway struct {
	CacheTTL           time.Duration
	CacheTTLClosed     time.Duration
	CacheTTLAggregates time.Duration
	HotWindow          time.Duration
	QueryTimeout       time.Duration
	MaxPageSize        int
	MaxOffset          int
	CountLimit         int
	// MaxKeywordWindow bounds keyword searches with no narrowing filter.
	MaxKeywordWindow     Days
	MaxConcurrentQueries int
	QueryQueueWait       time.Duration
	BreakerFailures      int
	BreakerDelay         time.Duration
}

// Log shapes the process's own logs.
type Log struct {
	Level  string
	Format string
}

// Default is the configuration that runs on a laptop with nothing set.
func Default() Config {
	return Config{
		Roles: "all",
		Kafka: Kafka{
			EmbeddedAddr:      "127.0.0.1:9092",
			Topic:             "log-events",
			DLQTopic:          "log-events-dlq",
			Partitions:        6,
			ReplicationFactor: -1,
			ConsumerGroup:     "log-consumer-group",
		},
		Postgres: Postgres{
			URL:                 "postgres://postgres@127.0.0.1:5432/logengine?sslmode=disable",
			MaxConns:            8,
			StatementTimeout:    10 * time.Second,
			PartitionPeriod:     24 * time.Hour,
			Retention:           Days(7 * 24 * time.Hour),
			MaintenanceInterval: time.Minute,
		},
		Redis: Redis{Addr: "127.0.0.1:6379", Prefix: "logengine:v1:", LocalBytes: 32 << 20},
		HTTP:  DefaultHTTP(),
		Producer: Producer{
			MaxBodyBytes:       10 << 20,
			MaxBatchEvents:     10000,
			MaxMessageBytes:    64 << 10,
			MaxSourceBytes:     255,
			MaxMetadataKeys:    64,
			MaxMetadataBytes:   16 << 10,
			MaxFutureSkew:      5 * time.Minute,
			ProduceTimeout:     10 * time.Second,
			MaxBufferedRecords: 100000,
			MaxBufferedBytes:   64 << 20,
		},
		Consumer: Consumer{
			BatchSize:     5000,
			FlushInterval: 200 * time.Millisecond,
			WriteTimeout:  30 * time.Second,
		},
		Gateway: Gateway{
			CacheTTL:             30 * time.Second,
			CacheTTLClosed:       5 * time.Minute,
			CacheTTLAggregates:   time.Hour,
			HotWindow:            15 * time.Minute,
			QueryTimeout:         10 * time.Second,
			MaxPageSize:          1000,
			MaxOffset:            100000,
			MaxKeywordWindow:     Days(24 * time.Hour),
			MaxConcurrentQueries: 16,
			QueryQueueWait:       100 * time.Millisecond,
			CountLimit:           10000,
			BreakerFailures:      3,
			BreakerDelay:         10 * time.Second,
		},
		Log:     Log{Level: "info", Format: "json"},
		Tracing: Tracing{SampleRatio: 1},
	}
}

// RegisterFlags binds every setting to a flag whose default is c's value.
// The YAML key and the environment variable of a setting derive from its
// flag name (kafka-brokers → LOGENGINE_KAFKA_BROKERS).
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.File, "config", c.File, "optional YAML file; its keys are these flag names")
	fs.StringVar(&c.Roles, "role", c.Roles, "roles to run: all, or a comma list of producer, consumer, gateway")

	fs.StringVar(&c.Kafka.Brokers, "kafka-brokers", c.Kafka.Brokers, `Kafka seed brokers, comma-separated; "embedded" starts an in-memory broker (the default for --role=all when empty)`)
	fs.StringVar(&c.Kafka.EmbeddedAddr, "embedded-kafka-addr", c.Kafka.EmbeddedAddr, "listen address of the embedded broker")
	fs.StringVar(&c.Kafka.Topic, "topic", c.Kafka.Topic, "Kafka topic of accepted log events")
	fs.StringVar(&c.Kafka.DLQTopic, "dlq-topic", c.Kafka.DLQTopic, "Kafka topic of rejected and unstorable events (dead-letter queue)")
	fs.IntVar(&c.Kafka.Partitions, "partitions", c.Kafka.Partitions, "partitions of the topics when they are created")
	fs.IntVar(&c.Kafka.ReplicationFactor, "replication-factor", c.Kafka.ReplicationFactor, "replication factor of the topics when they are created (-1 = broker default)")
	fs.StringVar(&c.Kafka.ConsumerGroup, "consumer-group", c.Kafka.ConsumerGroup, "Kafka consumer group of the consumer role")

	fs.StringVar(&c.Postgres.URL, "postgres-url", c.Postgres.URL, "PostgreSQL URL; the database is created if missing")
	fs.IntVar(&c.Postgres.MaxConns, "postgres-max-conns", c.Postgres.MaxConns, "PostgreSQL connection pool size")
	fs.DurationVar(&c.Postgres.StatementTimeout, "statement-timeout", c.Postgres.StatementTimeout, "PostgreSQL statement timeout of one query")
	fs.DurationVar(&c.Postgres.PartitionPeriod, "partition-period", c.Postgres.PartitionPeriod, "time range of one log partition: 24h or whole hours dividing a day; fixed when the database is created")
	fs.Var(&c.Postgres.Retention, "retention", "drop partitions older than this (e.g. 7d, 36h); 0 keeps everything")
	fs.DurationVar(&c.Postgres.MaintenanceInterval, "maintenance-interval", c.Postgres.MaintenanceInterval, "pause between maintenance passes (partitions ahead, retention, indexes of closed partitions)")

	fs.StringVar(&c.Redis.Addr, "redis-addr", c.Redis.Addr, "Redis address of the query cache; empty disables the cache")
	fs.StringVar(&c.Redis.Prefix, "cache-prefix", c.Redis.Prefix, "prefix of every cache key in Redis")
	fs.IntVar(&c.Redis.LocalBytes, "cache-local-bytes", c.Redis.LocalBytes, "bytes of the in-process cache tier per Redis connection")

	c.HTTP.RegisterFlags(fs)

	fs.Int64Var(&c.Producer.MaxBodyBytes, "max-body-bytes", c.Producer.MaxBodyBytes, "largest accepted request body (413 beyond)")
	fs.IntVar(&c.Producer.MaxBatchEvents, "max-batch-events", c.Producer.MaxBatchEvents, "most events in one batch request (413 beyond)")
	fs.IntVar(&c.Producer.MaxMessageBytes, "max-message-bytes", c.Producer.MaxMessageBytes, "longest message of one event")
	fs.IntVar(&c.Producer.MaxSourceBytes, "max-source-bytes", c.Producer.MaxSourceBytes, "longest source of one event")
	fs.IntVar(&c.Producer.MaxMetadataKeys, "max-metadata-keys", c.Producer.MaxMetadataKeys, "most metadata keys of one event")
	fs.IntVar(&c.Producer.MaxMetadataBytes, "max-metadata-bytes", c.Producer.MaxMetadataBytes, "largest metadata object of one event")
	fs.DurationVar(&c.Producer.MaxFutureSkew, "max-future-skew", c.Producer.MaxFutureSkew, "how far in the future an event's timestamp may be")
	fs.DurationVar(&c.Producer.ProduceTimeout, "produce-timeout", c.Producer.ProduceTimeout, "how long a request waits for Kafka's acknowledgement before 503")
	fs.IntVar(&c.Producer.MaxBufferedRecords, "max-buffered-records", c.Producer.MaxBufferedRecords, "records waiting for Kafka's acknowledgement at most; requests past it get 503 at once")
	fs.IntVar(&c.Producer.MaxBufferedBytes, "max-buffered-bytes", c.Producer.MaxBufferedBytes, "bytes waiting for Kafka's acknowledgement at most; requests past it get 503 at once")

	fs.IntVar(&c.Consumer.BatchSize, "batch-size", c.Consumer.BatchSize, "most events the consumer writes in one transaction")
	fs.DurationVar(&c.Consumer.FlushInterval, "flush-interval", c.Consumer.FlushInterval, "longest wait to fill a batch once its first event arrived")
	fs.DurationVar(&c.Consumer.WriteTimeout, "write-timeout", c.Consumer.WriteTimeout, "deadline of one attempt to write a batch to PostgreSQL (then it is retried)")

	fs.DurationVar(&c.Gateway.CacheTTL, "cache-ttl", c.Gateway.CacheTTL, "lifetime of a cached answer for a window touching the last --hot-window (bounded staleness)")
	fs.DurationVar(&c.Gateway.CacheTTLClosed, "cache-ttl-closed", c.Gateway.CacheTTLClosed, "lifetime of a cached search over a window entirely in the past (kept exact by invalidation epochs)")
	fs.DurationVar(&c.Gateway.CacheTTLAggregates, "cache-ttl-aggregates", c.Gateway.CacheTTLAggregates, "lifetime of cached stats and histograms over a window entirely in the past")
	fs.DurationVar(&c.Gateway.HotWindow, "hot-window", c.Gateway.HotWindow, "a window ending less than this ago is hot: cached for --cache-ttl only")
	fs.DurationVar(&c.Gateway.QueryTimeout, "query-timeout", c.Gateway.QueryTimeout, "deadline of one gateway query")
	fs.IntVar(&c.Gateway.MaxPageSize, "max-page-size", c.Gateway.MaxPageSize, "largest page a search returns (size is clamped to it)")
	fs.IntVar(&c.Gateway.MaxOffset, "max-offset", c.Gateway.MaxOffset, "largest page × size of offset paging (422 beyond; use the cursor)")
	fs.IntVar(&c.Gateway.CountLimit, "count-limit", c.Gateway.CountLimit, "rows counted at most for totalElements; past it the total is a lower bound")
	fs.Var(&c.Gateway.MaxKeywordWindow, "max-keyword-window", "longest window of a keyword search without a source, traceId or meta filter (422 beyond; 0 = no limit)")
	fs.IntVar(&c.Gateway.MaxConcurrentQueries, "max-concurrent-queries", c.Gateway.MaxConcurrentQueries, "database queries the gateway runs at once (429 beyond)")
	fs.DurationVar(&c.Gateway.QueryQueueWait, "query-queue-wait", c.Gateway.QueryQueueWait, "how long a query waits for a free place before 429")
	fs.IntVar(&c.Gateway.BreakerFailures, "breaker-failures", c.Gateway.BreakerFailures, "consecutive PostgreSQL failures that open the gateway's breaker")
	fs.DurationVar(&c.Gateway.BreakerDelay, "breaker-delay", c.Gateway.BreakerDelay, "how long the breaker stays open before it probes again")

	fs.StringVar(&c.Tracing.OTLPEndpoint, "otlp-endpoint", c.Tracing.OTLPEndpoint, "OTLP/HTTP endpoint for traces, e.g. http://localhost:4318; empty disables export")
	fs.Float64Var(&c.Tracing.SampleRatio, "otlp-sample-ratio", c.Tracing.SampleRatio, "share of new traces recorded (0..1); a sampled parent's decision is kept")
	fs.StringVar(&c.Log.Level, "log-level", c.Log.Level, "debug, info, warn or error")
	fs.StringVar(&c.Log.Format, "log-format", c.Log.Format, "json or text")
}

// EnvName is the environment variable of a flag.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Resolve applies the environment and the YAML file to every flag that was
// not given on the command line. lookupEnv is os.LookupEnv outside tests.
func Resolve(fs *pflag.FlagSet, lookupEnv func(string) (string, bool)) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		if v, ok := lookupEnv(EnvName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", EnvName(f.Name), err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	file := fs.Lookup("config")
	if file == nil || file.Value.String() == "" {
		return nil
	}
	values, err := readYAML(file.Value.String())
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		f := fs.Lookup(key)
		if f == nil || key == "config" {
			errs = append(errs, fmt.Errorf("%s: unknown key %q", file.Value.String(), key))
			continue
		}
		if f.Changed {
			continue // set on the command line or by the environment: they win
		}
		if err := fs.Set(key, values[key]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", file.Value.String(), key, err))
		}
	}
	return errors.Join(errs...)
}

// readYAML flattens a YAML mapping into flag values; a list becomes a
// comma list.
func readYAML(path string) (map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parse config file %s: %w", path, err)
	}
	out := make(map[string]string, len(doc))
	for k, v := range doc {
		switch t := v.(type) {
		case nil:
			out[k] = ""
		case []any:
			parts := make([]string, len(t))
			for i, p := range t {
				parts[i] = fmt.Sprint(p)
			}
			out[k] = strings.Join(parts, ",")
		case map[string]any:
			return nil, fmt.Errorf("config file %s: key %q must be a scalar or a list", path, k)
		default:
			out[k] = fmt.Sprint(t)
		}
	}
	return out, nil
}

// Validate reports every setting that cannot work, naming its flag.
func (c *Config) Validate() error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	if c.Kafka.Topic == "" {
		bad("topic", "must not be empty")
	}
	if c.Kafka.DLQTopic == "" || c.Kafka.DLQTopic == c.Kafka.Topic {
		bad("dlq-topic", "must be set and differ from --topic")
	}
	if c.Kafka.Partitions < 1 {
		bad("partitions", "must be at least 1")
	}
	if c.Kafka.ReplicationFactor == 0 || c.Kafka.ReplicationFactor < -1 {
		bad("replication-factor", "must be -1 (broker default) or at least 1")
	}
	if c.Kafka.ConsumerGroup == "" {
		bad("consumer-group", "must not be empty")
	}
	if c.Postgres.URL == "" {
		bad("postgres-url", "must not be empty")
	}
	if c.Postgres.MaxConns < 1 {
		bad("postgres-max-conns", "must be at least 1")
	}
	positive := []struct {
		flag string
		v    int64
	}{
		{"max-body-bytes", c.Producer.MaxBodyBytes},
		{"max-batch-events", int64(c.Producer.MaxBatchEvents)},
		{"max-message-bytes", int64(c.Producer.MaxMessageBytes)},
		{"max-source-bytes", int64(c.Producer.MaxSourceBytes)},
		{"max-metadata-keys", int64(c.Producer.MaxMetadataKeys)},
		{"max-metadata-bytes", int64(c.Producer.MaxMetadataBytes)},
		{"max-buffered-records", int64(c.Producer.MaxBufferedRecords)},
		{"max-buffered-bytes", int64(c.Producer.MaxBufferedBytes)},
		{"batch-size", int64(c.Consumer.BatchSize)},
		{"max-page-size", int64(c.Gateway.MaxPageSize)},
		{"max-offset", int64(c.Gateway.MaxOffset)},
		{"count-limit", int64(c.Gateway.CountLimit)},
		{"breaker-failures", int64(c.Gateway.BreakerFailures)},
		{"max-concurrent-queries", int64(c.Gateway.MaxConcurrentQueries)},
		{"cache-local-bytes", int64(c.Redis.LocalBytes)},
	}
	for _, p := range positive {
		if p.v < 1 {
			bad(p.flag, "must be at least 1")
		}
	}
	durations := []struct {
		flag string
		v    time.Duration
	}{
		{"produce-timeout", c.Producer.ProduceTimeout},
		{"flush-interval", c.Consumer.FlushInterval},
		{"write-timeout", c.Consumer.WriteTimeout},
		{"query-timeout", c.Gateway.QueryTimeout},
		{"cache-ttl", c.Gateway.CacheTTL},
		{"cache-ttl-closed", c.Gateway.CacheTTLClosed},
		{"cache-ttl-aggregates", c.Gateway.CacheTTLAggregates},
		{"hot-window", c.Gateway.HotWindow},
		{"breaker-delay", c.Gateway.BreakerDelay},
		{"maintenance-interval", c.Postgres.MaintenanceInterval},
	}
	for _, d := range durations {
		if d.v <= 0 {
			bad(d.flag, "must be positive")
		}
	}
	if c.Producer.MaxFutureSkew < 0 {
		bad("max-future-skew", "must not be negative")
	}
	if p := c.Postgres.PartitionPeriod; p <= 0 || p%time.Hour != 0 || (24*time.Hour)%p != 0 {
		bad("partition-period", "must be 24h or a whole number of hours dividing a day (1h, 2h, 3h, 4h, 6h, 8h, 12h), not %s", p)
	}
	if c.Postgres.Retention < 0 {
		bad("retention", "must not be negative")
	}
	if c.Gateway.MaxKeywordWindow < 0 {
		bad("max-keyword-window", "must not be negative")
	}
	if c.Gateway.QueryQueueWait < 0 {
		bad("query-queue-wait", "must not be negative")
	}
	if c.Postgres.StatementTimeout < 0 {
		bad("statement-timeout", "must not be negative")
	}
	if c.Tracing.SampleRatio < 0 || c.Tracing.SampleRatio > 1 {
		bad("otlp-sample-ratio", "must be between 0 and 1")
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		bad("log-format", "must be json or text, not %q", c.Log.Format)
	}
	errs = append(errs, c.HTTP.Validate())
	return errors.Join(errs...)
}

// BrokerList splits --kafka-brokers.
func (k Kafka) BrokerList() []string {
	var out []string
	for _, b := range strings.Split(k.Brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// Days is a duration flag that also takes days: 7d, 36h, 90m.
type Days time.Duration

// String formats whole days as Nd.
func (d *Days) String() string {
	v := time.Duration(*d)
	if v != 0 && v%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", v/(24*time.Hour))
	}
	return v.String()
}

// Set parses Nd or a Go duration.
func (d *Days) Set(s string) error {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err != nil || fmt.Sprint(days) != n {
			return fmt.Errorf("invalid duration %q", s)
		}
		*d = Days(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Days(v)
	return nil
}

// Type names the flag's kind in --help.
func (d *Days) Type() string { return "duration" }

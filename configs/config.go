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

	"github.com/logengine/logengine/cache"
	"github.com/logengine/logengine/configs/flagvalue"
	"github.com/logengine/logengine/ingest"
	"github.com/logengine/logengine/ingest/elastic"
	lokipush "github.com/logengine/logengine/ingest/loki"
	"github.com/logengine/logengine/ingest/syslog"
	"github.com/logengine/logengine/query"
	"github.com/logengine/logengine/query/loki"
	"github.com/logengine/logengine/store"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment variable logengine reads.
const EnvPrefix = "LOGENGINE_"

// EmbeddedBrokers is the --kafka-brokers value that starts the in-process broker.
const EmbeddedBrokers = "embedded"

// Config is the whole configuration tree. Each component's part is that
// component's own Config type, which declares its defaults, registers its
// flags and validates itself; this tree only composes them.
type Config struct {
	File string // --config: the optional YAML file

	Roles string // comma list of roles

	Kafka       ingest.KafkaConfig
	Producer    ingest.ProducerConfig
	Ingest      ingest.HandlerConfig
	LokiPush    lokipush.Config
	Elastic     elastic.Config
	Syslog      syslog.Config
	Consumer    ingest.ConsumerConfig
	Postgres    store.Config
	Replicas    store.ReplicaConfig
	Redis       cache.Config
	Gateway     query.ServiceConfig
	QueryLimits query.Limits
	Tail        query.TailConfig
	Loki        loki.Config
	HTTP        HTTP
	Auth        Auth
	TLS         TLS
	Log         Log
	Tracing     Tracing
	Audit       Audit
}

// Tracing configures OpenTelemetry traces.
type Tracing struct {
	// OTLPEndpoint is where spans go (OTLP over HTTP, e.g.
	// http://collector:4318); empty records none.
	OTLPEndpoint string
	SampleRatio  float64
}

// Log shapes the process's own logs.
type Log struct {
	Level  string
	Format string
}

// Default is the configuration that runs on a laptop with nothing set.
func Default() Config {
	return Config{
		Roles:       "all",
		Kafka:       ingest.DefaultKafkaConfig(),
		Producer:    ingest.DefaultProducerConfig(),
		Ingest:      ingest.DefaultHandlerConfig(),
		LokiPush:    lokipush.DefaultConfig(),
		Elastic:     elastic.DefaultConfig(),
		Syslog:      syslog.DefaultConfig(),
		Consumer:    ingest.DefaultConsumerConfig(),
		Postgres:    store.DefaultConfig(),
		Replicas:    store.DefaultReplicaConfig(),
		Redis:       cache.DefaultConfig(),
		Gateway:     query.DefaultServiceConfig(),
		QueryLimits: query.DefaultLimits(),
		Tail:        query.DefaultTailConfig(),
		Loki:        loki.DefaultConfig(),
		HTTP:        DefaultHTTP(),
		Auth:        DefaultAuth(),
		Log:         Log{Level: "info", Format: "json"},
		Tracing:     Tracing{SampleRatio: 1},
		Audit:       DefaultAudit(),
	}
}

// RegisterFlags binds every setting of `serve` to a flag whose default is
// c's value. The YAML key and the environment variable of a setting derive
// from its flag name (kafka-brokers → LOGENGINE_KAFKA_BROKERS).
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	c.RegisterProcessFlags(fs)
	c.Kafka.RegisterFlags(fs)
	c.Producer.RegisterFlags(fs)
	c.Ingest.RegisterFlags(fs)
	c.LokiPush.RegisterFlags(fs)
	c.Elastic.RegisterFlags(fs)
	c.Syslog.RegisterFlags(fs)
	c.Consumer.RegisterFlags(fs)
	c.Postgres.RegisterFlags(fs)
	c.Replicas.RegisterFlags(fs)
	c.Redis.RegisterFlags(fs)
	c.Gateway.RegisterFlags(fs)
	c.QueryLimits.RegisterFlags(fs)
	c.Tail.RegisterFlags(fs)
	c.Loki.RegisterFlags(fs)
}

// RegisterProcessFlags binds the settings of the process as a whole (its
// roles, listeners, logs and traces), which belong to no one component.
func (c *Config) RegisterProcessFlags(fs *pflag.FlagSet) {
	c.registerCommon(fs)
	fs.StringVar(&c.Roles, "role", c.Roles, "roles to run: all, or a comma list of producer, consumer, gateway")
	c.HTTP.RegisterFlags(fs)
	c.Auth.RegisterFlags(fs)
	c.TLS.RegisterFlags(fs)
	c.Tracing.RegisterFlags(fs)
	c.Audit.RegisterFlags(fs)
}

// RegisterMigrateFlags binds what `migrate` uses: the database and logging.
func (c *Config) RegisterMigrateFlags(fs *pflag.FlagSet) {
	c.registerCommon(fs)
	c.Postgres.RegisterFlags(fs)
}

// RegisterDLQFlags binds what the `dlq` commands use: the brokers and
// topics, and the event limits a replayed letter is validated against.
func (c *Config) RegisterDLQFlags(fs *pflag.FlagSet) {
	c.registerCommon(fs)
	c.Kafka.RegisterFlags(fs)
	c.Ingest.Limits.RegisterFlags(fs)
	c.Audit.RegisterFlags(fs) // a replay is audited
	// A replayed event older than the store keeps would be deleted at once.
	flagvalue.DaysVar(fs, &c.Postgres.Maintenance.Retention, "retention",
		"the store's retention: replay skips letters whose event is older than it (unless --accept-older-than-retention); 0 = none")
}

// registerCommon binds what every command that reads configuration has.
func (c *Config) registerCommon(fs *pflag.FlagSet) {
	fs.StringVar(&c.File, "config", c.File, "optional YAML file; its keys are the flag names of logengine serve")
	c.Log.RegisterFlags(fs)
}

// RegisterFlags binds the tracing settings.
func (t *Tracing) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&t.OTLPEndpoint, "otlp-endpoint", t.OTLPEndpoint, "OTLP/HTTP endpoint for traces, e.g. http://localhost:4318; empty disables export")
	fs.Float64Var(&t.SampleRatio, "otlp-sample-ratio", t.SampleRatio, "share of new traces recorded (0..1); a sampled parent's decision is kept")
}

// RegisterFlags binds the logging settings.
func (l *Log) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&l.Level, "log-level", l.Level, "debug, info, warn or error")
	fs.StringVar(&l.Format, "log-format", l.Format, "json or text")
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
	// One file serves every command: a key of another command's is
	// skipped, a key no command has is an error.
	var serve Config
	every := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	serve.RegisterFlags(every)
	for _, key := range keys {
		f := fs.Lookup(key)
		if key == "config" || (f == nil && every.Lookup(key) == nil) {
			errs = append(errs, fmt.Errorf("%s: unknown key %q", file.Value.String(), key))
			continue
		}
		if f == nil {
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
	var p flagvalue.Problems
	if c.Tracing.SampleRatio < 0 || c.Tracing.SampleRatio > 1 {
		p.Add("otlp-sample-ratio", "must be between 0 and 1")
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		p.Add("log-level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		p.Add("log-format", "must be json or text, not %q", c.Log.Format)
	}
	// The write deadline runs from the end of the headers: it must cover a
	// body read up to the read timeout, then the wait for Kafka or a query.
	if wait := max(c.Producer.Timeout, c.Gateway.QueryTimeout); c.HTTP.WriteTimeout > c.HTTP.ReadTimeout && c.HTTP.WriteTimeout <= c.HTTP.ReadTimeout+wait {
		p.Add("http-write-timeout", "must be longer than --http-read-timeout (%s) plus the longer of --produce-timeout and --query-timeout (%s)",
			c.HTTP.ReadTimeout, wait)
	}
	return errors.Join(c.Kafka.Validate(), c.Producer.Validate(), c.Ingest.Validate(), c.LokiPush.Validate(), c.Elastic.Validate(), c.Syslog.Validate(),
		c.Consumer.Validate(),
		c.Postgres.Validate(), c.Replicas.Validate(), c.Redis.Validate(), c.Gateway.Validate(), c.QueryLimits.Validate(), c.Tail.Validate(), c.Loki.Validate(),
		c.HTTP.Validate(), c.Auth.Validate(), c.TLS.Validate(), c.Audit.Validate(), p.Err())
}

package configs_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/configs"
	"github.com/spf13/pflag"
)

// env is a fake environment for Resolve; the process environment is never
// touched.
type env map[string]string

func (e env) lookup(name string) (string, bool) {
	v, ok := e[name]
	return v, ok
}

// writeYAML writes a config file in a fresh temporary directory.
func writeYAML(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "logengine.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// load does what main does: defaults, flags, command line, then Resolve.
func load(t *testing.T, args []string, e env) (configs.Config, error) {
	t.Helper()
	c := configs.Default()
	fs := pflag.NewFlagSet("logengine", pflag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	err := configs.Resolve(fs, e.lookup)
	return c, err
}

func TestDefaultsAreTheDocumentedOnes(t *testing.T) {
	c := configs.Default()
	tests := []struct {
		name      string
		got, want any
	}{
		{"topic", c.Kafka.Topic, "log-events"},
		{"dlq-topic", c.Kafka.DLQTopic, "log-events-dlq"},
		{"partitions", c.Kafka.Partitions, 6},
		{"consumer-group", c.Consumer.Group, "log-consumer-group"},
		{"kafka-brokers", c.Kafka.Brokers, []string(nil)},
		{"producer-addr", c.HTTP.ProducerAddr, ":8081"},
		{"consumer-addr", c.HTTP.ConsumerAddr, ":8082"},
		{"gateway-addr", c.HTTP.GatewayAddr, ":8080"},
		{"postgres-url", c.Postgres.URL, "postgres://postgres@127.0.0.1:5432/logengine?sslmode=disable"},
		{"redis-addr", c.Redis.Addr, "127.0.0.1:6379"},
		{"role", c.Roles, "all"},
		{"config", c.File, ""},
	}
	for _, tc := range tests {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("default %s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v, want nil", err)
	}
}

func TestFlagDefaultsAreTheConfigDefaults(t *testing.T) {
	c, err := load(t, nil, env{})
	if err != nil {
		t.Fatalf("Resolve with nothing set: %v", err)
	}
	if want := configs.Default(); !reflect.DeepEqual(c, want) {
		t.Errorf("config with nothing set = %+v, want Default() %+v", c, want)
	}
}

func TestResolvePrecedence(t *testing.T) {
	const yamlTopic = "topic: from-yaml\n"
	tests := []struct {
		name      string
		flag      bool // --topic=from-flag
		env       bool // LOGENGINE_TOPIC=from-env
		yaml      bool // topic: from-yaml
		wantTopic string
	}{
		{"default alone", false, false, false, "log-events"},
		{"yaml beats default", false, false, true, "from-yaml"},
		{"env beats default", false, true, false, "from-env"},
		{"flag beats default", true, false, false, "from-flag"},
		{"env beats yaml", false, true, true, "from-env"},
		{"flag beats yaml", true, false, true, "from-flag"},
		{"flag beats env", true, true, false, "from-flag"},
		{"flag beats env and yaml", true, true, true, "from-flag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			e := env{}
			if tc.flag {
				args = append(args, "--topic=from-flag")
			}
			if tc.env {
				e["LOGENGINE_TOPIC"] = "from-env"
			}
			if tc.yaml {
				args = append(args, "--config="+writeYAML(t, yamlTopic))
			}
			c, err := load(t, args, e)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if c.Kafka.Topic != tc.wantTopic {
				t.Errorf("topic = %q, want %q", c.Kafka.Topic, tc.wantTopic)
			}
		})
	}
}

func TestResolveFlagEqualToDefaultStillWins(t *testing.T) {
	// Given on the command line, even at its default value, a flag wins.
	c, err := load(t, []string{"--partitions=6", "--config=" + writeYAML(t, "partitions: 3\n")},
		env{"LOGENGINE_PARTITIONS": "12"})
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if c.Kafka.Partitions != 6 {
		t.Errorf("partitions = %d, want the command line's 6", c.Kafka.Partitions)
	}
}

func TestResolveConfigFileFromEnv(t *testing.T) {
	path := writeYAML(t, "consumer-group: from-yaml\n")
	c, err := load(t, nil, env{"LOGENGINE_CONFIG": path})
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if c.File != path || c.Consumer.Group != "from-yaml" {
		t.Errorf("file %q consumer group %q, want %q and from-yaml", c.File, c.Consumer.Group, path)
	}
}

func TestResolveYAMLTypes(t *testing.T) {
	path := writeYAML(t, `
kafka-brokers:
  - kafka-1:9092
  - kafka-2:9092
partitions: 12
flush-interval: 1s
max-body-bytes: 2097152
log-level: debug
redis-addr:
`)
	c, err := load(t, []string{"--config=" + path}, env{})
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if got := c.Kafka.Brokers; !reflect.DeepEqual(got, []string{"kafka-1:9092", "kafka-2:9092"}) {
		t.Errorf("kafka-brokers = %q, want the YAML list", got)
	}
	if c.Kafka.Partitions != 12 {
		t.Errorf("partitions = %d, want 12", c.Kafka.Partitions)
	}
	if c.Consumer.FlushInterval != time.Second {
		t.Errorf("flush-interval = %v, want 1s", c.Consumer.FlushInterval)
	}
	if c.Ingest.MaxBodyBytes != 2<<20 {
		t.Errorf("max-body-bytes = %d, want %d", c.Ingest.MaxBodyBytes, 2<<20)
	}
	if c.Log.Level != "debug" {
		t.Errorf("log-level = %q, want debug", c.Log.Level)
	}
	// An empty value is the empty string: an empty redis-addr disables the cache.
	if c.Redis.Addr != "" {
		t.Errorf("redis-addr = %q, want empty", c.Redis.Addr)
	}
}

func TestResolveEnvTypes(t *testing.T) {
	c, err := load(t, nil, env{
		"LOGENGINE_KAFKA_BROKERS":  "a:9092,b:9092",
		"LOGENGINE_PARTITIONS":     "3",
		"LOGENGINE_FLUSH_INTERVAL": "50ms",
		"LOGENGINE_ROLE":           "producer,consumer",
		"LOGENGINE_REDIS_ADDR":     "",
		"UNRELATED_PARTITIONS":     "99",
	})
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if !reflect.DeepEqual(c.Kafka.Brokers, []string{"a:9092", "b:9092"}) || c.Kafka.Partitions != 3 ||
		c.Consumer.FlushInterval != 50*time.Millisecond || c.Roles != "producer,consumer" {
		t.Errorf("config %+v does not reflect the environment", c)
	}
	// Set but empty is a value, not an absence.
	if c.Redis.Addr != "" {
		t.Errorf("redis-addr = %q, want empty", c.Redis.Addr)
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string // written to a file and passed as --config, unless ""
		file  string // a file name that does not exist in a temporary directory
		env   env
		wants []string // substrings of the error
	}{
		{name: "unknown YAML key", yaml: "topic: x\nkafka-brokrs: a:9092\n", wants: []string{`"kafka-brokrs"`, "unknown key"}},
		{name: "config key inside the file", yaml: "config: other.yaml\n", wants: []string{`"config"`}},
		{name: "nested YAML map", yaml: "kafka:\n  topic: x\n", wants: []string{`"kafka"`}},
		{name: "YAML not a mapping", yaml: "- a\n- b\n", wants: []string{"parse config file"}},
		{name: "malformed YAML", yaml: "topic: [unclosed\n", wants: []string{"parse config file"}},
		{name: "bad YAML value", yaml: "partitions: abc\n", wants: []string{"partitions"}},
		{name: "bad YAML duration", yaml: "flush-interval: 200\n", wants: []string{"flush-interval"}},
		{name: "missing YAML file", file: "missing.yaml", wants: []string{"missing.yaml"}},
		{name: "bad env value", env: env{"LOGENGINE_PARTITIONS": "abc"}, wants: []string{"LOGENGINE_PARTITIONS"}},
		{name: "bad env duration", env: env{"LOGENGINE_FLUSH_INTERVAL": "soon"}, wants: []string{"LOGENGINE_FLUSH_INTERVAL"}},
		{
			name:  "every bad env value reported",
			env:   env{"LOGENGINE_PARTITIONS": "abc", "LOGENGINE_BATCH_SIZE": "many"},
			wants: []string{"LOGENGINE_PARTITIONS", "LOGENGINE_BATCH_SIZE"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			switch {
			case tc.yaml != "":
				args = append(args, "--config="+writeYAML(t, tc.yaml))
			case tc.file != "":
				args = append(args, "--config="+filepath.Join(t.TempDir(), tc.file))
			}
			e := tc.env
			if e == nil {
				e = env{}
			}
			_, err := load(t, args, e)
			if err == nil {
				t.Fatal("Resolve succeeded, want an error")
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}

func TestValidateNamesTheBadFlag(t *testing.T) {
	tests := []struct {
		flag   string
		mutate func(*configs.Config)
	}{
		{"partitions", func(c *configs.Config) { c.Kafka.Partitions = 0 }},
		{"partitions", func(c *configs.Config) { c.Kafka.Partitions = -3 }},
		{"dlq-topic", func(c *configs.Config) { c.Kafka.DLQTopic = c.Kafka.Topic }},
		{"dlq-topic", func(c *configs.Config) { c.Kafka.DLQTopic = "" }},
		{"topic", func(c *configs.Config) { c.Kafka.Topic = "" }},
		{"batch-size", func(c *configs.Config) { c.Consumer.BatchSize = 0 }},
		{"flush-interval", func(c *configs.Config) { c.Consumer.FlushInterval = 0 }},
		{"flush-interval", func(c *configs.Config) { c.Consumer.FlushInterval = -time.Second }},
		{"log-format", func(c *configs.Config) { c.Log.Format = "xml" }},
		{"log-level", func(c *configs.Config) { c.Log.Level = "loud" }},
		{"replication-factor", func(c *configs.Config) { c.Kafka.ReplicationFactor = 0 }},
		{"replication-factor", func(c *configs.Config) { c.Kafka.ReplicationFactor = -2 }},
		{"consumer-group", func(c *configs.Config) { c.Consumer.Group = "" }},
		{"postgres-url", func(c *configs.Config) { c.Postgres.URL = "" }},
		{"postgres-max-conns", func(c *configs.Config) { c.Postgres.MaxConns = 0 }},
		{"max-page-size", func(c *configs.Config) { c.QueryLimits.MaxPageSize = 0 }},
		{"max-future-skew", func(c *configs.Config) { c.Ingest.Limits.MaxFutureSkew = -time.Second }},
		{"cache-ttl-closed", func(c *configs.Config) { c.Gateway.ClosedTTL = 0 }},
		{"partition-period", func(c *configs.Config) { c.Postgres.PartitionPeriod = 5 * time.Hour }},
		{"retention", func(c *configs.Config) { c.Postgres.Maintenance.Retention = -time.Hour }},
		{"shutdown-timeout", func(c *configs.Config) { c.HTTP.ShutdownTimeout = 0 }},
		{"max-trace-id-bytes", func(c *configs.Config) { c.Ingest.Limits.MaxTraceIDBytes = 0 }},
		{"http-write-timeout", func(c *configs.Config) { c.Producer.Timeout = c.HTTP.WriteTimeout }},
	}
	for _, tc := range tests {
		t.Run(tc.flag, func(t *testing.T) {
			c := configs.Default()
			tc.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted the bad setting")
			}
			// Exactly one problem, and it names its flag first.
			if msg := err.Error(); !strings.HasPrefix(msg, "--"+tc.flag+": ") || strings.Contains(msg, "\n") {
				t.Errorf("error %q, want one error starting with --%s: ", msg, tc.flag)
			}
		})
	}
}

func TestValidateAcceptsEdgeValues(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*configs.Config)
	}{
		{"replication factor broker default", func(c *configs.Config) { c.Kafka.ReplicationFactor = -1 }},
		{"replication factor 3", func(c *configs.Config) { c.Kafka.ReplicationFactor = 3 }},
		{"one partition", func(c *configs.Config) { c.Kafka.Partitions = 1 }},
		{"text logs", func(c *configs.Config) { c.Log.Format = "text" }},
		{"upper-case log level", func(c *configs.Config) { c.Log.Level = "WARN" }},
		{"zero future skew", func(c *configs.Config) { c.Ingest.Limits.MaxFutureSkew = 0 }},
		{"no statement timeout", func(c *configs.Config) { c.Postgres.StatementTimeout = 0 }},
		{"cache disabled", func(c *configs.Config) { c.Redis.Addr = "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := configs.Default()
			tc.mutate(&c)
			if err := c.Validate(); err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := configs.Default()
	c.Kafka.Partitions = 0
	c.Log.Format = "xml"
	c.Consumer.BatchSize = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted three bad settings")
	}
	for _, flag := range []string{"--partitions", "--log-format", "--batch-size"} {
		if !strings.Contains(err.Error(), flag+": ") {
			t.Errorf("error %q does not name %s", err, flag)
		}
	}
}

func TestEnvName(t *testing.T) {
	tests := map[string]string{
		"kafka-brokers":  "LOGENGINE_KAFKA_BROKERS",
		"topic":          "LOGENGINE_TOPIC",
		"max-body-bytes": "LOGENGINE_MAX_BODY_BYTES",
		"config":         "LOGENGINE_CONFIG",
	}
	for flag, want := range tests {
		if got := configs.EnvName(flag); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", flag, got, want)
		}
	}
}

// Every flag is looked up in the environment under its own variable.
func TestEveryFlagHasItsOwnEnvVariable(t *testing.T) {
	c := configs.Default()
	fs := pflag.NewFlagSet("logengine", pflag.ContinueOnError)
	c.RegisterFlags(fs)
	seen := map[string]string{}
	fs.VisitAll(func(f *pflag.Flag) {
		name := configs.EnvName(f.Name)
		if other, dup := seen[name]; dup {
			t.Errorf("flags %s and %s share the variable %s", other, f.Name, name)
		}
		seen[name] = f.Name
		if !strings.HasPrefix(name, configs.EnvPrefix) {
			t.Errorf("EnvName(%q) = %q lacks the prefix", f.Name, name)
		}
	})
	lookups := map[string]bool{}
	if err := configs.Resolve(fs, func(name string) (string, bool) {
		lookups[name] = true
		return "", false
	}); err != nil {
		t.Fatal(err)
	}
	for name, flag := range seen {
		if !lookups[name] {
			t.Errorf("Resolve never looked up %s for --%s", name, flag)
		}
	}
}

func TestBrokerList(t *testing.T) {
	tests := []struct {
		brokers string
		want    []string
	}{
		{"", nil},
		{" , ,", nil},
		{"kafka:9092", []string{"kafka:9092"}},
		{" a:9092 , ,b:9092 ,,", []string{"a:9092", "b:9092"}},
		{"embedded", []string{"embedded"}},
	}
	for _, tc := range tests {
		c, err := load(t, []string{"--kafka-brokers=" + tc.brokers}, env{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c.Kafka.Brokers, tc.want) {
			t.Errorf("--kafka-brokers=%q = %q, want %q", tc.brokers, c.Kafka.Brokers, tc.want)
		}
	}
}

// A YAML file serves every command: a key of serve's is skipped by a
// command that does not have it, and a key no command has is refused.
func TestResolveSkipsOtherCommandsKeys(t *testing.T) {
	path := writeYAML(t, "topic: from-yaml\nhot-window: 1m\n")
	c := configs.Default()
	fs := pflag.NewFlagSet("dlq", pflag.ContinueOnError)
	c.RegisterDLQFlags(fs)
	if err := fs.Parse([]string{"--config=" + path}); err != nil {
		t.Fatal(err)
	}
	if err := configs.Resolve(fs, env{}.lookup); err != nil {
		t.Fatalf("Resolve with a serve-only key: %v", err)
	}
	if c.Kafka.Topic != "from-yaml" {
		t.Errorf("topic = %q, want from-yaml", c.Kafka.Topic)
	}
	if fs.Lookup("hot-window") != nil {
		t.Error("dlq registers --hot-window: each command shows only its own flags")
	}
	bad := writeYAML(t, "topic: x\nhot-windw: 1m\n")
	fs = pflag.NewFlagSet("dlq", pflag.ContinueOnError)
	c.RegisterDLQFlags(fs)
	if err := fs.Parse([]string{"--config=" + bad}); err != nil {
		t.Fatal(err)
	}
	if err := configs.Resolve(fs, env{}.lookup); err == nil || !strings.Contains(err.Error(), "hot-windw") {
		t.Errorf("Resolve with a key no command has = %v, want an error naming it", err)
	}
}

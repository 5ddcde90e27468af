package app_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logengine/logengine/app"
	"github.com/logengine/logengine/app/apptest"
	"github.com/logengine/logengine/configs"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// TestEveryFlagReachesItsComponent sets every flag of serve to a value
// other than its default, starts all roles, and reads /config, which each
// running component fills from the configuration it holds. A flag that is
// parsed but never handed to its component shows its default there.
func TestEveryFlagReachesItsComponent(t *testing.T) {
	t.Parallel()
	otlp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(otlp.Close)

	base := apptest.Config(t)
	keysFile := writeFile(t, "keys.yaml", securedKeys)
	ca := apptest.NewCA(t, "flags")
	certFile, keyFile, clientCert := ca.Issue("flags")
	// Kafka with TLS and SASL, so that every Kafka security flag can be
	// set; Redis's TLS cannot reach the plain test Redis, which the
	// gateway reports as down and carries on.
	kafka := startSecureKafka(t, "SCRAM-SHA-256", "flags", "flags-password")
	// Values that must be valid and safe here; every other flag gets a
	// generic non-default value by its type below.
	special := map[string]string{
		"role":                         "producer,consumer,gateway",
		"kafka-brokers":                strings.Join(kafka.brokers, ","),
		"embedded-kafka-addr":          "127.0.0.1:0",
		"topic":                        "flags-topic",
		"dlq-topic":                    "flags-dlq",
		"consumer-group":               "flags-group",
		"postgres-url":                 base.Postgres.URL,
		"postgres-read-url":            base.Postgres.URL, // not a replica: reported down, reads go to the primary
		"partition-period":             "12h",
		"retention":                    "9d",
		"max-keyword-window":           "2d",
		"redis-addr":                   "localhost:6379",
		"cache-prefix":                 base.Redis.Prefix,
		"producer-addr":                "127.0.0.1:0",
		"consumer-addr":                "127.0.0.1:0",
		"gateway-addr":                 "127.0.0.1:0",
		"otlp-endpoint":                otlp.URL,
		"otlp-sample-ratio":            "0.5",
		"log-level":                    "warn",
		"log-format":                   "text",
		"replication-factor":           "1",
		"auth-keys-file":               keysFile,
		"metrics-token-file":           writeFile(t, "token", metricsTok),
		"pprof-addr":                   "127.0.0.1:0",
		"cors-allowed-origins":         "https://ui.example.com",
		"tls-cert-file":                certFile,
		"tls-key-file":                 keyFile,
		"tls-client-ca-file":           ca.File,
		"auth-failure-logs-per-second": "3",
		"kafka-tls-ca-file":            kafka.ca.File,
		"kafka-tls-cert-file":          certFile,
		"kafka-tls-key-file":           keyFile,
		"kafka-sasl-mechanism":         "SCRAM-SHA-256",
		"kafka-sasl-user":              "flags",
		"kafka-sasl-password-file":     writeFile(t, "kafka-password", "flags-password"),
		"redis-user":                   "flags",
		"redis-password-file":          writeFile(t, "redis-password", "flags"),
		"redis-tls-ca-file":            ca.File,
		"redis-tls-cert-file":          certFile,
		"redis-tls-key-file":           keyFile,
		"loki-source-labels":           "svc,app",
		"loki-level-labels":            "sev",
		"loki-trace-id-keys":           "tid",
		"loki-default-source":          "no-source",
		"elastic-message-fields":       "body",
		"elastic-time-fields":          "when",
		"elastic-level-fields":         "lvl",
		"elastic-source-fields":        "svc",
		"elastic-trace-id-fields":      "tid",
		"elastic-version":              "8.11.1",
		"syslog-addr":                  "127.0.0.1:0",
		"syslog-tenant":                "team-syslog",
		"audit-log":                    filepath.Join(t.TempDir(), "audit.log"),
	}
	defaults := configs.Default()
	defaultFlags := pflag.NewFlagSet("defaults", pflag.ContinueOnError)
	defaults.RegisterFlags(defaultFlags)

	cfg := base
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	cfg.RegisterFlags(fs)
	want := map[string]string{}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "config" {
			return
		}
		v, ok := special[f.Name]
		if !ok {
			v, ok = nonDefault(f)
		}
		if !ok {
			t.Errorf("--%s (%s): add a valid non-default value to this test", f.Name, f.Value.Type())
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			t.Fatalf("--%s=%s: %v", f.Name, v, err)
		}
		want[f.Name] = f.Value.String()
		if want[f.Name] == defaultFlags.Lookup(f.Name).DefValue {
			t.Errorf("--%s=%s is its default: the test would not notice it being ignored", f.Name, v)
		}
	})
	if t.Failed() {
		return
	}
	a := apptest.Start(t, cfg, &apptest.LockedBuffer{})

	req, _ := http.NewRequest(http.MethodGet, "https://"+a.Addr(app.RoleGateway)+"/config", nil)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := httpsClient(t, ca.Pool, &clientCert).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var got map[string]string
	if err := yaml.Unmarshal(body, &got); err != nil {
		t.Fatalf("/config is not YAML: %v\n%s", err, body)
	}
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("--%s: no running component reports it", name)
		case g != w:
			t.Errorf("--%s: set to %q, the running component has %q", name, w, g)
		}
	}
}

// nonDefault is a valid value other than the flag's default, by type.
func nonDefault(f *pflag.Flag) (string, bool) {
	switch f.Value.Type() {
	case "int", "int32", "int64":
		return f.DefValue + "1", !strings.HasPrefix(f.DefValue, "-") // 8 → 81, 0 → 01
	case "duration":
		d, err := time.ParseDuration(f.DefValue)
		if err != nil {
			return "", false
		}
		return (d + 1500*time.Millisecond).String(), true
	case "bool":
		return map[string]string{"false": "true", "true": "false"}[f.DefValue], true
	}
	return "", false
}
